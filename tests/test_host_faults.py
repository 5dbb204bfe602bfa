"""A host that misbehaves (full disk, damaged spool, read-only state directory)
never stops collection: real filesystems (small tmpfs mounts) and a real InfluxDB 1.x.

Each test checks what reached InfluxDB, what was counted as dropped, and that
nothing was delivered twice (the sink's delivered count equals the distinct
points: InfluxDB itself would silently merge a duplicate).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from envoy_ingest.cli import main
from envoy_ingest.point import Point
from envoy_ingest.service.health import HealthState
from envoy_ingest.settings import Settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.sink import Sink, SpooledDelivery, build_sink
from envoy_ingest.sink.degraded import SUMMARY_INTERVAL, Degraded
from envoy_ingest.sink.durable import DurableQueue
from envoy_ingest.sink.spool_read import salvage
from envoy_ingest.telemetry import metrics
from tests.lp import parse
from tests.support.builders import device_points, expected_lines, influx_sink, totals_points
from tests.support.fakes import FakeClock
from tests.support.servers import InfluxDB1
from tests.worker_settings import gateway_table, write_settings

T0 = 1748995140  # 2025-06-03 23:59 UTC
MiB = 1024 * 1024

Mount = Callable[[str], Path]


def cycle_points(i: int) -> list[Point]:
    """Minute ``i``: the totals, and every 5th minute the devices too."""
    t = T0 + 60 * i
    return totals_points(t) + (device_points(t) if i % 5 == 0 else [])


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Mount]:
    """``small_fs("1m")`` mounts a tmpfs of that size; unmounted after, even on failure."""
    mounts: list[Path] = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            _unavailable("mounting a small tmpfs needs root and mount(8)")
        directory = tmp_path / f"fs{len(mounts)}"
        directory.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(directory)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            _unavailable(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounts.append(directory)
        return directory

    try:
        yield mount
    finally:
        for directory in reversed(mounts):
            subprocess.run(["umount", "-l", str(directory)], check=False, capture_output=True)


def remount(directory: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(directory)], check=True)


def fill(directory: Path, leave: int = 0) -> Path:
    """A file that takes all free space of ``directory``'s filesystem but ``leave`` bytes."""
    filler = directory / "filler"
    st = os.statvfs(directory)
    size = max(0, st.f_bavail * st.f_frsize - leave)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"\0" * size)
        while not leave:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def make_settings(state: Path, server: InfluxDB1, **spool: Any) -> Settings:
    return Settings(
        gateways=[{"host": "127.0.0.1:9"}],
        influxdb=server.influxdb_settings(),
        state={"directory": state},
        spool={"min_free_bytes": 0, **spool},
    )


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def errors(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


def running_health() -> HealthState:
    health = HealthState()
    health.scheduler_running(True)
    return health


def spooled(sink: Sink) -> SpooledDelivery[Any]:
    assert isinstance(sink, SpooledDelivery)
    return sink


def queue(sink: Sink) -> DurableQueue:
    spool = spooled(sink).spool
    assert isinstance(spool, DurableQueue)
    return spool


async def test_a_full_disk_at_start_collects_into_memory_then_back_to_the_spool(
    small_fs: Mount, influxdb1: InfluxDB1, caplog: pytest.LogCaptureFixture
) -> None:
    state = small_fs("1m")
    filler = fill(state)
    health = running_health()
    sink = build_sink(make_settings(state, influxdb1), health)
    submitted: list[Point] = []
    for i in range(10):
        submitted += cycle_points(i)
        sink.submit(cycle_points(i))
    body = health.report().body
    assert body["status"] == "degraded" and "full" in body["degraded"]["spool"]
    assert sample("envoy_ingest_degraded", component="spool", fault="disk_full") == 1
    report = await sink.drain(10)
    assert report.pending == 0
    assert influxdb1.lines() == expected_lines(submitted)  # delivered straight from memory

    filler.unlink()  # space again: the next batch goes to the spool, no restart
    submitted += cycle_points(10)
    sink.submit(cycle_points(10))
    assert health.report().body["status"] == "ok"
    assert queue(sink).degraded.reason is None and queue(sink).pending_points == 33
    report = await sink.drain(10)
    await sink.close()
    assert influxdb1.lines() == expected_lines(submitted)
    assert (report.delivered, report.dropped) == (len(submitted), 0)
    assert errors(caplog, "cannot use the spool") == 1
    assert errors(caplog, "the spool works again") == 1
    assert sample("envoy_ingest_degraded", component="spool", fault="disk_full") == 0


async def test_a_disk_that_fills_while_influxdb_is_down_loses_nothing(
    small_fs: Mount, influxdb1: InfluxDB1, caplog: pytest.LogCaptureFixture
) -> None:
    state = small_fs("2m")
    influxdb1.stop()
    sink = build_sink(make_settings(state, influxdb1))
    filler = fill(state, leave=120_000)
    submitted: list[Point] = []
    i = 0
    while queue(sink).degraded.reason is None:
        submitted += cycle_points(i)
        sink.submit(cycle_points(i))
        i += 1
        assert i < 500, "the disk never filled"
    for _ in range(5):  # a few more into memory
        submitted += cycle_points(i)
        sink.submit(cycle_points(i))
        i += 1
    assert errors(caplog, "cannot use the spool") == 1
    influxdb1.start()
    await sink.drain(10)  # what memory holds; the rest waits in the (full) spool
    filler.unlink()
    submitted += cycle_points(i)
    sink.submit(cycle_points(i))  # the spool opens again and keeps what it had
    report = await sink.drain(10)
    await sink.close()
    assert influxdb1.lines() == expected_lines(submitted)
    assert (report.delivered, report.dropped, report.pending) == (len(submitted), 0, 0)
    assert errors(caplog, "the spool works again") == 1
    assert errors(caplog, "points lost") == 0


async def test_the_spool_keeps_free_space_for_the_host_and_counts_what_it_drops(
    small_fs: Mount, influxdb1: InfluxDB1, caplog: pytest.LogCaptureFixture
) -> None:
    state = small_fs("16m")
    reserve = 6 * MiB
    influxdb1.stop()
    sink = build_sink(make_settings(state, influxdb1, min_free_bytes=reserve))
    fill(state, leave=reserve + 5 * MiB + 60_000)  # 5 MiB: room the WAL may grow into
    before = sample("envoy_ingest_dropped_points_total", reason="spool_min_free_bytes")
    submitted: list[Point] = []
    for i in range(120):
        submitted += cycle_points(i)
        sink.submit(cycle_points(i))
        st = os.statvfs(state)
        assert st.f_bavail * st.f_frsize >= reserve
    dropped = spooled(sink).report().dropped
    assert dropped > 0 and queue(sink).degraded.reason is None
    assert sample("envoy_ingest_dropped_points_total", reason="spool_min_free_bytes") == (
        before + dropped
    )
    assert "spool.min_free_bytes" in caplog.text
    influxdb1.start()
    report = await sink.drain(20)
    await sink.close()
    got = influxdb1.lines()
    assert report.delivered == len(got) == len(submitted) - dropped
    kept = expected_lines(submitted)
    assert all(line in kept for line in got)
    newest_missing = max(line.time for line in kept if line not in got)
    assert all(line.time >= newest_missing for line in got)  # the oldest went first


async def test_a_damaged_spool_is_moved_aside_and_what_it_holds_can_be_replayed(
    tmp_path: Path, influxdb1: InfluxDB1, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    old = influx_sink(state, influxdb1.influxdb_settings())  # nothing delivered yet
    spooled: list[Point] = []
    for i in range(60):
        spooled += totals_points(T0 + 60 * i)
        old.submit(totals_points(T0 + 60 * i))
    await old.close()
    path = state / "spool.sqlite"
    assert path.stat().st_size > 20 * 4096
    with path.open("r+b") as f:  # a leaf page in the middle gets garbage (an SD card's doing)
        f.seek(12 * 4096)
        f.write(os.urandom(4096))

    settings = make_settings(state, influxdb1)
    health = running_health()
    sink = build_sink(settings, health)
    (moved,) = state.glob("spool.sqlite.corrupt-*[0-9]Z")
    assert f"envoy-ingest replay {moved}" in caplog.text
    assert health.report().body["status"] == "ok"  # a fresh spool, not degraded
    new = totals_points(T0 + 86400)
    sink.submit(new)
    report = await sink.drain(10)
    await sink.close()
    assert influxdb1.lines() == expected_lines(new)
    assert report.delivered == len(new)

    found = salvage(moved)
    assert 0 < found.points < len(spooled) and found.unreadable_rows > 0
    intact = [p for _, body, _ in found.rows for p in parse(body.decode())]
    cfg = tmp_path / "settings.toml"
    cfg.write_text(
        f'[[gateways]]\nhost = "127.0.0.1:9"\n[state]\ndirectory = "{state}"\n'
        f'[influxdb]\nurl = "{influxdb1.url}"\napi = "v1"\ndatabase = "solar"\n'
    )
    assert await asyncio.to_thread(main, ["replay", str(moved), "-c", str(cfg)]) == 0
    got = influxdb1.lines()
    assert got == sorted(
        expected_lines(new) + intact,
        key=lambda ln: (ln.measurement, sorted(ln.tags.items()), ln.time),
    )
    assert len(got) == len(new) + found.points  # each intact point once
    assert not list(state.glob("*.replay.sqlite"))  # done: the work file is gone


async def test_a_read_only_state_directory_delivers_from_memory(
    small_fs: Mount, influxdb1: InfluxDB1, caplog: pytest.LogCaptureFixture
) -> None:
    state = small_fs("4m")
    remount(state, "ro")
    health = running_health()
    sink = build_sink(make_settings(state, influxdb1), health)
    assert health.report().body["degraded"]["spool"].endswith("Read-only file system")
    assert sample("envoy_ingest_degraded", component="spool", fault="read_only") == 1
    submitted: list[Point] = []
    for i in range(3):
        submitted += cycle_points(i)
        sink.submit(cycle_points(i))
    await sink.drain(10)
    assert influxdb1.lines() == expected_lines(submitted)
    remount(state, "rw")
    submitted += cycle_points(3)
    sink.submit(cycle_points(3))
    report = await sink.drain(10)
    await sink.close()
    assert health.report().body["status"] == "ok"
    assert (state / "spool.sqlite").exists()
    assert influxdb1.lines() == expected_lines(submitted)
    assert (report.delivered, report.dropped) == (len(submitted), 0)
    assert errors(caplog, "cannot use the spool") == 1


async def test_memory_is_bounded_oldest_first_and_a_stop_counts_what_is_left(
    small_fs: Mount, influxdb1: InfluxDB1, caplog: pytest.LogCaptureFixture
) -> None:
    state = small_fs("1m")
    remount(state, "ro")
    influxdb1.stop()
    sink = build_sink(make_settings(state, influxdb1, memory_max_points=1000))
    before = sample("envoy_ingest_dropped_points_total", reason="memory_full")
    stopped = sample("envoy_ingest_dropped_points_total", reason="stopped")
    submitted: list[Point] = []
    for i in range(200):
        submitted += totals_points(T0 + 60 * i)
        sink.submit(totals_points(T0 + 60 * i))
    assert queue(sink).pending_points == 994  # 142 batches of 7: the newest kept
    assert spooled(sink).report().dropped == 1400 - 994
    assert sample("envoy_ingest_dropped_points_total", reason="memory_full") == before + 406
    await sink.close()  # InfluxDB away, the spool read-only: the rest is counted, said once
    assert sample("envoy_ingest_dropped_points_total", reason="stopped") == stopped + 994
    assert errors(caplog, "stopping: 994 points held in memory could not be delivered") == 1
    assert errors(caplog, "cannot use the spool") == 1


def unit_stop_timeout() -> float:
    unit = (Path(__file__).parent.parent / "deploy/systemd/envoy-ingest.service").read_text()
    match = re.search(r"^TimeoutStopSec=(\d+)s?$", unit, re.M)
    assert match, "the unit sets TimeoutStopSec"
    return float(match.group(1))


def test_sigterm_during_an_outage_with_an_unwritable_spool_stops_in_time_and_counts(
    small_fs: Mount, influxdb1: InfluxDB1, tmp_path: Path
) -> None:
    """The real `envoy-ingest run`: the state filesystem read-only, InfluxDB away.
    It polls on, says so once, and on SIGTERM stops within the unit's stop
    timeout, counting each point it could neither deliver nor spool."""
    spool_dir = small_fs("1m")
    remount(spool_dir, "ro")
    influxdb1.stop()
    exe = Path(sys.executable).with_name("envoy-ingest")
    with Simulator(SimulatorConfig(family="legacy", cts="1phase", inverters=4)) as sim:
        cfg = write_settings(
            tmp_path,
            gateway_table(sim),
            extra=f'[influxdb]\nurl = "{influxdb1.url}"\napi = "v1"\ndatabase = "solar"\n'
            f'[spool]\npath = "{spool_dir / "spool.sqlite"}"\nmin_free_bytes = 0\n'
            "[stdout]\nenabled = true\n"
            "[schedule]\ntotals_interval = 1\ndevices_interval = 2\njitter = 0\n",
        )
        out, err = tmp_path / "out.lp", tmp_path / "err.log"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            worker = subprocess.Popen(
                [str(exe), "run", "-c", str(cfg)], stdout=stdout, stderr=stderr
            )
            time.sleep(4)
            assert worker.poll() is None  # still running, collecting into memory
            worker.send_signal(signal.SIGTERM)
            started = time.monotonic()
            rc = worker.wait(unit_stop_timeout())
            took = time.monotonic() - started
    log = err.read_text()
    polled = len(parse(out.read_text()))
    assert rc == 0 and took < unit_stop_timeout()
    assert polled > 10
    assert log.count("cannot use the spool") == 1
    assert f"stopping: {polled} points held in memory could not be delivered or spooled" in log
    influxdb1.start()
    assert influxdb1.count() == 0


def test_a_state_directory_removed_while_running_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    spool = DurableQueue(state / "spool.sqlite", 64 * MiB, 0, 1000)
    rows = [("totals", b"m v=%d %d\n" % (i, T0 + i), 1) for i in range(5)]
    spool.append(rows[:3])
    shutil.rmtree(state)  # a clean-up script, a wrong `rm -rf`
    spool.append(rows[3:])  # the open file is gone: rescued, the spool made anew
    assert spool.degraded.reason is None and spool.pending_points == 5
    assert [e.body for e in spool.peek(100)] == [b for _, b, _ in rows]
    assert (state / "spool.sqlite").is_file()
    assert errors(caplog, "vanished or was replaced") == 1  # the start, then the end
    assert errors(caplog, "the spool works again") == 1
    spool.close()


def test_a_degraded_mode_is_said_once_with_a_summary_every_ten_minutes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(0.0)
    health = running_health()
    degraded = Degraded("spool", health, clock)
    fault = OSError(errno.ENOSPC, "No space left on device")
    for _ in range(3):  # one poll after another
        degraded.enter(fault, "it starts")
        degraded.summary(5)
    assert health.report().body["degraded"] == {"spool": "[Errno 28] No space left on device"}
    clock.t += SUMMARY_INTERVAL
    degraded.drop(3, "memory_full")
    degraded.summary(7)
    degraded.summary(7)
    clock.t += 60
    degraded.leave("the spool works again")
    degraded.leave("the spool works again")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "it starts",
        "spool still degraded for 600 s ([Errno 28] No space left on device): "
        "7 points held in memory, 3 dropped",
        "the spool works again after 660 s; 3 points were dropped meanwhile",
    ]
    assert health.report().body["status"] == "ok"
    assert sample("envoy_ingest_degraded", component="spool", fault="disk_full") == 0
