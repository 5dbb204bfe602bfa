"""The queue the delivery works from, declared once (:class:`PointQueue`).

Three queues keep line-protocol batches until the server has them: the SQLite
spool (:class:`~envoy_ingest.sink.spool.Spool`), its bounded in-memory stand-in
(:class:`~envoy_ingest.sink.memory.MemoryQueue`) and the queue that switches
between the two (:class:`~envoy_ingest.sink.durable.DurableQueue`). The
delivery (:class:`~envoy_ingest.sink.delivery.SpooledDelivery`) uses only this
protocol, so it works from any of them.

Telegraf's output buffer is the model, with its four verbs:

- **add** is :meth:`PointQueue.append`: keep rows, oldest dropped for room
  (the points dropped are returned; the delivery counts them, once);
- **batch** is :meth:`PointQueue.peek`: the oldest rows, up to a number of
  points, without taking them out;
- **accept** is :meth:`PointQueue.delete` (the server has them, or the
  dead-letter file), and :meth:`PointQueue.replace` for a row accepted in part
  (a split send): what is left of it stays at its place;
- **reject** needs no call: a batch is only read, so what is not accepted
  stays at the head and is the next batch, in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

#: A batch to keep: ``(target, body, points)``: the job's kind (which bucket),
#: complete line-protocol lines, and how many.
Row = tuple[str, bytes, int]


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """A kept row: its place in the queue (``id``: increasing in the spool,
    negative in memory), target, points, body and when it was kept (Unix time)."""

    id: int
    target: str
    points: int
    body: bytes
    created: float


class PointQueue(Protocol):
    """A bounded FIFO of line-protocol rows (see the module's docstring)."""

    @property
    def pending_points(self) -> int:
        """Points kept and not yet accepted."""
        ...

    def append(self, entries: Sequence[Row]) -> int:
        """Keep ``entries`` (oldest first); return the old points dropped for room."""
        ...

    def peek(self, max_points: int) -> list[SpoolEntry]:
        """The oldest rows, up to ``max_points`` points (at least one row if any)."""
        ...

    def delete(self, entries: Sequence[SpoolEntry]) -> None:
        """Accept ``entries``: they are delivered (or dead-lettered)."""
        ...

    def replace(self, entry: SpoolEntry, body: bytes, points: int) -> SpoolEntry:
        """Accept part of ``entry``: ``body`` (``points`` lines) is what is left of it."""
        ...

    def disk_bytes(self) -> int:
        """Bytes the queue takes on disk (0 in memory)."""
        ...

    def close(self) -> None: ...


def oldest(rows: Iterable[SpoolEntry], max_points: int) -> list[SpoolEntry]:
    """The first of ``rows`` up to ``max_points`` points (at least one row if any):
    a batch, by the same rule in every queue."""
    out: list[SpoolEntry] = []
    total = 0
    for row in rows:
        if out and total + row.points > max_points:
            break
        out.append(row)
        total += row.points
    return out
