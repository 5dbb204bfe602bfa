"""The live job's pure parts: enphase_live from recorded CT readings, the plan
``discover`` shows, and the settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from envoy_ingest import normalize
from envoy_ingest.cli import main
from envoy_ingest.envoy.capabilities import METERS, METERS_READINGS, Capabilities, detect
from envoy_ingest.errors import SettingsError
from envoy_ingest.point import Point
from envoy_ingest.settings import load_settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.telemetry import metrics
from envoy_ingest.worker.live import LiveReads, live_interval, live_offset
from envoy_ingest.worker.poller import CycleResult
from tests import fixtures_io as fx
from tests.conftest import require_fixtures
from tests.worker_settings import write_settings

NOW = 1_700_000_000


def recorded(name: str) -> tuple[list[Point], Capabilities]:
    require_fixtures()
    d = fx.set_dir(name)
    caps = detect(fx.info(d), fx.snapshot(d, [METERS]))
    return normalize.live(fx.snapshot(d, [METERS_READINGS]), caps, NOW), caps


def by_key(points: list[Point]) -> dict[tuple[str, str | None], Point]:
    return {(p.tags["flow"], p.tags.get("phase")): p for p in points}


def test_single_phase_site_whole_cts_and_derived_consumption() -> None:
    points, _ = recorded("7.6.175_with_cts")
    assert {p.measurement for p in points} == {"enphase_live"}
    got = {k: (dict(p.fields), p.time) for k, p in by_key(points).items()}
    t = 1693745133
    assert got == {
        ("production", None): (
            {
                "power_w": 488.925,
                "frequency_hz": 50.0,
                "power_factor": 0.957,
                "voltage_v": 235.236,
                "current_a": 2.169,
            },
            t,
        ),
        ("net", None): (
            {
                "power_w": -36.162,
                "frequency_hz": 50.0,
                "power_factor": -0.06,
                "voltage_v": 235.201,
                "current_a": 2.745,
            },
            t,
        ),
        # production + net; the net CT's voltage and frequency (the same line)
        ("consumption", None): (
            {"power_w": 488.925 + -36.162, "voltage_v": 235.201, "frequency_hz": 50.0},
            t,
        ),
    }


def test_split_phase_site_per_phase_storage_and_whole_points_without_voltage() -> None:
    points, caps = recorded("8.2.127_with_3cts_and_battery_split")
    assert caps.phase_count == 2
    got = by_key(points)
    assert sorted(got, key=str) == sorted(
        [
            (f, p)
            for f in ("production", "net", "storage", "consumption")
            for p in (None, "l1", "l2")
        ],
        key=str,
    )
    for phase in ("l1", "l2"):
        prod = got[("production", phase)].fields["power_w"]
        net = got[("net", phase)].fields["power_w"]
        assert got[("consumption", phase)].fields == {
            "power_w": prod + net,  # type: ignore[operator]
            "voltage_v": got[("net", phase)].fields["voltage_v"],
            "frequency_hz": 60.0,
        }
    assert got[("storage", None)].fields == {
        "power_w": -2579.823,
        "frequency_hz": 60.0,
        "power_factor": -1.0,
    }
    assert dict(got[("storage", "l2")].fields) == {
        "power_w": -464.966,
        "frequency_hz": 60.0,
        "power_factor": -0.713,
        "voltage_v": 121.248,
        "current_a": 5.259,
    }
    assert all("voltage_v" not in p.fields for p in points if "phase" not in p.tags)
    assert {p.time for p in points} == {1709829517}


def reading(eid: int, watts: float) -> dict[str, Any]:
    return {"eid": eid, "timestamp": NOW - 2, "activePower": watts, "voltage": 230.0, "freq": 50.0}


def test_a_total_consumption_ct_is_read_not_derived_and_other_kinds_are_left_out() -> None:
    caps = Capabilities(
        cts=(("1", "production"), ("2", "total-consumption"), ("3", "backfeed")), phase_count=1
    )
    snap = {METERS_READINGS: [reading(1, 1000.0), reading(2, 700.0), reading(3, 5.0)]}
    got = {p.tags["flow"]: p.fields["power_w"] for p in normalize.live(snap, caps, NOW)}
    assert got == {"production": 1000.0, "consumption": 700.0}


def test_odd_answers_give_nothing_rather_than_zeros() -> None:
    caps = Capabilities(cts=(("1", "production"),), phase_count=1)
    assert normalize.live({}, caps, NOW) == []
    assert normalize.live({METERS_READINGS: "<html>"}, caps, NOW) == []
    quiet = {"eid": 1, "timestamp": NOW, "activePower": 0, "voltage": 0, "current": 0}
    assert normalize.live({METERS_READINGS: [quiet]}, caps, NOW) == []
    assert normalize.live({METERS_READINGS: [reading(1, 5.0)]}, Capabilities(), NOW) == []


def test_live_phase_is_half_an_interval_from_the_totals_phase() -> None:
    assert live_offset(59.5, 2) == 0.5
    assert live_offset(12.0, 5) == 4.5


def settings_file(tmp: Path, gateway: str, schedule: str) -> Path:
    return write_settings(tmp, f'host = "10.0.0.2"\n{gateway}', extra=f"[schedule]\n{schedule}\n")


def test_live_interval_setting_default_override_and_bounds(tmp_path: Path) -> None:
    s = load_settings(settings_file(tmp_path, "", ""))
    assert s.schedule.live_interval == 0
    assert live_interval(s.gateways[0], s.schedule) == 0
    s = load_settings(settings_file(tmp_path, "live_interval = 0", "live_interval = 5"))
    assert live_interval(s.gateways[0], s.schedule) == 0  # this gateway: off
    s = load_settings(settings_file(tmp_path, "live_interval = 2", ""))
    assert live_interval(s.gateways[0], s.schedule) == 2
    with pytest.raises(SettingsError, match=r"schedule\.live_interval: .*less than or equal to 59"):
        load_settings(settings_file(tmp_path, "", "live_interval = 60"))
    with pytest.raises(SettingsError, match=r"gateways\[0\]\.live_interval"):
        load_settings(settings_file(tmp_path, "live_interval = -1", ""))


@pytest.mark.parametrize(
    ("cts", "plan", "total"),
    [
        (
            "1phase",
            "live: /ivp/meters/readings every 2 s (1800 requests an hour)",
            "1896, 1800 of them live",
        ),
        (
            "none",
            "live: not scheduled: the site has no CTs (its production changes only when the "
            "microinverters report, about every 5 minutes)",
            "84",
        ),
    ],
)
def test_discover_shows_the_live_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cts: str, plan: str, total: str
) -> None:
    cfg = SimulatorConfig(family="legacy", cts=cts, batteries="none")  # type: ignore[arg-type]
    with Simulator(cfg) as sim:
        path = write_settings(
            tmp_path, f'host = "{sim.host}"', extra="[schedule]\nlive_interval = 2\n"
        )
        assert main(["discover", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"  {plan}\n" in out
    assert re.search(rf"requests per hour with the current schedule: {total}\n", out)


def skipped(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value("envoy_ingest_live_skipped_total", {"reason": reason})
    return value or 0.0


def test_a_skip_is_the_gateways_fault_only_after_half_an_interval_at_it() -> None:
    now = [100.0]
    live = LiveReads(lambda label: None, steady=lambda: now[0])
    live.add("g", 2, [])
    state = live.state("g")
    assert state is not None
    before = {r: skipped(r) for r in live.skipped}
    state.began = 99.0  # the previous read had the gateway for 1 s: half of 2 s
    live.missed("g", "live", "still running")
    state.began = 99.5  # it began late: 0.5 s ago
    live.missed("g", "live", "still running")
    live.missed("g", "live", "started too late")  # the slot itself fired late
    assert live.skipped == {"worker_late": 2, "gateway_slow": 1, "gateway_busy": 0}
    assert {r: skipped(r) - before[r] for r in before} == live.skipped


def test_back_off_doubles_on_slow_or_failed_reads_and_halves_after_three_fast_ones() -> None:
    live = LiveReads(lambda label: None, steady=lambda: 0.0)
    live.add("g", 1, [])
    state = live.state("g")
    assert state is not None
    ok, failed = CycleResult("g", "live", ok=True), CycleResult("g", "live", ok=False, error="x")
    factors = []
    for took, result in [
        (0.1, failed),  # an error: 2 s
        (1.5, ok),  # slower than half of 2 s: 4 s
        (1.5, ok),  # not slower than half of 4 s: stays
        (1.2, ok),  # under half of 4 s, over a quarter: not yet fast enough for 2 s
        (0.5, ok),
        (0.5, ok),
        (0.5, ok),  # three in a row under 1 s: 2 s
        (0.2, ok),
        (0.2, ok),
        (0.2, ok),  # three under 0.5 s: 1 s
        (0.2, ok),  # at the configured interval: stays
    ]:
        live._pace("g", state, took, result)
        factors.append(state.factor)
    assert factors == [2, 4, 4, 4, 4, 4, 2, 2, 2, 1, 1]
    # The longest interval is 120 s: at 1 s, 64 s; at 59 s, 118 s.
    for _ in range(10):
        live._pace("g", state, 0.0, failed)
    assert state.effective == 64
    live.add("h", 59, [])
    slow = live.state("h")
    assert slow is not None
    for _ in range(3):
        live._pace("h", slow, 0.0, failed)
    assert slow.effective == 118
