"""Spooled delivery: the durable spool in front of any writer (InfluxDB v1 or v2).

It works from any :class:`~envoy_ingest.sink.queue.PointQueue` (the spool, the
memory queue, or the durable queue that switches between them): the worker's
is a :class:`~envoy_ingest.sink.durable.DurableQueue`.

:meth:`SpooledDelivery.submit` only commits the points to the spool (no network),
so polling never waits for InfluxDB. A background task (:meth:`start`) sends
the oldest spooled rows in order, up to ``batch_size`` points per request,
split by target (``bucket`` / ``device_bucket``), and deletes them only when
the server acknowledged them. What it does with each answer
(:mod:`envoy_ingest.sink.answers` classifies them):

- **OK**: delete from the spool.
- **REJECTED** (400/422): bisect by spool row until the rejected rows are
  isolated (resending the good ones is harmless: same points, same times), and
  append each rejected row, under a ``#`` comment with the server's reason, to
  the dead-letter file; then delete it. Never retried, never holding back
  later data. The file imports with ``influx write`` once fixed.
- **TOO_LARGE** (413): split the request in halves, down to single lines (a
  single line still refused goes to the dead-letter file); later requests use
  the smaller size.
- **REFUSED** (401/403/404): an ERROR naming the config key; keep spooling and
  retry at the backoff's pace.
- **RETRY** (network, 5xx, 429/503): wait ``Retry-After`` when given, else
  exponential backoff with jitter; keep spooling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

from envoy_ingest.backoff import Backoff
from envoy_ingest.errors import SinkError
from envoy_ingest.point import KINDS, Kind, Point
from envoy_ingest.sink._append import LineAppender
from envoy_ingest.sink.answers import OK, Outcome, Writer, WriteResult
from envoy_ingest.sink.base import DeliveryReport
from envoy_ingest.sink.lineprotocol import encode_point
from envoy_ingest.sink.queue import PointQueue, SpoolEntry
from envoy_ingest.telemetry import metrics

Queue = TypeVar("Queue", bound=PointQueue)

log = logging.getLogger(__name__)

# Repeat an unchanged delivery error in the log at most this often.
REPEAT_LOG_INTERVAL = 600.0


@dataclass(frozen=True, slots=True)
class SinkStats:
    """Counters since the sink was created, for logs, health and metrics."""

    pending_points: int
    delivered: int
    dead_lettered: int
    dropped: int
    failing_since: float | None  # unix time of the first failure of the current streak
    last_error: str | None


@dataclass(slots=True)
class _Step:
    idle: bool = False
    progress: bool = False
    failure: WriteResult | None = None


def _points(entries: Sequence[SpoolEntry]) -> int:
    return sum(e.points for e in entries)


class SpooledDelivery(Generic[Queue]):
    """Delivery from ``spool``, any :class:`~envoy_ingest.sink.queue.PointQueue`."""

    def __init__(
        self,
        writer: Writer,
        spool: Queue,
        dead_letter_path: Path,
        *,
        batch_size: int = 5000,
        backoff: Backoff | None = None,
        close_grace: float = 15.0,
    ) -> None:
        self.name = "influxdb"
        self.writer = writer
        self.spool = spool
        self.dead_letter_path = Path(dead_letter_path)
        self.batch_size = batch_size
        self.backoff = backoff or Backoff()
        self.close_grace = close_grace
        self._limit = batch_size
        self._appender = LineAppender()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._delivered = 0
        self._dead_lettered = 0
        self._dropped = 0
        self._failing_since: float | None = None
        self._last_error: str | None = None
        self._last_logged = 0.0

    # --- the Sink interface -------------------------------------------------

    def submit(self, points: Sequence[Point]) -> None:
        """Commit ``points`` to the spool, one transaction; no network."""
        lines: dict[Kind, list[str]] = {t: [] for t in KINDS}
        for point in points:
            line = encode_point(point)
            if line is not None:
                lines[point.kind].append(line + "\n")
        entries = [(t, "".join(ls).encode(), len(ls)) for t, ls in lines.items() if ls]
        try:
            dropped = self.spool.append(entries)  # a DurableQueue never raises
        except SinkError as exc:
            log.error("%s; %d points lost", exc, sum(n for _, _, n in entries))
            metrics.record_write_error("spool")
            raise
        self._dropped += dropped
        self._spool_metrics()
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._run(), name=f"deliver to {self.writer.name}")

    async def drain(self, timeout: float) -> DeliveryReport:  # noqa: ASYNC109
        """Deliver what the spool holds, for up to ``timeout`` s (plus one request)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                step = await self._step()
            except Exception:
                log.exception("%s: delivery failed unexpectedly", self.writer.name)
                break
            if step.idle:
                break
            if step.failure is not None:
                if step.failure.outcome is Outcome.REFUSED:
                    break  # needs a configuration change, not time
                delay = self._delay(step.failure)
                if loop.time() + delay > deadline:
                    break
                await asyncio.sleep(delay)
            elif loop.time() >= deadline:
                break
        return self.report()

    async def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.close_grace)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self.writer.aclose()
        self._appender.close()
        self.spool.close()

    # --- state --------------------------------------------------------------

    def report(self) -> DeliveryReport:
        return DeliveryReport(
            delivered=self._delivered,
            pending=self.spool.pending_points,
            dead_lettered=self._dead_lettered,
            dropped=self._dropped,
        )

    def stats(self) -> SinkStats:
        return SinkStats(
            self.spool.pending_points,
            self._delivered,
            self._dead_lettered,
            self._dropped,
            self._failing_since,
            self._last_error,
        )

    def _spool_metrics(self) -> None:
        metrics.set_spool(self.spool.pending_points, self.spool.disk_bytes())

    # --- delivery -----------------------------------------------------------

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                step = await self._step()
            except Exception:
                log.exception("%s: delivery failed unexpectedly; retrying", self.writer.name)
                step = _Step(failure=WriteResult(Outcome.RETRY, "internal error"))
            if self._stop.is_set():
                break
            if step.idle:
                self._wake.clear()
                if self.spool.pending_points == 0:
                    await self._wake.wait()
                continue
            if step.failure is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self._delay(step.failure))

    def _delay(self, failure: WriteResult) -> float:
        if failure.retry_after is not None:
            return failure.retry_after
        return self.backoff.next()

    async def _step(self) -> _Step:
        """Send the oldest rows once (both targets); report what happened."""
        async with self._lock:
            entries = self.spool.peek(self._limit)
            if not entries:
                return _Step(idle=True)
            step = _Step()
            before = self._delivered + self._dead_lettered
            for target in KINDS:
                group = [e for e in entries if e.target == target]
                if not group:
                    continue
                result = await self._send(target, group)
                if result.outcome is not Outcome.OK:
                    step.failure = step.failure or result
                    self._failed(target, result)
                    if result.outcome is Outcome.RETRY:
                        break  # the server is away: the other target would fail too
            step.progress = self._delivered + self._dead_lettered > before
            if step.progress:
                self._spool_metrics()
            if step.failure is None:
                self._recovered()
            elif step.progress:
                self.backoff.reset()
            return step

    async def _send(self, target: Kind, entries: list[SpoolEntry]) -> WriteResult:
        """Deliver ``entries`` (oldest first), splitting on 400 and 413."""
        queue: deque[list[SpoolEntry]] = deque([entries])
        while queue:
            chunk = queue.popleft()
            result = await self.writer.write(target, b"".join(e.body for e in chunk))
            if result.outcome is Outcome.OK:
                self.spool.delete(chunk)
                self._delivered += _points(chunk)
                continue
            if result.outcome is Outcome.TOO_LARGE:
                self._limit = max(1, min(self._limit, _points(chunk) // 2))
                log.warning(
                    "%s: request too large (%d points): splitting; requests now carry "
                    "at most %d points",
                    self.writer.name,
                    _points(chunk),
                    self._limit,
                )
            if result.outcome in (Outcome.REJECTED, Outcome.TOO_LARGE):
                if len(chunk) > 1:
                    mid = len(chunk) // 2
                    queue.extendleft([chunk[mid:], chunk[:mid]])
                    continue
                if result.outcome is Outcome.TOO_LARGE and chunk[0].points > 1:
                    split = await self._send_lines(target, chunk[0])
                    if split.outcome is not Outcome.OK:
                        return split
                    continue
                if not self._dead_letter(target, chunk[0].body, chunk[0].points, result):
                    return WriteResult(Outcome.RETRY, "cannot write the dead-letter file")
                self.spool.delete(chunk)
                continue
            return result
        return OK

    async def _send_lines(self, target: Kind, entry: SpoolEntry) -> WriteResult:
        """Deliver one spooled row in pieces; the spool keeps what is not yet sent."""
        lines = entry.body.splitlines(keepends=True)
        mid = len(lines) // 2
        ranges: deque[tuple[int, int]] = deque([(0, mid), (mid, len(lines))])
        done = 0
        while ranges:
            lo, hi = ranges.popleft()
            body = b"".join(lines[lo:hi])
            result = await self.writer.write(target, body)
            if result.outcome is Outcome.TOO_LARGE and hi - lo > 1:
                half = (lo + hi) // 2
                ranges.extendleft([(half, hi), (lo, half)])
                continue
            if result.outcome is Outcome.OK:
                self._delivered += hi - lo
            elif result.outcome in (Outcome.REJECTED, Outcome.TOO_LARGE):
                if not self._dead_letter(target, body, hi - lo, result):
                    result = WriteResult(Outcome.RETRY, "cannot write the dead-letter file")
                    break
            else:
                break
            done = hi
            if done < len(lines):
                entry = self.spool.replace(entry, b"".join(lines[done:]), len(lines) - done)
        else:
            self.spool.delete([entry])
            return OK
        return result

    def _dead_letter(self, target: Kind, body: bytes, points: int, result: WriteResult) -> bool:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        where = f"{self.writer.name}, {self.writer.destination(target)}"
        header = f"# {stamp} rejected by {where}: {result.message}\n".encode()
        try:
            self._appender.append(self.dead_letter_path, header + body)
        except OSError as exc:
            log.error(
                "cannot write the dead-letter file %s (spool.dead_letter_path): %s; "
                "the rejected points stay spooled",
                self.dead_letter_path,
                exc.strerror or exc,
            )
            return False
        self._dead_lettered += points
        metrics.record_dead_letter(points)
        log.error(
            "%s rejected %d points for %s (%s); they were written to %s and will not be retried",
            self.writer.name,
            points,
            self.writer.destination(target),
            result.message,
            self.dead_letter_path,
        )
        return True

    def _failed(self, target: Kind, result: WriteResult) -> None:
        metrics.record_write_error(result.error_class)
        now = time.time()
        first = self._failing_since is None
        if first:
            self._failing_since = now
        changed = result.message != self._last_error
        self._last_error = result.message
        if first or changed or now - self._last_logged >= REPEAT_LOG_INTERVAL:
            self._last_logged = now
            level = logging.ERROR if result.outcome is Outcome.REFUSED else logging.WARNING
            log.log(
                level,
                "%s: cannot deliver to %s: %s; %d points kept in the spool, retrying",
                self.writer.name,
                self.writer.destination(target),
                result.message,
                self.spool.pending_points,
            )
        else:
            log.debug("%s: still failing: %s", self.writer.name, result.message)

    def _recovered(self) -> None:
        self.backoff.reset()
        if self._failing_since is not None:
            log.info(
                "%s: delivering again after %.0f s of failures; %d points still spooled",
                self.writer.name,
                time.time() - self._failing_since,
                self.spool.pending_points,
            )
        self._failing_since = None
        self._last_error = None
