"""The in-memory stand-in for the spool while the spool cannot be written.

The same FIFO as :class:`envoy_ingest.sink.spool.Spool` (a
:class:`~envoy_ingest.sink.queue.PointQueue`), bounded by a number of points:
beyond it live rows go first (the oldest first), then the oldest others, counted
(live data never costs a totals or devices point). Its rows carry negative ids,
so a row always says which of the two queues it came from.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

from envoy_ingest.sink.queue import Row, SpoolEntry, oldest


class MemoryQueue:
    def __init__(self, max_points: int) -> None:
        self.max_points = max_points
        self._rows: deque[SpoolEntry] = deque()
        self._points = 0
        self._live = 0  # live rows held
        self.dropped_live = 0  # of the points the latest append dropped, live ones
        self._next_id = -1

    @property
    def pending_points(self) -> int:
        return self._points

    def append(self, entries: Sequence[Row]) -> int:
        """Hold ``(target, body, points)`` rows; return the points dropped for room
        (:attr:`dropped_live` says how many of them were live)."""
        now = time.time()
        for target, body, points in entries:
            if body:
                self._rows.append(SpoolEntry(self._next_id, target, points, body, now))
                self._next_id -= 1
                self._points += points
                if target == "live":
                    self._live += 1
        self.dropped_live = 0
        if self._points <= self.max_points:
            return 0
        dropped = 0
        if self._live:
            kept: deque[SpoolEntry] = deque()
            for row in self._rows:
                if row.target == "live" and self._points > self.max_points:
                    self._points -= row.points
                    self.dropped_live += row.points
                    self._live -= 1
                else:
                    kept.append(row)
            self._rows = kept
            dropped = self.dropped_live
        while self._points > self.max_points and self._rows:
            oldest = self._rows.popleft()
            self._points -= oldest.points
            dropped += oldest.points
        return dropped

    def peek(self, max_points: int) -> list[SpoolEntry]:
        """The oldest rows, up to ``max_points`` points (at least one row if any)."""
        return oldest(self._rows, max_points)

    def delete(self, entries: Sequence[SpoolEntry]) -> None:
        ids = {e.id for e in entries}
        kept = deque(r for r in self._rows if r.id not in ids)
        self._points = sum(r.points for r in kept)
        self._live = sum(1 for r in kept if r.target == "live")
        self._rows = kept

    def replace(self, entry: SpoolEntry, body: bytes, points: int) -> SpoolEntry:
        """Shrink a row to its part not yet delivered (after a split send)."""
        new = SpoolEntry(entry.id, entry.target, points, body, entry.created)
        self._rows = deque(new if r.id == entry.id else r for r in self._rows)
        self._points = sum(r.points for r in self._rows)
        return new

    def rows(self) -> list[Row]:
        """Everything held, oldest first, as ``(target, body, points)``."""
        return [(r.target, r.body, r.points) for r in self._rows]

    def clear(self) -> None:
        self._rows.clear()
        self._points = 0
        self._live = 0

    def disk_bytes(self) -> int:
        return 0

    def close(self) -> None:
        """Nothing to release: what memory holds goes with the process (the
        :class:`~envoy_ingest.sink.durable.DurableQueue` moves it to the spool first)."""
