"""The gateways' jobs in APScheduler: one interval job per slot, not per gateway.

Each job of a gateway runs at a stable phase of its interval (:mod:`.spread`),
rounded down to a slot of half a second. For each kind (totals, devices, live) and
each slot that holds a gateway there is one APScheduler interval job; when it
fires it starts one cycle per gateway of the slot, each its own asyncio task
(they poll concurrently and independently). APScheduler's cost (its job store,
trigger arithmetic, executor, events) is then paid per slot, not per gateway:
at 5,000 gateways, about 40 gateways share each totals slot.

What a gateway sees is what one job per gateway gave:

- its first run is at its phase within its start window (``first_run``): until
  then its slot passes it by;
- the slot's job runs once in every interval at the slot's phase
  (:class:`.grid.GridTrigger`): jitter (``[schedule] jitter``) delays a whole
  slot's run within its interval, never the runs after it;
- a cycle never overlaps the previous cycle of the same job: a gateway still
  busy when its slot fires misses that cycle (``still running``);
- a slot run that starts too late (APScheduler's misfire: later than one
  interval) is a missed cycle of every gateway in it (``started too late``);
  runs coalesce, so a late slot runs once, never in a burst.

Missed cycles are counted as a gateway sees them: every interval at its phase,
from its first run on, in which none of its cycles of that job started is one
missed cycle, whether APScheduler said why (the reasons above) or not (its
runs were coalesced after the event loop stalled: ``no poll started``, counted
when its next cycle starts). Each interval counts once. They count in
``envoy_ingest_missed_cycles_total`` and are logged as
``<gateway>:<job>: cycle missed (<reason>)``; a kind may have its own handler
instead (``missed``: the live job counts its skips by cause, without a log line).
After a jump of the host clock
the count starts again from the next cycle: intervals the clock jumped over
are not missed cycles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobEvent
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from envoy_ingest.point import Kind
from envoy_ingest.telemetry import metrics
from envoy_ingest.worker.grid import GridTrigger
from envoy_ingest.worker.poller import GatewayPoller
from envoy_ingest.worker.spread import first_run, interval_index, next_run, slot

log = logging.getLogger("envoy_ingest.worker.scheduler")

RunJob = Callable[[GatewayPoller, Kind], Coroutine[Any, Any, object]]
#: Handles a missed cycle: (gateway label, kind, reason).
Missed = Callable[[str, Kind, str, int], None]  # label, kind, reason, count

_PREFIX = "slot:"


@dataclass(slots=True)
class Member:
    """A gateway in a slot."""

    poller: GatewayPoller
    due: float  # Unix time of its first run; 0 once it ran
    cycle: asyncio.Task[None] | None = None  # its cycle of this job, while it runs
    # The last interval at its phase (``spread.interval_index``) with a cycle started
    # or a missed cycle counted; None: none since it joined or the clock jumped.
    seen: int | None = None


@dataclass(slots=True)
class Slot:
    kind: Kind
    index: int
    interval: float
    phase: float  # seconds into each interval, from the Unix epoch
    members: dict[str, Member] = field(default_factory=dict)

    @property
    def job_id(self) -> str:
        return _job_id(self.kind, self.index)


def _job_id(kind: Kind, index: int) -> str:
    return f"{_PREFIX}{kind}:{index}"


class Slots:
    """The slots of both kinds and their APScheduler jobs.

    ``run_job`` runs one cycle of one gateway (nothing may escape it), each in its
    own task, kept in ``running`` while it runs so that a stop can cancel it.
    ``clock`` is the wall clock APScheduler runs on (Unix seconds). ``missed``
    handles the missed cycles of the kinds it names, instead of :meth:`missed`.
    """

    def __init__(
        self,
        run_job: RunJob,
        running: set[asyncio.Task[object]],
        clock: Callable[[], float] = time.time,
        missed: dict[Kind, Missed] | None = None,
    ) -> None:
        self._run_job = run_job
        self._running = running
        self._clock = clock
        self._missed: dict[Kind, Missed] = dict(missed or {})
        self._slots: dict[str, Slot] = {}  # by job id
        self._of: dict[str, list[Slot]] = {}  # the slots of each gateway, by label

    def add(
        self,
        scheduler: AsyncIOScheduler,
        poller: GatewayPoller,
        kind: Kind,
        offset: float,
        interval: float,
        *,
        now: float,
        ramp: int,
        jitter: float,
    ) -> float:
        """Put ``kind`` of ``poller`` in the slot of ``offset``, with its first run in
        one of the first ``ramp`` intervals after ``now`` (Unix seconds). Returns that
        first run. The slot's job is created with its first member."""
        label = poller.label
        self._forget(scheduler, label, kind)
        index, phase = slot(offset, interval)
        key = _job_id(kind, index)
        found = self._slots.get(key)
        if found is None:
            found = self._slots[key] = Slot(kind, index, interval, phase)
            at = datetime.fromtimestamp(next_run(now, phase, interval), UTC)
            scheduler.add_job(
                self._fire,
                GridTrigger(interval, at, jitter),
                args=[found],
                coalesce=True,
                max_instances=1,
                misfire_grace_time=int(interval),
                next_run_time=at,
                id=key,
                name=f"{kind} slot {index}",
                replace_existing=True,
            )
        due = first_run(poller.settings.identity, now, phase, interval, ramp)
        # Its intervals count from the one of its first run.
        seen = interval_index(due, phase, interval) - 1
        found.members[label] = Member(poller, due, seen=seen)
        self._of.setdefault(label, []).append(found)
        return due

    def remove(self, scheduler: AsyncIOScheduler, label: str) -> None:
        """Take gateway ``label`` out of its slots; a slot left empty loses its job."""
        for found in self._of.pop(label, []):
            self._leave(scheduler, found, label)

    def leave(self, scheduler: AsyncIOScheduler, label: str, kind: Kind) -> None:
        """Take gateway ``label`` out of its ``kind`` slot (its other jobs stay)."""
        self._forget(scheduler, label, kind)

    def clear(self, scheduler: AsyncIOScheduler) -> None:
        """Remove every slot and its job: when the schedule changes, every gateway is
        added again (a slot is made for one interval)."""
        for found in list(self._slots.values()):
            self._drop(scheduler, found)
        self._of.clear()

    def all_due(self) -> None:
        """Every gateway runs at its slot's next run, first runs included (after the
        host clock went back: a first run set by the old clock could be days away)."""
        for found in self._slots.values():
            for member in found.members.values():
                member.due = 0.0
        self.clock_jumped()

    def clock_jumped(self) -> None:
        """The host clock jumped: the intervals it jumped over (or will go through
        again) are no missed cycles; each gateway's count starts again from its next
        cycle."""
        for found in self._slots.values():
            for member in found.members.values():
                member.seen = None

    def first_runs(self) -> dict[tuple[str, Kind], float]:
        """When each gateway's job first runs, by (label, kind); 0 once it ran."""
        return {
            (label, found.kind): member.due
            for found in self._slots.values()
            for label, member in found.members.items()
        }

    def on_missed(self, event: JobEvent) -> None:
        """APScheduler's listener: a slot run was skipped or started too late."""
        found = self._slots.get(str(event.job_id))
        if found is None:
            return  # not a slot (the heartbeat), or removed meanwhile
        reason = "still running" if event.code == EVENT_JOB_MAX_INSTANCES else "started too late"
        scheduled = event.scheduled_run_time.timestamp()
        k = interval_index(scheduled, found.phase, found.interval)
        for label, member in found.members.items():
            if member.due <= scheduled:  # a gateway not yet started missed nothing
                self._account(found, label, member, k, reason)

    def _account(self, found: Slot, label: str, member: Member, k: int, reason: str) -> None:
        """Interval ``k`` of a gateway: a cycle started (``reason`` empty) or none for
        ``reason``. Intervals since the last one accounted for had none started. An
        interval already accounted for (it had a cycle, or its miss was counted)
        counts no more."""
        seen = member.seen
        if seen is not None and k <= seen:
            return
        member.seen = k
        if seen is not None and k - seen > 1:
            self._report(label, found.kind, "no poll started", k - seen - 1)
        if reason:
            self._report(label, found.kind, reason)

    def _report(self, label: str, kind: Kind, reason: str, count: int = 1) -> None:
        """``count`` missed cycles of ``kind``: to its own handler, else :meth:`missed`."""
        self._missed.get(kind, self.missed)(label, kind, reason, count)

    @staticmethod
    def missed(label: str, kind: Kind, reason: str, count: int = 1) -> None:
        metrics.record_missed_cycle(kind, count)
        if count == 1:
            log.warning("%s:%s: cycle missed (%s)", label, kind, reason)
        else:
            log.warning("%s:%s: %d cycles missed (%s)", label, kind, count, reason)

    async def _fire(self, found: Slot) -> None:
        """The slot's job: start a cycle of each of its gateways that is due."""
        # A run is never early (APScheduler waits for the wall time) but may be late
        # (jitter, a busy loop): a first run due within half an interval is this one.
        now = self._clock()
        horizon = now + found.interval / 2
        k = interval_index(now, found.phase, found.interval)
        create = asyncio.get_running_loop().create_task
        for label, member in found.members.items():
            if member.due:
                if horizon < member.due:
                    continue
                member.due = 0.0
            if member.cycle is not None:
                self._account(found, label, member, k, "still running")
                continue
            self._account(found, label, member, k, "")
            member.cycle = create(self._cycle(member, found.kind))
            self._running.add(member.cycle)

    async def _cycle(self, member: Member, kind: Kind) -> None:
        try:
            await self._run_job(member.poller, kind)
        finally:
            if member.cycle is not None:
                self._running.discard(member.cycle)
            member.cycle = None

    def _forget(self, scheduler: AsyncIOScheduler, label: str, kind: Kind) -> None:
        slots = self._of.get(label)
        if slots:
            for found in [s for s in slots if s.kind == kind]:
                slots.remove(found)
                self._leave(scheduler, found, label)

    def _leave(self, scheduler: AsyncIOScheduler, found: Slot, label: str) -> None:
        """Gateway ``label`` leaves slot ``found``; a slot left empty loses its job."""
        found.members.pop(label, None)
        if not found.members:
            self._drop(scheduler, found)

    def _drop(self, scheduler: AsyncIOScheduler, found: Slot) -> None:
        self._slots.pop(found.job_id, None)
        with contextlib.suppress(JobLookupError):
            scheduler.remove_job(found.job_id)
