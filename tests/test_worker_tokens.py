"""Firmware 7+ under a running worker: tokens fetched from the (fake) Enphase
cloud that expire every few seconds are refreshed ahead of expiry with no
missed cycle and a bounded number of cloud calls; a gateway that starts
refusing its token mid-run costs one refresh, not a loop; nothing secret
reaches the logs."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from envoy_ingest.settings import load_settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.worker import CycleResult, Worker
from tests.lp import read_dir

EMAIL, PASSWORD = "owner@example.com", "secret-password"


def run_worker(tmp_path: Path, sim: Simulator, seconds: float, during=None) -> list[CycleResult]:  # type: ignore[no-untyped-def]
    path = tmp_path / "settings.toml"
    path.write_text(
        f'[[gateways]]\nhost = "{sim.host}"\nname = "home"\n'
        f'enlighten_username = "{EMAIL}"\nenlighten_password = "{PASSWORD}"\n'
        f'[enlighten]\nlogin_url = "{sim.cloud.login_url}"\ntoken_url = "{sim.cloud.token_url}"\n'
        # Cycles of 1 s and tokens of 8 s: the cloud calls are not spaced (a fleet's are).
        "request_spacing = 0\n"
        f'[file]\ndirectory = "{tmp_path / "data"}"\n[state]\ndirectory = "{tmp_path / "state"}"\n'
        "[schedule]\ntotals_interval = 1\ndevices_interval = 5\njitter = 0\n"
    )
    results: list[CycleResult] = []
    started = False

    def record(result: CycleResult) -> None:
        # The clock starts at the first totals cycle: the jobs start at their
        # phases (worker/spread.py), up to two intervals after the worker does.
        nonlocal started
        results.append(result)
        if result.job == "totals" and not started:
            started = True
            loop = asyncio.get_running_loop()
            loop.call_later(seconds, worker.stop)
            for at, action in during or ():
                loop.call_later(at, action)

    worker = Worker(load_settings(path), on_result=record)

    async def go() -> None:
        asyncio.get_running_loop().call_later(seconds + 60, worker.stop)  # never started
        await worker.run_forever()

    asyncio.run(go())
    return results


def test_short_lived_tokens_are_refreshed_with_no_missed_cycle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with Simulator(SimulatorConfig(family="modern", cts="1phase", inverters=4)) as sim:
        sim.cloud.token_lifetime = 8  # refreshed about 0.8 s ahead of expiry
        results = run_worker(tmp_path, sim, 20.0)
        login_calls, token_calls = sim.cloud.login_calls, sim.cloud.token_calls
    totals = [r for r in results if r.job == "totals"]
    assert [r.error for r in results if not r.ok] == []
    assert len(totals) >= 18  # one a second for 20 s, none missed
    # 20 s of 8-second tokens: the first fetch and 2 or 3 refreshes, never a loop.
    assert 3 <= token_calls <= 5
    assert login_calls <= token_calls
    # One totals point per totals cycle (the devices job's grid readings aside).
    written = [
        ln
        for ln in read_dir(tmp_path / "data")
        if ln.measurement == "enphase_system" and "production_w" in ln.fields
    ]
    assert len(written) == len(totals)
    log_text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "token" in log_text.lower()  # the refreshes were logged...
    assert PASSWORD not in log_text  # ...without a secret
    assert re.search(r"eyJ[\w-]+\.[\w-]+", log_text) is None


def test_gateway_refusing_its_token_mid_run_costs_one_refresh(tmp_path: Path) -> None:
    with Simulator(SimulatorConfig(family="modern", cts="1phase", inverters=4)) as sim:
        results = run_worker(tmp_path, sim, 8.0, during=[(3.0, sim.revoke_tokens)])
        token_calls = sim.cloud.token_calls
    assert token_calls == 2  # the first token, and one after the gateway refused it
    failed = [r for r in results if not r.ok]
    assert len(failed) <= 1  # at most the cycle in flight when the token was revoked
    assert len([r for r in results if r.job == "totals" and r.ok]) >= 6
