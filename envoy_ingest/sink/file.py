"""The file sink: line protocol in one ``YYYY-MM-DD.lp`` file per UTC day.

The embedded default when no ``[influxdb]`` table is configured. The day is
the point's own time (UTC), so a late report lands in the file of the day it
describes. Each batch is appended as whole lines before :meth:`FileSink.submit`
returns (so a crash of the worker loses nothing), and fsynced then or, when the
file was fsynced less than ``fsync_interval`` seconds ago (a fleet), by a
deferred sync at most that long after the last (see
:mod:`envoy_ingest.sink._append`); :meth:`FileSink.close` fsyncs what is
pending. The files import into InfluxDB later, unchanged::

    influx write --bucket solar --precision s --file data/2026-11-23.lp

When a file cannot be written (full disk, read-only or vanished directory)
the sink does what the spool does: it holds the points in memory (up to
``spool.memory_max_points``, the oldest dropped first, counted with reason
``file_unwritable``), says so once, retries at every submit, and writes what
it held (oldest first, per day file) as soon as it can; see
:mod:`envoy_ingest.sink.degraded`. ``submit`` never raises for such a fault.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from envoy_ingest.errors import SinkError
from envoy_ingest.point import Point
from envoy_ingest.sink._append import LineAppender
from envoy_ingest.sink.base import ImmediateSink, StatusBoard
from envoy_ingest.sink.degraded import Degraded
from envoy_ingest.sink.lineprotocol import encode_point

log = logging.getLogger(__name__)


DAY = 86400
# Day files remembered per sink (a batch spans one or two days; more only after
# an outage or with a gateway clock that is off): beyond this, forgotten.
_DAYS_KEPT = 64


def day_file(directory: Path, time: int) -> Path:
    """The file a point with timestamp ``time`` (seconds) belongs in."""
    return directory / f"{datetime.fromtimestamp(time, UTC):%Y-%m-%d}.lp"


class FileSink(ImmediateSink):
    name = "file"

    def __init__(
        self,
        directory: Path,
        memory_max_points: int = 200_000,
        *,
        fsync_interval: float = 1.0,
        status: StatusBoard | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        self.points_written = 0
        self.dropped = 0
        self.memory_max_points = memory_max_points
        self.degraded = Degraded("file", status)
        self._held: dict[Path, list[str]] = {}  # day file -> lines (no newline) not yet written
        self._appender = LineAppender(fsync_interval, clock=clock, on_sync_error=self._sync_failed)
        self._days: dict[int, Path] = {}  # UTC day number (time // DAY) -> its day file

    def _day_file(self, time: int) -> Path:
        """:func:`day_file`, computed once per UTC day: a UTC day is exactly 86,400 s
        of Unix time (no leap seconds), so ``time // DAY`` names it."""
        day = time // DAY
        path = self._days.get(day)
        if path is None:
            if len(self._days) >= _DAYS_KEPT:
                self._days.clear()
            path = self._days[day] = day_file(self.directory, time)
        return path

    @property
    def held_points(self) -> int:
        return sum(len(lines) for lines in self._held.values())

    def submit(self, points: Sequence[Point]) -> None:
        held = self._held
        by_day: dict[int, list[str]] = {}  # UTC day number -> lines, in the points' order
        for point in points:
            line = encode_point(point)
            if line is not None:
                day = point.time // DAY
                lines = by_day.get(day)
                if lines is None:
                    lines = by_day[day] = []
                lines.append(line)
        for day, lines in by_day.items():
            path = self._day_file(day * DAY)
            if path in held:
                held[path] += lines
            else:
                held[path] = lines
        failure: SinkError | None = None
        for path in sorted(self._held):
            lines = self._held[path]
            try:
                self._appender.append(path, ("\n".join(lines) + "\n").encode())
            except OSError as exc:
                failure = SinkError(
                    f"cannot write {path}: {exc.strerror or exc} (check file.directory)"
                )
                break
            del self._held[path]
            self.points_written += len(lines)
        if failure is None:
            if not self._appender.sync_failing:
                self.degraded.leave(f"writing {self.directory} again")
            return
        self.degraded.enter(
            failure,
            f"{failure}; collecting on: up to {self.memory_max_points} points are held in "
            "memory (spool.memory_max_points) and written as soon as the directory can be "
            "written again",
        )
        self._bound()
        self.degraded.summary(self.held_points)

    def _sync_failed(self, path: Path, exc: OSError) -> None:
        """A deferred fsync failed: degraded until an fsync succeeds again."""
        failure = SinkError(f"cannot fsync {path}: {exc.strerror or exc} (check file.directory)")
        self.degraded.enter(failure, f"{failure}; lines written since its last fsync may be lost")

    def _bound(self) -> None:
        """Drop the oldest held lines beyond ``memory_max_points``, counted."""
        excess = self.held_points - self.memory_max_points
        for path in sorted(self._held):
            if excess <= 0:
                break
            lines = self._held[path]
            cut = min(excess, len(lines))
            del lines[:cut]
            excess -= cut
            self.dropped += cut
            self.degraded.drop(cut, "file_unwritable")
            if not lines:
                del self._held[path]

    async def close(self) -> None:
        if self._held:
            self.submit([])
        self._appender.close()  # fsyncs what is pending
        lost = self.held_points
        if lost:
            log.error(
                "stopping: %d points could not be written to %s; they are lost",
                lost,
                self.directory,
            )
            self._held.clear()
            self.dropped += lost
            self.degraded.drop(lost, "stopped")
