"""The spool, or memory while the spool cannot be written: collection never stops.

:class:`DurableQueue` is the FIFO the delivery works from (a
:class:`~envoy_ingest.sink.queue.PointQueue`). Normally it is the
SQLite spool. When the spool cannot be opened or written (a full disk, less
than ``spool.min_free_bytes`` free, a damaged file, a read-only or vanished
directory) it holds new points in a bounded :class:`MemoryQueue` instead
(``spool.memory_max_points``; beyond it the oldest go first, counted), and the
delivery sends them from there. At every later submit it tries the spool
again; as soon as that works, what memory holds goes into the spool (one
transaction, oldest first) and the spool is used again, without a restart.

- A **damaged** spool (not a database, malformed) is moved aside with
  :func:`envoy_ingest.statefile.quarantine` (with its ``-wal`` and ``-shm``),
  with a message naming ``envoy-ingest replay FILE``; a fresh spool starts.
- A spool file that **vanished** while open: the rows the open connection
  still reads are rescued into memory before it is closed.
- Rows still in a spool that merely cannot be written (disk full) stay there
  and are delivered once it opens again.
- The log says it once when the degraded mode starts and once when it ends,
  with a summary (points held, points dropped) every ``SUMMARY_INTERVAL``
  seconds in between; ``/healthz`` (via the :class:`StatusBoard`) and
  ``/metrics`` (``envoy_ingest_degraded``, ``envoy_ingest_memory_points``,
  ``envoy_ingest_dropped_points_total``) show the state and its reason.
- At :meth:`close`, points still in memory go into the spool if it can be
  opened, else they are counted as dropped (reason ``stopped``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from envoy_ingest.errors import SinkError, SpoolCorrupt, SpoolInUse
from envoy_ingest.sink.base import StatusBoard
from envoy_ingest.sink.degraded import Degraded
from envoy_ingest.sink.memory import MemoryQueue
from envoy_ingest.sink.queue import Row, SpoolEntry
from envoy_ingest.sink.spool import Spool
from envoy_ingest.statefile import quarantine
from envoy_ingest.telemetry import metrics

log = logging.getLogger(__name__)

COMPONENT = "spool"


class DurableQueue:
    def __init__(
        self,
        path: Path,
        max_bytes: int,
        min_free_bytes: int,
        memory_max_points: int,
        *,
        status: StatusBoard | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self.degraded = Degraded(COMPONENT, status, clock)
        self._memory = MemoryQueue(memory_max_points)
        self._spool: Spool | None = None
        self._stranded = 0  # points left in a spool file we could not keep open
        self._spool = self._open(initial=True)

    # --- opening, losing and regaining the spool ----------------------------------

    def _open(self, *, initial: bool = False) -> Spool | None:
        """The spool, or None (degraded). A damaged file is moved aside first.

        At start, a spool held by another process is an error (two workers must
        not share one); later it only keeps the degraded mode going."""
        for attempt in (1, 2):
            try:
                return Spool(self.path, self.max_bytes, self.min_free_bytes)
            except SpoolInUse:
                if initial:
                    raise
                return None
            except SpoolCorrupt as exc:
                if attempt == 2 or not self._quarantine(str(exc)):
                    self._degrade(exc)
                    return None
            except SinkError as exc:
                self._degrade(exc)
                return None
        return None

    def _quarantine(self, reason: str) -> bool:
        moved = quarantine(self.path, reason)
        if moved is None:
            return False
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.replace(
                    self.path.with_name(self.path.name + suffix),
                    moved.with_name(moved.name + suffix),
                )
        log.error(
            "to deliver what the damaged spool still holds, run: envoy-ingest replay %s "
            "(with the same settings; it reads the intact rows)",
            moved,
        )
        return True

    def _lose(self, spool: Spool, exc: SinkError) -> bool:
        """Stop using ``spool`` after ``exc``; keep what can be kept. True when a
        fresh spool may work at once (the file was damaged, or is gone)."""
        detached = spool.detached()
        if detached:
            with contextlib.suppress(SinkError):  # rescue what the open file still holds
                self._count(self._memory.append(_rows(spool.peek(self._memory.max_points))))
        else:
            self._stranded = spool.pending_points
        spool.close()
        self._spool = None
        if isinstance(exc, SpoolCorrupt):
            self._stranded = 0
            self._quarantine(str(exc))
        self._degrade(exc)
        return detached or isinstance(exc, SpoolCorrupt)

    def _degrade(self, exc: BaseException) -> None:
        self.degraded.enter(
            exc,
            f"cannot use the spool: {exc}. Collecting on without it: up to "
            f"{self._memory.max_points} points are held in memory (spool.memory_max_points) "
            "and delivered from there; back to the spool as soon as it can be written, "
            "no restart needed",
        )

    def _count(self, dropped: int, reason: str | None = "memory_full") -> None:
        """Points dropped (the spool records its own metric: ``reason=None``).
        Counted for the degraded mode's messages and metrics; the delivery counts
        what :meth:`append` returns."""
        if reason is not None:
            self.degraded.drop(dropped, reason)
        metrics.set_memory_points(self._memory.pending_points)

    # --- the FIFO -------------------------------------------------------------------

    def append(self, entries: Sequence[Row]) -> int:
        """Keep ``(target, body, points)`` rows: spool, else memory. Never raises
        for a host fault; returns the points dropped to make room."""
        entries = [e for e in entries if e[1]]
        if not entries:
            return 0
        for _ in (1, 2):  # a second go only after a damaged or vanished file
            spool = self._spool if self._spool is not None else self._open()
            if spool is None:
                break
            self._spool = spool
            held = self._memory.rows()
            try:
                dropped = spool.append(held + entries)
            except SinkError as exc:
                if self._lose(spool, exc):
                    continue
                break
            self._memory.clear()
            self._count(dropped, None)
            moved = sum(n for _, _, n in held)
            self.degraded.leave(
                f"the spool works again: moved the {moved} points held in memory into it"
            )
            return dropped
        dropped = self._memory.append(entries)
        live = self._memory.dropped_live
        if live:
            self._count(live, "live_memory_full")
        self._count(dropped - live)
        self.degraded.summary(self._memory.pending_points)
        return dropped

    def peek(self, max_points: int) -> list[SpoolEntry]:
        if self._memory.pending_points or self._spool is None:
            return self._memory.peek(max_points)
        spool = self._spool
        try:
            return spool.peek(max_points)
        except SinkError as exc:
            self._lose(spool, exc)
            return self._memory.peek(max_points)

    def delete(self, entries: Sequence[SpoolEntry]) -> None:
        self._memory.delete([e for e in entries if e.id < 0])
        metrics.set_memory_points(self._memory.pending_points)
        stored = [e for e in entries if e.id >= 0]
        spool = self._spool
        if stored and spool is not None:
            try:
                spool.delete(stored)
            except SinkError as exc:
                self._lose(spool, exc)  # the rows stay in the file: sent again, same points

    def replace(self, entry: SpoolEntry, body: bytes, points: int) -> SpoolEntry:
        if entry.id < 0:
            return self._memory.replace(entry, body, points)
        spool = self._spool
        if spool is not None:
            try:
                return spool.replace(entry, body, points)
            except SinkError as exc:
                self._lose(spool, exc)
        return SpoolEntry(entry.id, entry.target, points, body, entry.created)

    @property
    def pending_points(self) -> int:
        stored = self._spool.pending_points if self._spool is not None else self._stranded
        return self._memory.pending_points + stored

    def disk_bytes(self) -> int:
        return self._spool.disk_bytes() if self._spool is not None else 0

    def close(self) -> None:
        if self._memory.pending_points:
            spool = self._spool if self._spool is not None else self._open()
            if spool is not None:
                self._spool = spool
                with contextlib.suppress(SinkError):
                    moved = self._memory.pending_points
                    spool.append(self._memory.rows())
                    self._memory.clear()
                    log.info("stopping: moved %d points held in memory into the spool", moved)
            lost = self._memory.pending_points
            if lost:
                log.error(
                    "stopping: %d points held in memory could not be delivered or spooled "
                    "(%s); they are lost",
                    lost,
                    self.degraded.reason,
                )
                self._memory.clear()
                self._count(lost, "stopped")
        if self._spool is not None:
            self._spool.close()
            self._spool = None


def _rows(entries: Sequence[SpoolEntry]) -> list[Row]:
    return [(e.target, e.body, e.points) for e in entries]
