"""The file sink (one YYYY-MM-DD.lp per UTC day, whole lines only) and stdout."""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envoy_ingest.point import Point
from envoy_ingest.sink import FileSink, StdoutSink
from envoy_ingest.sink._append import LineAppender
from envoy_ingest.sink.file import day_file
from tests.lp import parse, read_dir
from tests.support.builders import device_points, totals_points

# 2026-11-23 23:59:00 UTC and one minute later, the next UTC day.
LATE = 1795478340
NEXT_DAY = LATE + 60


async def test_points_go_to_the_file_of_their_utc_day(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "data")
    sink.submit(totals_points(LATE) + totals_points(NEXT_DAY))
    sink.submit(device_points(LATE))
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "2026-11-23.lp",
        "2026-11-24.lp",
    ]
    day1 = parse((tmp_path / "data" / "2026-11-23.lp").read_text())
    day2 = parse((tmp_path / "data" / "2026-11-24.lp").read_text())
    assert {ln.time for ln in day1} == {LATE}
    assert {ln.time for ln in day2} == {NEXT_DAY}
    assert len(day1) == 7 + 26 and len(day2) == 7
    system = next(ln for ln in day1 if ln.measurement == "enphase_system")
    assert system.tags == {"gateway": "122238082690", "site": "home"}
    assert system.fields["production_w"] == 1234.5 + LATE % 997
    assert type(system.fields["inverters"]) is int
    assert system.fields["battery_state"] == "charging"
    inverter = next(ln for ln in day1 if ln.measurement == "enphase_inverter")
    assert inverter.fields["producing"] is True
    assert sink.points_written == 40
    assert (await sink.drain(1.0)).complete


def test_each_batch_goes_to_the_day_file_of_its_second(tmp_path: Path) -> None:
    """The sink remembers each UTC day's file: still the right file at the exact
    second of midnight, back and forth, and after it forgot older days."""
    sink = FileSink(tmp_path)
    midnight = NEXT_DAY - NEXT_DAY % 86400
    times = [midnight - 1, midnight, midnight - 1, midnight + 86399, midnight + 86400]
    times += [midnight + 86400 * k for k in range(2, 80)] + [midnight - 1, midnight]
    for t in times:
        sink.submit([Point("enphase_system", {"production_w": 1.0}, t)])
    written: dict[str, list[int]] = {}
    for path in tmp_path.iterdir():
        written[path.name] = [ln.time for ln in parse(path.read_text())]
    expected: dict[str, list[int]] = {}
    for t in times:
        expected.setdefault(day_file(tmp_path, t).name, []).append(t)
    assert written == expected
    assert written["2026-11-23.lp"] == [midnight - 1] * 3
    assert written["2026-11-24.lp"] == [midnight, midnight + 86399, midnight]
    assert written["2026-11-25.lp"] == [midnight + 86400]


def test_a_day_file_removed_between_batches_is_created_again(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "data")
    sink.submit(totals_points(LATE))
    (tmp_path / "data" / "2026-11-23.lp").unlink()
    sink.submit(totals_points(LATE + 1))
    assert [ln.time for ln in read_dir(tmp_path / "data")] == [LATE + 1] * 7
    (tmp_path / "data" / "2026-11-23.lp").unlink()
    (tmp_path / "data").rmdir()
    sink.submit(totals_points(LATE + 2))
    assert [ln.time for ln in read_dir(tmp_path / "data")] == [LATE + 2] * 7
    assert not sink.degraded.active


def test_appends_and_leaves_out_points_without_writable_fields(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    sink.submit([Point("enphase_system", {"production_w": float("nan")}, LATE)])
    assert not list(tmp_path.iterdir())
    sink.submit(totals_points(LATE))
    FileSink(tmp_path).submit(totals_points(LATE - 60))
    assert len(read_dir(tmp_path)) == 14


def test_a_torn_last_line_is_cut_off_before_appending(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "2026-11-23.lp"
    path.write_bytes(b"enphase_system production_w=1.0 1795478280\nenphase_system product")
    FileSink(tmp_path).submit(totals_points(LATE))
    lines = parse(path.read_text())
    assert len(lines) == 8
    assert lines[0].fields == {"production_w": 1.0}
    assert "partial last line (22 bytes)" in caplog.text


def test_a_failed_write_leaves_no_part_of_the_batch_and_is_written_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FileSink(tmp_path)
    sink.submit(totals_points(LATE))
    before = (tmp_path / "2026-11-23.lp").read_bytes()
    real_write = os.write
    calls = 0

    def disk_full_half_way(fd: int, data: bytes | memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full_half_way)
    sink.submit(totals_points(LATE + 1))  # held in memory, said once
    sink.submit(totals_points(LATE + 2))
    monkeypatch.undo()
    assert (tmp_path / "2026-11-23.lp").read_bytes() == before
    assert sink.held_points == 14 and sink.degraded.active
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "No space left on device (check file.directory); collecting on" in errors[0]
    sink.submit(totals_points(LATE + 3))  # writable again: the held points go first
    assert not sink.degraded.active and sink.held_points == 0
    lines = (tmp_path / "2026-11-23.lp").read_bytes().splitlines()
    times = [int(line.rsplit(b" ", 1)[1]) for line in lines]
    assert times == [LATE] * 7 + [LATE + 1] * 7 + [LATE + 2] * 7 + [LATE + 3] * 7
    assert "writing " + str(tmp_path) + " again after" in caplog.text


def test_points_beyond_the_memory_bound_are_dropped_oldest_first(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "gone", memory_max_points=10)
    (tmp_path / "gone").write_text("a file where the directory should be")
    sink.submit(totals_points(LATE))
    sink.submit(totals_points(LATE + 1))
    assert (sink.held_points, sink.dropped) == (10, 4)
    (tmp_path / "gone").unlink()
    sink.submit([])
    assert sink.held_points == 0
    times = [p.time for p in parse((tmp_path / "gone" / "2026-11-23.lp").read_text())]
    assert times == [LATE] * 3 + [LATE + 1] * 7


LINE = b'enphase_system,gateway=1 production_w=1234.5,text="%s" 1795478340\n' % (b"x" * 200)
CHILD = f"""
import sys
from pathlib import Path
from envoy_ingest.sink._append import LineAppender
batch = {LINE!r} * 20000   # ~4.5 MB per write: long enough to be killed in the middle
appender = LineAppender()
print("ready", flush=True)
for _ in range(20):  # at most 90 MB, should the parent never get to kill it
    appender.append(Path(sys.argv[1]), batch)
"""


def test_kill_9_during_writes_never_leaves_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "2026-11-23.lp"
    # SIGKILL in the middle of a 4.5 MB write leaves a torn tail about one time in
    # three here: kill until that happened (or 15 times).
    for attempt in range(15):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        time.sleep(0.03 + 0.02 * (attempt % 5))
        child.send_signal(signal.SIGKILL)
        child.wait()
        if not path.read_bytes().endswith(b"\n"):
            break
    # A torn tail may be on disk now; the next writer cuts it before appending.
    last = b"enphase_system,gateway=1 production_w=1.0 1795478341\n"
    LineAppender().append(path, last)
    data = path.read_bytes()
    assert data.endswith(last)
    written = data[: -len(last)].splitlines(keepends=True)
    assert written, "the children wrote nothing"
    assert set(written) == {LINE}


def test_stdout_sink_prints_line_protocol() -> None:
    out = io.StringIO()
    sink = StdoutSink(out)
    sink.submit(totals_points(LATE))
    assert len(parse(out.getvalue())) == 7


def test_stdout_sink_stops_printing_on_a_closed_pipe(caplog: pytest.LogCaptureFixture) -> None:
    class Closed(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError

    sink = StdoutSink(Closed())
    sink.submit(totals_points(LATE))
    sink.submit(totals_points(LATE))
    assert caplog.text.count("no longer printing") == 1
