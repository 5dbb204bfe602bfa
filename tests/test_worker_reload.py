"""SIGHUP reloads the settings of the real `envoy-ingest run`: gateways from the
gateways file are added and removed without a restart, what was spooled stays,
and a bad reload keeps the running settings with one log line saying why."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envoy_ingest.cli import main
from envoy_ingest.simulator import Simulator, SimulatorConfig
from tests.support.servers import free_port


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:  # loopback only
        return json.load(r)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_sighup_adds_and_removes_gateways_and_keeps_the_spool(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    sims = {n: Simulator(SimulatorConfig(family="legacy", inverters=2)).start() for n in "abc"}
    port = free_port()
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(f"host,name\n{sims['a'].host},a\n{sims['b'].host},b\n")
    dead_db = f"http://127.0.0.1:{free_port()}"  # nobody listens: everything stays spooled
    settings = tmp_path / "settings.toml"
    text = (
        'gateways_file = "fleet.csv"\n'
        f'[influxdb]\nurl = "{dead_db}"\napi = "v1"\ndatabase = "solar"\n'
        f'[state]\ndirectory = "{tmp_path / "state"}"\n'
        "[schedule]\ntotals_interval = 1\ndevices_interval = 2\njitter = 0\n"
        f'[health]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
    )
    settings.write_text(text)
    url = f"http://127.0.0.1:{port}"
    seen: dict[str, Any] = {}

    def polled(*names: str) -> Callable[[], bool]:
        def check() -> bool:
            try:
                gws = get_json(f"{url}/gateways")["gateways"]
            except OSError:
                return False
            return sorted(gws) == sorted(names) and all(
                gws[n]["last_success"] is not None for n in names
            )

        return check

    def drive() -> None:
        try:
            wait_for("a and b polled", polled("a", "b"))
            # Remove b, add c; also change the sink, which only a restart applies.
            fleet.write_text(f"host,name\n{sims['a'].host},a\n{sims['c'].host},c\n")
            settings.write_text(text.replace(dead_db, "http://127.0.0.1:1"))
            os.kill(os.getpid(), signal.SIGHUP)
            wait_for("a and c polled", polled("a", "c"))
            b_requests = len(sims["b"].requests)
            metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
            seen["b_in_metrics"] = 'gateway="b"' in metrics
            time.sleep(2.5)  # more than two totals intervals
            seen["b_after"] = len(sims["b"].requests) - b_requests
            # A bad gateways file: the running settings stay.
            fleet.write_text(f"host,bogus\n{sims['b'].host},x\n")
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(1.5)
            seen["after_bad"] = sorted(get_json(f"{url}/gateways")["gateways"])
            seen["healthz"] = get_json(f"{url}/healthz")
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    driver = threading.Thread(target=drive)
    driver.start()
    try:
        rc = main(["run", "-c", str(settings)])
    finally:
        driver.join()
        for sim in sims.values():
            sim.stop()
    err = capfd.readouterr().err
    assert rc == 0
    assert seen["b_in_metrics"] is False  # its series went with it
    assert seen["b_after"] == 0  # b is no longer polled
    assert seen["after_bad"] == ["a", "c"]
    assert seen["healthz"]["status"] == "ok"
    assert "reloaded the settings: gateways 1 added, 1 removed, 0 changed; now 2" in err
    assert "reload: influxdb changed; that takes a restart (the running values stay)" in err
    failed = [ln for ln in err.splitlines() if "reload failed" in ln]
    assert len(failed) == 1
    assert failed[0].endswith(
        f"reload failed, the running settings stay: {fleet}: line 1: bogus: unknown column"
    )
    # Nothing spooled was lost: the points of the removed gateway b wait with the others.
    with sqlite3.connect(tmp_path / "state" / "spool.sqlite") as db:
        bodies = b"".join(row[0] for row in db.execute("SELECT body FROM batch"))
    sites = {
        tag.split(b"=", 1)[1]
        for line in bodies.splitlines()
        for tag in line.split(b" ", 1)[0].split(b",")
        if tag.startswith(b"site=")
    }
    assert sites == {b"a", b"b", b"c"}
