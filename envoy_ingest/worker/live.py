"""The live job: ``/ivp/meters/readings`` every few seconds, the gateway first.

Opt-in (``[schedule] live_interval``, per gateway ``live_interval``), on sites
with CTs only: without them the production figure changes only when the
microinverters report (about every 5 minutes), so the job is not scheduled and
the log says why. Its reads run in the slots of :mod:`.slots` (a third kind,
``live``), at a phase half a live interval away from the totals job's, and
share the gateway's lock with the totals and devices jobs: one request at a
time per gateway. The other jobs come first:

- a live read never waits for the gateway, and never makes a totals or devices
  cycle wait: while one of them holds the gateway or waits for it, and from
  shortly before one is due (twice the last read's duration) until it has
  started (its phase plus the schedule's jitter), the read is skipped
  (``gateway_busy``);
- a live read due while the previous one still runs is skipped, never queued:
  ``gateway_slow`` when the previous read had the gateway for half an
  interval or more, else ``worker_late`` (it started late: a busy event loop,
  the in-flight bound, a slot that fired late);
- a read that answers slower than half the interval, or fails, doubles the
  gateway's live interval (up to :data:`BACKOFF_LIMIT` seconds); after
  :data:`RECOVER_AFTER` reads in a row that would have been fast enough at
  half of it, it halves again, down to the configured interval (1 s at least:
  the settings' floor).

Skips count in ``envoy_ingest_live_skipped_total{reason}``, reads in
``envoy_ingest_live_reads_total{outcome}``, and the gateways backed off now in
``envoy_ingest_live_backed_off_gateways``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from envoy_ingest.envoy.capabilities import Capabilities
from envoy_ingest.point import Kind
from envoy_ingest.settings import GatewaySettings, ScheduleSettings
from envoy_ingest.telemetry import metrics
from envoy_ingest.worker.poller import CycleResult, GatewayPoller
from envoy_ingest.worker.slots import Slots
from envoy_ingest.worker.spread import next_run, slot

log = logging.getLogger("envoy_ingest.worker.live")

#: The longest a backed-off live interval gets (seconds).
BACKOFF_LIMIT = 120.0
#: Reads in a row fast enough at half the interval before the interval halves.
RECOVER_AFTER = 3
#: What a live read is expected to take before the first one was timed (s).
FIRST_GUESS = 0.5


def live_offset(totals_offset: float, interval: float) -> float:
    """The live job's phase: half a live interval away from the totals job's, so a
    totals run falls between two live reads."""
    return (totals_offset + interval / 2) % interval


def live_interval(gateway: GatewaySettings, schedule: ScheduleSettings) -> int:
    """The gateway's live interval (s; 0: off): its own, else the schedule's."""
    return schedule.live_interval if gateway.live_interval is None else gateway.live_interval


def live_requests_per_hour(interval: float) -> float:
    """Requests an hour of a live job every ``interval`` seconds (0: off)."""
    return 3600 / interval if interval else 0.0


def plan(caps: Capabilities, interval: int) -> str:
    """The live plan in one line (``discover`` and the log)."""
    if not interval:
        return "live: off ([schedule] live_interval = 0)"
    if not caps.cts:
        return (
            "live: not scheduled: the site has no CTs (its production changes only when "
            "the microinverters report, about every 5 minutes)"
        )
    rph = live_requests_per_hour(interval)
    return f"live: /ivp/meters/readings every {interval} s ({rph:.0f} requests an hour)"


@dataclass(slots=True)
class LiveState:
    """One gateway's live job."""

    interval: int  # configured (s)
    others: list[tuple[float, float, float]]  # (phase, interval, jitter): totals, devices
    busy: int = 0  # totals / devices cycles running or waiting for the gateway
    other_began: float = 0.0  # wall time the latest totals / devices cycle began
    factor: int = 1  # backed off: a read every ``factor`` intervals
    good: int = 0  # reads in a row fast enough for half the interval
    due: float = 0.0  # steady time of the next read while backed off
    began: float | None = None  # steady time the running read began
    took: float = FIRST_GUESS  # the latest read's duration (s)
    planned: bool = False  # the plan was said

    @property
    def effective(self) -> float:
        return float(self.interval * self.factor)


class LiveReads:
    """The live jobs of a worker's gateways.

    ``lock(label)`` is the gateway's lock (shared with its other jobs, which
    run their cycles within :meth:`other`).
    """

    def __init__(
        self,
        lock: Callable[[str], asyncio.Lock | None],
        *,
        steady: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._lock = lock
        self._slots: tuple[AsyncIOScheduler, Slots] | None = None
        self._steady = steady
        self._wall = wall
        self._states: dict[str, LiveState] = {}
        self.skipped: dict[str, int] = {"worker_late": 0, "gateway_slow": 0, "gateway_busy": 0}

    def schedule(
        self,
        scheduler: AsyncIOScheduler,
        slots: Slots,
        poller: GatewayPoller,
        schedule: ScheduleSettings,
        offsets: tuple[float, float],
        now: float,
    ) -> None:
        """Put ``poller``'s live job (if on) in its slot, half a live interval away
        from its totals phase; ``offsets``: its totals and devices offsets."""
        self._slots = (scheduler, slots)
        interval = live_interval(poller.settings, schedule)
        if not interval:
            self.remove(poller.label)
            return
        others = [
            (offset, every, min(schedule.jitter, every / 4))
            for offset, every in zip(
                offsets, (schedule.totals_interval, schedule.devices_interval), strict=True
            )
        ]
        self.add(poller.label, interval, others)
        offset = live_offset(offsets[0], interval)
        slots.add(scheduler, poller, "live", offset, interval, now=now, ramp=1, jitter=0.0)

    def add(self, label: str, interval: int, others: list[tuple[float, float, float]]) -> None:
        """Watch gateway ``label``'s live job; ``others``: the (offset, interval,
        jitter) of its totals and devices jobs."""
        self.remove(label)
        phases = [(slot(offset, every)[1], every, jitter) for offset, every, jitter in others]
        self._states[label] = LiveState(interval, phases)

    @contextlib.contextmanager
    def other(self, label: str) -> Iterator[None]:
        """Around a totals or devices cycle of gateway ``label``: while it wants or
        has the gateway, no live read starts."""
        state = self._states.get(label)
        if state is None:
            yield
            return
        state.busy += 1
        state.other_began = self._wall()
        try:
            yield
        finally:
            state.busy -= 1

    def describe(self, pollers: Iterable[GatewayPoller], schedule: ScheduleSettings) -> str:
        """For the start-up line: how many gateways are asked for live data."""
        n = sum(1 for p in pollers if live_interval(p.settings, schedule))
        return f"; live data asked of {n} (metered sites only, said once probed)" if n else ""

    def remove(self, label: str) -> None:
        state = self._states.pop(label, None)
        if state is not None and state.factor > 1:
            metrics.live_backed_off(-1)

    def state(self, label: str) -> LiveState | None:
        return self._states.get(label)

    def missed(self, label: str, kind: Kind, reason: str, count: int = 1) -> None:
        """The slot found the previous read still running (``still running``), fired
        too late (``started too late``) or ``count`` intervals passed without a read
        started (``no poll started``: the worker was late)."""
        state = self._states.get(label)
        cause = "worker_late"
        began = state.began if state is not None else None
        if reason == "still running" and began is not None and state is not None:
            cause = "gateway_slow" if self._steady() - began >= state.interval / 2 else cause
        self._skip(cause, count)

    def _skip(self, cause: str, count: int = 1) -> None:
        self.skipped[cause] += count
        metrics.record_live_skipped(cause, count)

    async def run(
        self, poller: GatewayPoller, on_result: Callable[[CycleResult], None] | None
    ) -> CycleResult | None:
        """What the live slot runs: :meth:`read`, from which nothing escapes (a
        cancelled read, at stop, and a bug are a read that did not happen)."""
        try:
            result = await self.read(poller)
        except asyncio.CancelledError:
            return None
        except Exception:
            log.exception("%s: live read failed unexpectedly", poller.label)
            return None
        if result is not None and on_result is not None:
            on_result(result)
        return result

    async def read(self, poller: GatewayPoller) -> CycleResult | None:
        """One live read of ``poller``'s gateway when due and the gateway is free;
        ``None`` when nothing was read (not probed yet, backed off, or skipped)."""
        label = poller.label
        state = self._states.get(label)
        lock = self._lock(label)
        caps = poller.caps
        if state is None or lock is None or caps is None:
            return None  # the totals job probes the gateway first
        if not state.planned:
            state.planned = True
            log.info("%s: %s", label, plan(caps, state.interval))
        if not caps.cts:
            if self._slots is not None:
                scheduler, slots = self._slots
                slots.leave(scheduler, label, "live")
            return None
        now = self._steady()
        if state.factor > 1 and now + state.interval / 2 < state.due:
            return None  # backed off: not this interval
        if lock.locked() or state.busy or self._other_due(state):
            self._skip("gateway_busy")
            return None
        state.began = now
        state.due = now + state.effective
        async with lock:
            deadline = asyncio.get_running_loop().time() + state.effective * 0.9
            result = await poller.poll_live(deadline)
        state.began = None
        metrics.record_live_read("ok" if result.ok else "error")
        if not result.sink_failed:  # the gateway's pace: its answer time, not the disk's
            took = result.answered_in
            self._pace(label, state, self._steady() - now if took is None else took, result)
        return result

    def _other_due(self, state: LiveState) -> bool:
        """A totals or devices run of the gateway is due before this read would end,
        or due and not yet begun (within the jitter that may delay it)."""
        wall = self._wall()
        guard = 2 * state.took
        for phase, every, jitter in state.others:
            ahead = next_run(wall, phase, every) - wall
            if ahead < guard:
                return True
            since = every - ahead  # since the latest due time
            if since <= jitter and state.other_began < wall - since:
                return True
        return False

    def _pace(self, label: str, state: LiveState, took: float, result: CycleResult) -> None:
        """Back off after a slow or failed read; come back after fast ones."""
        state.took = took
        if not result.ok or took > state.effective / 2:
            limit = max(1, int(BACKOFF_LIMIT // state.interval))
            if state.factor * 2 <= limit:
                if state.factor == 1:
                    metrics.live_backed_off(1)
                state.factor *= 2
                why = f"failed: {result.error}" if not result.ok else f"answered in {took:.2f} s"
                log.warning(
                    "%s: live reads every %g s now (the gateway %s); back to %d s once it "
                    "answers fast again",
                    label,
                    state.effective,
                    why,
                    state.interval,
                )
            state.good = 0
            return
        if state.factor == 1:
            return
        if took > state.effective / 4:
            state.good = 0
            return
        state.good += 1
        if state.good >= RECOVER_AFTER:
            state.good = 0
            state.factor //= 2
            state.due = self._steady()  # the next slot reads
            if state.factor == 1:
                metrics.live_backed_off(-1)
            log.info("%s: live reads every %g s again", label, state.effective)
