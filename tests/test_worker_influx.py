"""The worker against the simulator into real servers: InfluxDB 1.6.7 (api v1,
auth off and on, read back with InfluxQL) and VictoriaMetrics (the real server
behind influxdb-client's /api/v2/write, read back through its export API).

A real InfluxDB 2.x / 3.x cannot be installed here; VictoriaMetrics stands in
for the v2 write API. The simulator's clock is frozen, so a run into the file
sink and a run into the server poll exactly the same points: the server must
hold exactly those, with the contract's types and tags.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from envoy_ingest.cli import main
from envoy_ingest.point import Point
from envoy_ingest.simulator import Simulator, SimulatorConfig
from tests.lp import Line, parse, read_dir
from tests.support.builders import expected_lines, expected_samples
from tests.support.servers import InfluxDB1, Sample, VictoriaMetrics
from tests.worker_settings import gateway_table, write_settings

NOON = 1718971200


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return f'"{value}"'


def settings(tmp: Path, sim: Simulator, influx: dict[str, Any] | None, extra: str = "") -> Path:
    if influx is not None:
        extra = (
            "[influxdb]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in influx.items()) + extra
        )
    return write_settings(tmp, gateway_table(sim), extra=extra)


def polled_into_files(tmp: Path, sim: Simulator) -> list[Line]:
    """What one `run --once` of this simulator writes (the file sink)."""
    files = tmp / "files"
    files.mkdir()
    assert main(["run", "--once", "-c", str(settings(files, sim, None))]) == 0
    return read_dir(files / "data")


def as_points(lines: list[Line]) -> list[Point]:
    return [Point(ln.measurement, ln.fields, ln.time, ln.tags) for ln in lines]


def assert_same_samples(got: list[Sample], want: list[Sample]) -> None:
    """Equal but for VictoriaMetrics' storage precision (it keeps about 15
    significant digits: 1139448.5877777776 comes back as ...778)."""
    assert [(s.name, s.labels, s.time) for s in got] == [(s.name, s.labels, s.time) for s in want]
    for g, w in zip(got, want, strict=True):
        assert g.value == pytest.approx(w.value, rel=1e-13, abs=1e-9), (g, w)


SITE = {"family": "modern", "cts": "1phase", "batteries": "iq", "battery_count": 2}


@pytest.mark.parametrize("auth", [False, True], ids=["auth-off", "auth-on"])
def test_worker_into_influxdb_1(tmp_path: Path, auth: bool, request: pytest.FixtureRequest) -> None:
    server: InfluxDB1 = request.getfixturevalue("influxdb1_auth" if auth else "influxdb1")
    with Simulator(SimulatorConfig(start_time=NOON, time_scale=0, **SITE)) as sim:  # type: ignore[arg-type]
        expected = polled_into_files(tmp_path, sim)
        rc = main(["run", "--once", "-c", str(settings(tmp_path, sim, server.influxdb_settings()))])
    assert rc == 0
    assert not (tmp_path / "data").exists()  # InfluxDB configured: no local files
    stored = server.lines()
    assert stored == expected_lines(as_points(expected))
    # the totals point (the CT energies merged into it, same second), and the
    # battery system at the latest battery report
    system = [
        ln
        for ln in stored
        if ln.measurement == "enphase_system" and "battery_available_wh" not in ln.fields
    ]
    assert len(system) == 1 and system[0].time == NOON
    assert system[0].tags == {"gateway": sim.serial, "site": "home"}
    types = server.field_types("solar")
    assert types[("enphase_system", "production_w")] == "float"
    assert types[("enphase_system", "inverters")] == "integer"
    assert types[("enphase_system", "battery_state")] == "string"
    assert types[("enphase_inverter", "producing")] == "boolean"
    assert types[("enphase_battery", "soc_pct")] == "float"
    assert types[("enphase_battery", "led_status")] == "integer"
    assert types[("enphase_battery", "dc_switch_off")] == "boolean"
    assert types[("enphase_system", "battery_available_wh")] == "float"
    assert types[("enphase_meter", "power_w")] == "float"


def test_worker_into_v2_write_api(tmp_path: Path, victoria_metrics: VictoriaMetrics) -> None:
    with Simulator(SimulatorConfig(start_time=NOON, time_scale=0, **SITE)) as sim:  # type: ignore[arg-type]
        expected = polled_into_files(tmp_path, sim)
        cfg = settings(tmp_path, sim, victoria_metrics.influxdb_settings(token="t0ken"))
        rc = main(["run", "--once", "-c", str(cfg)])
    assert rc == 0
    assert_same_samples(victoria_metrics.samples(), expected_samples(as_points(expected)))


def test_run_once_with_the_server_down_keeps_the_points_and_says_so(
    tmp_path: Path, influxdb1: InfluxDB1
) -> None:
    with Simulator(SimulatorConfig(start_time=NOON, time_scale=0, **SITE)) as sim:  # type: ignore[arg-type]
        expected = polled_into_files(tmp_path, sim)
        cfg = settings(tmp_path, sim, influxdb1.influxdb_settings())
        influxdb1.stop()
        started = time.monotonic()
        # Could not deliver: exit 1, after waiting as long as it was told to.
        assert main(["run", "--once", "--drain-timeout", "2", "-c", str(cfg)]) == 1
        assert time.monotonic() - started < 10
        influxdb1.start()
        # The next run delivers what the first one spooled (and its own poll, the same points).
        assert main(["run", "--once", "-c", str(cfg)]) == 0
    assert influxdb1.lines() == expected_lines(as_points(expected))


def test_outage_and_kill_9_of_the_worker_lose_and_duplicate_nothing(
    tmp_path: Path, victoria_metrics: VictoriaMetrics
) -> None:
    """The real `envoy-ingest run` polls every second; the server goes away, the
    worker is SIGKILLed mid-outage and restarted, the server comes back: every
    point the worker polled is stored exactly once (VictoriaMetrics keeps
    duplicates, so a double delivery would show)."""
    exe = Path(sys.executable).with_name("envoy-ingest")
    with Simulator(SimulatorConfig(family="legacy", cts="1phase", inverters=4)) as sim:
        cfg = settings(
            tmp_path,
            sim,
            victoria_metrics.influxdb_settings(token="t0ken"),
            extra="[stdout]\nenabled = true\n"
            "[schedule]\ntotals_interval = 1\ndevices_interval = 3\njitter = 0\n",
        )
        out1, out2 = tmp_path / "run1.lp", tmp_path / "run2.lp"

        def start(out: Path) -> subprocess.Popen[bytes]:
            with out.open("wb") as f:
                return subprocess.Popen([str(exe), "run", "-c", str(cfg)], stdout=f)

        first = start(out1)
        time.sleep(3)
        victoria_metrics.stop()
        time.sleep(4)  # polling goes on into the spool
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = start(out2)
        time.sleep(3)
        victoria_metrics.start()
        time.sleep(6)  # delivery resumes, and polling goes on
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
    # stdout gets each batch right after the spool accepted it: every printed point
    # was spooled. (A point spooled in the instant before the kill but not yet
    # printed would also be delivered, and show up as unexpected below.)
    polled = parse(out1.read_text()) + parse(out2.read_text())
    assert len(polled) > 20
    want = expected_samples(as_points(polled))
    got = victoria_metrics.samples()
    # Re-reading an unchanged report (an inverter's lastReportDate) polls the same
    # point again, and VictoriaMetrics keeps each write: so got has it as often as polled.
    assert_same_samples(got, want)
