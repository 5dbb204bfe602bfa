"""Group commit in the file sink: a day file is fsynced at most once per
``[file] fsync_interval``, never later than that after its last fsync, and
every acknowledged batch is in the file (a ``kill -9`` loses nothing)."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from envoy_ingest.sink import FileSink
from envoy_ingest.sink._append import OPEN_FILES, LineAppender
from tests.lp import parse
from tests.support.builders import totals_points

LATE = 1795478340  # 2026-11-23 23:59:00 UTC


def line(k: int) -> bytes:
    return b"enphase_system,gateway=%d production_w=1.5 1795478340\n" % k


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The files fsynced (not directories), in order; the real fsync still runs."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


async def test_a_burst_is_fsynced_once_per_interval(tmp_path: Path, fsyncs: list[int]) -> None:
    clock = Clock()
    appender = LineAppender(1.0, clock=clock)
    path = tmp_path / "a.lp"
    appender.append(path, line(0))  # the first batch: fsynced at once
    assert len(fsyncs) == 1 and appender.pending == []
    for k in range(1, 10):  # 9 more within the interval: written, not fsynced
        clock.now += 0.1
        appender.append(path, line(k))
    assert len(fsyncs) == 1 and appender.pending == [path]
    assert path.read_bytes() == b"".join(line(k) for k in range(10))
    # The deferred sync is due one interval after the last fsync.
    timer = appender._timer
    assert timer is not None
    loop = asyncio.get_running_loop()
    # Set at the first deferred batch (0.1 s after the fsync): 0.9 s later.
    assert timer.when() - loop.time() == pytest.approx(0.9, abs=0.05)
    clock.now += 0.05  # a timer that fired early syncs nothing and waits on
    appender.sync_due()
    assert len(fsyncs) == 1 and appender._timer is not None
    clock.now += 0.05  # 1.0 s after the first fsync
    appender.sync_due()
    assert len(fsyncs) == 2 and appender.pending == []
    clock.now += 0.5
    appender.append(path, line(10))
    assert len(fsyncs) == 2 and appender.pending == [path]
    appender.close()  # stop: what is pending is fsynced
    assert len(fsyncs) == 3 and appender.pending == [] and appender._timer is None
    assert path.read_bytes() == b"".join(line(k) for k in range(11))


async def test_batches_further_apart_than_the_interval_are_fsynced_at_once(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    clock = Clock()
    sink = FileSink(tmp_path, fsync_interval=1.0, clock=clock)
    for k in range(4):  # a home install: one batch a minute
        sink.submit(totals_points(LATE + k))
        assert len(fsyncs) == k + 1 and sink._appender.pending == []
        assert sink._appender._timer is None
        clock.now += 60.0
    await sink.close()
    assert len(fsyncs) == 4
    assert len(parse((tmp_path / "2026-11-23.lp").read_text())) == 28


async def test_fsync_interval_0_fsyncs_every_batch(tmp_path: Path, fsyncs: list[int]) -> None:
    clock = Clock()
    sink = FileSink(tmp_path, fsync_interval=0, clock=clock)
    for k in range(5):  # a burst, no clock movement
        sink.submit(totals_points(LATE + k))
        assert len(fsyncs) == k + 1 and sink._appender.pending == []
    assert sink._appender._timer is None
    await sink.close()
    assert len(fsyncs) == 5


def test_without_an_event_loop_every_batch_is_fsynced_at_once(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    appender = LineAppender(1.0, clock=Clock())
    for k in range(3):
        appender.append(tmp_path / "a.lp", line(k))
        assert len(fsyncs) == k + 1 and appender.pending == []
    appender.close()
    assert len(fsyncs) == 3


async def test_a_deleted_or_replaced_day_file_is_opened_again(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    clock = Clock()
    appender = LineAppender(1.0, clock=clock)
    path = tmp_path / "a.lp"
    appender.append(path, line(0))
    path.unlink()
    appender.append(path, line(1))
    assert path.read_bytes() == line(1)
    other = tmp_path / "other.lp"
    other.write_bytes(line(7))
    os.replace(other, path)
    appender.append(path, line(2))
    assert path.read_bytes() == line(7) + line(2)
    rotated = tmp_path / "a.lp.1"
    clock.now += 0.1
    appender.append(path, line(3))  # deferred
    os.rename(path, rotated)
    before = len(fsyncs)
    appender.append(path, line(4))  # the rotated file's pending batch is fsynced first
    assert len(fsyncs) == before + 2  # the rotated file, then the new one (never fsynced)
    assert rotated.read_bytes() == line(7) + line(2) + line(3)
    assert path.read_bytes() == line(4)
    appender.close()


async def test_only_the_most_recent_files_stay_open_and_evicted_ones_are_synced(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    clock = Clock()
    appender = LineAppender(1.0, clock=clock)
    n = OPEN_FILES
    paths = [tmp_path / f"{k}.lp" for k in range(n + 2)]
    for path in paths:
        appender.append(path, line(0))  # each file's first batch: fsynced
    clock.now += 0.1
    for path in paths[2:]:
        appender.append(path, line(1))  # deferred
    assert sorted(appender.pending) == sorted(paths[2:]) and len(appender._open) == n
    assert len(fsyncs) == n + 2
    appender.append(paths[0], line(1))  # opens paths[0] again, closes paths[2] (synced)
    assert len(fsyncs) == n + 4 and len(appender._open) == n
    assert sorted(appender.pending) == sorted(paths[3:])
    appender.close()
    assert len(fsyncs) == n + 4 + (n - 1)
    assert [p.read_bytes() for p in paths] == [line(0) + line(1)] + [line(0)] + [
        line(0) + line(1)
    ] * n


class Board:
    def __init__(self) -> None:
        self.degraded: dict[str, str] = {}

    def set_degraded(self, component: str, reason: str) -> None:
        self.degraded[component] = reason

    def clear_degraded(self, component: str) -> None:
        self.degraded.pop(component, None)


async def test_a_failed_deferred_fsync_is_logged_and_makes_the_sink_degraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    board = Board()
    sink = FileSink(tmp_path, fsync_interval=1.0, clock=clock, status=board)
    sink.submit(totals_points(LATE))
    clock.now += 0.2
    sink.submit(totals_points(LATE + 1))  # deferred

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    clock.now += 0.8
    sink._appender.sync_due()
    path = tmp_path / "2026-11-23.lp"
    assert board.degraded == {
        "file": f"cannot fsync {path}: Input/output error (check file.directory)"
    }
    assert sink.degraded.active
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors[0] == (
        f"cannot fsync {path}: Input/output error; the lines written since its last "
        "fsync may be lost on a power cut (a worker crash loses nothing)"
    )
    clock.now += 0.1
    sink.submit(totals_points(LATE + 2))  # written; still degraded: no fsync succeeded
    assert sink.degraded.active
    monkeypatch.undo()
    clock.now += 1.0
    sink._appender.sync_due()  # succeeds
    sink.submit(totals_points(LATE + 3))
    assert board.degraded == {} and not sink.degraded.active
    await sink.close()
    assert len(parse(path.read_text())) == 28


CHILD = """
import asyncio, os, stat, sys
from pathlib import Path
from envoy_ingest.sink import FileSink
from tests.support.builders import totals_points

fsyncs = 0
real = os.fsync
def counting(fd):
    global fsyncs
    fsyncs += stat.S_ISREG(os.fstat(fd).st_mode)
    real(fd)
os.fsync = counting

async def main():
    sink = FileSink(Path(sys.argv[1]), fsync_interval=3600.0)
    for k in range(50):
        sink.submit(totals_points(1795478340 + k))
        print("acked", k, fsyncs, flush=True)
    await asyncio.sleep(3600)  # killed here, with 49 batches never fsynced

asyncio.run(main())
"""


def test_kill_9_right_after_submit_returns_loses_nothing(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
    )
    assert child.stdout is not None
    acks = [child.stdout.readline() for _ in range(50)]
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert acks[-1] == "acked 49 1\n"  # one fsync, for the first batch only
    lines = parse((tmp_path / "2026-11-23.lp").read_text())
    assert [p.time for p in lines] == [LATE + k for k in range(50) for _ in range(7)]


async def test_a_fleet_writing_to_many_days_keeps_their_files_open(
    tmp_path: Path, fsyncs: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches round robin over 20 day files (a fleet whose points fall on many
    days): each file is opened once and fsynced once, for its first batch; the
    later batches within the interval wait for the deferred sync."""
    opened: list[str] = []
    real_open = os.open

    def counting_open(path: str, *args: int) -> int:
        fd = real_open(path, *args)  # (the first try of a new file raises: not counted)
        if str(path).endswith(".lp"):  # (not the directory, opened for its fsync)
            opened.append(os.path.basename(path))
        return fd

    monkeypatch.setattr(os, "open", counting_open)
    clock = Clock()
    appender = LineAppender(1.0, clock=clock)
    paths = [tmp_path / f"2026-11-{day:02d}.lp" for day in range(1, 21)]
    for k in range(5):
        for path in paths:
            appender.append(path, line(k))
        clock.now += 0.01
    assert sorted(opened) == sorted(p.name for p in paths)
    assert len(fsyncs) == 20 and sorted(appender.pending) == sorted(paths)
    clock.now += 1.0
    appender.sync_due()
    assert len(fsyncs) == 40 and appender.pending == []
    assert all(p.read_bytes() == b"".join(line(k) for k in range(5)) for p in paths)
    appender.close()


async def test_files_written_since_their_fsync_share_the_next_tick(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    """When the deferred sync finds one file due, it fsyncs every file with
    batches waiting, so that files written at different moments share one
    tick rather than each waking the timer."""
    clock = Clock()
    appender = LineAppender(1.0, clock=clock)
    a, b = tmp_path / "a.lp", tmp_path / "b.lp"
    appender.append(a, line(0))  # fsynced at once (t = 0)
    clock.now += 0.5
    appender.append(b, line(1))  # fsynced at once (t = 0.5)
    assert len(fsyncs) == 2
    clock.now += 0.1
    appender.append(a, line(2))  # deferred: due at t = 1.0
    clock.now += 0.1
    appender.append(b, line(3))  # deferred: due at t = 1.5
    assert len(fsyncs) == 2 and sorted(appender.pending) == [a, b]
    clock.now += 0.3  # t = 1.0: a is due, b is not yet
    appender.sync_due()
    assert len(fsyncs) == 4 and appender.pending == [] and appender._timer is None
    clock.now += 0.2
    appender.append(b, line(4))  # b was fsynced at t = 1.0: deferred until t = 2.0
    assert len(fsyncs) == 4 and appender.pending == [b]
    appender.close()
    assert len(fsyncs) == 5
    assert a.read_bytes() == line(0) + line(2)
    assert b.read_bytes() == line(1) + line(3) + line(4)
