"""The one queue protocol (sink/queue.py): the spool, the memory queue and the
durable queue keep, batch and accept rows by the same rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from envoy_ingest.sink.durable import DurableQueue
from envoy_ingest.sink.memory import MemoryQueue
from envoy_ingest.sink.queue import PointQueue, SpoolEntry, oldest
from envoy_ingest.sink.spool import Spool

MiB = 1024 * 1024


@pytest.fixture(params=["spool", "memory", "durable"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PointQueue]:
    made: PointQueue  # mypy checks that each implements the protocol
    if request.param == "spool":
        made = Spool(tmp_path / "spool.sqlite", 64 * MiB)
    elif request.param == "memory":
        made = MemoryQueue(1000)
    else:
        made = DurableQueue(tmp_path / "spool.sqlite", 64 * MiB, 0, 1000)
    yield made
    made.close()


def rows(entries: list[SpoolEntry]) -> list[tuple[str, bytes, int]]:
    return [(e.target, e.body, e.points) for e in entries]


def test_add_batch_accept_in_order(queue: PointQueue) -> None:
    added = [("totals", b"a 1\n", 1), ("devices", b"b 1\nc 1\n", 2), ("totals", b"", 0)]
    assert queue.append(added) == 0  # nothing dropped; the empty row is not kept
    assert queue.pending_points == 3
    batch = queue.peek(2)  # 1 + 2 points would be more than 2
    assert rows(batch) == [("totals", b"a 1\n", 1)]
    assert rows(queue.peek(0)) == [("totals", b"a 1\n", 1)]  # at least one row
    assert queue.peek(2) == batch  # not accepted (a rejected batch): the same again
    queue.delete(batch)
    assert queue.pending_points == 2
    (entry,) = queue.peek(10)
    assert rows([entry]) == [("devices", b"b 1\nc 1\n", 2)]
    left = queue.replace(entry, b"c 1\n", 1)  # its first line was accepted
    assert (left.id, left.target, left.created) == (entry.id, entry.target, entry.created)
    assert rows([left]) == [("devices", b"c 1\n", 1)]
    assert queue.pending_points == 1
    assert queue.append([("totals", b"d 1\n", 1)]) == 0
    assert rows(queue.peek(10)) == [("devices", b"c 1\n", 1), ("totals", b"d 1\n", 1)]
    queue.delete(queue.peek(10))
    assert queue.pending_points == 0 and queue.peek(10) == []
    assert (queue.disk_bytes() > 0) == (not isinstance(queue, MemoryQueue))


def test_a_batch_is_the_oldest_rows_up_to_a_number_of_points() -> None:
    made = [SpoolEntry(i, "totals", n, b"x\n" * n, 0.0) for i, n in enumerate((3, 2, 4, 1))]
    assert [e.id for e in oldest(made, 5)] == [0, 1]
    assert [e.id for e in oldest(made, 4)] == [0]
    assert [e.id for e in oldest(made, 1)] == [0]  # a row larger than the batch goes alone
    assert [e.id for e in oldest(made, 100)] == [0, 1, 2, 3]
    assert oldest([], 5) == []


def test_the_memory_queue_drops_the_oldest_for_room() -> None:
    memory = MemoryQueue(1000)
    assert memory.append([("totals", b"x\n" * 600, 600)]) == 0
    assert memory.append([("devices", b"y\n" * 500, 500)]) == 600
    assert rows(memory.peek(10_000)) == [("devices", b"y\n" * 500, 500)]
    assert memory.pending_points == 500
    assert all(e.id < 0 for e in memory.peek(10_000))  # memory's rows say where they are
