"""The SQLite spool: order, durability across restarts and kill -9, the size bound."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from envoy_ingest.errors import SinkError
from envoy_ingest.sink.spool import ROW_OVERHEAD, Spool

MiB = 1024 * 1024


def body(i: int, size: int = 100) -> bytes:
    line = f"enphase_system,gateway=g{i} production_w={i}.5 {1795478340 + i}"
    return (line.ljust(size - 1, " ") if size > len(line) + 1 else line).encode() + b"\n"


def test_rows_come_back_in_order_and_survive_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", MiB)
    for i in range(10):
        spool.append([("totals", body(i), 1), ("devices", body(100 + i) * 2, 2)])
    assert (spool.pending_points, spool.pending_batches) == (30, 20)
    first = spool.peek(4)
    assert [(e.target, e.points) for e in first] == [("totals", 1), ("devices", 2), ("totals", 1)]
    spool.delete(first[:2])
    spool.close()

    spool = Spool(tmp_path / "spool.sqlite", MiB)
    assert (spool.pending_points, spool.pending_batches) == (27, 18)
    rest = spool.peek(1000)
    assert rest[0].body == body(1)
    assert [e.id for e in rest] == sorted(e.id for e in rest)
    assert spool.peek(1)[0] == rest[0]  # at least one row, even when it is larger
    stats = spool.stats()
    assert stats.points == 27 and stats.batches == 18 and stats.oldest is not None
    spool.close()
    inspected = Spool.inspect(tmp_path / "spool.sqlite", MiB)
    assert inspected is not None and inspected.points == 27
    assert "27 points waiting in the spool" in inspected.describe()
    assert Spool.inspect(tmp_path / "absent.sqlite", MiB) is None


def test_replace_keeps_the_row_in_place(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", MiB)
    spool.append([("totals", body(1) + body(2), 2)])
    spool.append([("totals", body(3), 1)])
    entry = spool.peek(1)[0]
    spool.replace(entry, body(2), 1)
    assert [e.body for e in spool.peek(10)] == [body(2), body(3)]
    assert spool.pending_points == 2
    spool.close()


def test_full_spool_drops_the_oldest_loudly_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.sqlite"
    spool = Spool(path, MiB)
    size = 1000
    per_row = size + ROW_OVERHEAD
    rows = 3 * MiB // per_row  # three times what fits
    with caplog.at_level(logging.WARNING):
        for i in range(rows):
            spool.append([("totals", body(i, size), 1)])
    kept = spool.pending_batches
    assert 0.7 * MiB // per_row < kept <= MiB // per_row  # SQLite's pages cost a little
    assert spool.dropped_points == rows - kept
    assert [e.body for e in spool.peek(10**6)] == [body(i, size) for i in range(rows - kept, rows)]
    assert "SPOOL FULL: dropped the oldest" in caplog.text
    assert "spool.max_bytes = 1048576" in caplog.text
    spool.close()
    # The count persists; the file itself stays under the bound.
    assert Spool(path, MiB).dropped_points == rows - kept
    assert path.stat().st_size <= MiB + 2 * 4096  # give or take the newest batch


def test_a_second_process_cannot_take_the_same_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", MiB)
    with pytest.raises(SinkError, match="in use by another envoy-ingest process"):
        Spool(tmp_path / "spool.sqlite", MiB)
    spool.close()
    Spool(tmp_path / "spool.sqlite", MiB).close()


def test_a_file_that_is_not_a_spool_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "spool.sqlite").write_text("not a database, just text\n" * 100)
    with pytest.raises(SinkError, match=r"cannot open the spool .*\(spool.path\)"):
        Spool(tmp_path / "spool.sqlite", MiB)


CHILD = """
import sys
from pathlib import Path
from envoy_ingest.sink.spool import Spool
spool = Spool(Path(sys.argv[1]), 64 * 1024 * 1024)
i = spool.pending_batches
while True:
    body = b"".join(b"m,g=%d f=%d.5 %d\\n" % (i, j, 1795478340 + i) for j in range(50))
    spool.append([("totals", body, 50)])
    print(i, flush=True)   # after the commit returned: acknowledged
    i += 1
"""


def test_kill_9_loses_no_acknowledged_batch_and_replays_no_torn_one(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    acknowledged = -1
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        for _ in range(150):
            acknowledged = int(child.stdout.readline())
        child.send_signal(signal.SIGKILL)
        child.wait()
        # What the child printed before the kill landed (it runs on while we
        # read) is acknowledged too: read the pipe to its end.
        for line in child.stdout.read().splitlines(keepends=True):
            if line.endswith("\n"):
                acknowledged = int(line)
        child.stdout.close()
    spool = Spool(path, 64 * MiB)
    entries = spool.peek(10**9)
    numbers = [int(e.body.split(b",g=")[1].split(b" ")[0]) for e in entries]
    # Every acknowledged batch is there, in order, once; at most one more that
    # committed before the kill but had not printed yet.
    assert numbers[: acknowledged + 1] == list(range(acknowledged + 1))
    assert numbers == list(range(len(numbers)))
    assert len(numbers) <= acknowledged + 2
    for e in entries:
        assert e.points == 50
        assert e.body.count(b"\n") == 50 and e.body.endswith(b"\n")
    spool.close()
