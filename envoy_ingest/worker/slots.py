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
- a cycle never overlaps the previous cycle of the same job: a gateway still
  busy when its slot fires misses that cycle (``still running``);
- a slot run that starts too late (APScheduler's misfire: later than one
  interval) is a missed cycle of every gateway in it (``started too late``);
  runs coalesce, so a late slot runs once, never in a burst;
- jitter (``[schedule] jitter``) delays a whole slot, not each gateway.

Missed cycles count in ``envoy_ingest_missed_cycles_total`` and are logged as
``<gateway>:<job>: cycle missed (<reason>)``; a kind may have its own handler
instead (``missed``: the live job counts its skips by cause, without a log line).
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
from envoy_ingest.service import metrics
from envoy_ingest.worker.poller import GatewayPoller
from envoy_ingest.worker.spread import first_run, next_run, slot

log = logging.getLogger("envoy_ingest.worker.scheduler")

RunJob = Callable[[GatewayPoller, Kind], Coroutine[Any, Any, object]]
#: Handles a missed cycle: (gateway label, kind, reason).
Missed = Callable[[str, Kind, str], None]

_PREFIX = "slot:"


@dataclass(slots=True)
class Member:
    """A gateway in a slot."""

    poller: GatewayPoller
    due: float  # Unix time of its first run; 0 once it ran
    cycle: asyncio.Task[None] | None = None  # its cycle of this job, while it runs


@dataclass(slots=True)
class Slot:
    kind: Kind
    index: int
    interval: float
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
            found = self._slots[key] = Slot(kind, index, interval)
            at = datetime.fromtimestamp(next_run(now, phase, interval), UTC)
            scheduler.add_job(
                self._fire,
                "interval",
                args=[found],
                seconds=interval,
                start_date=at,
                jitter=jitter or None,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=int(interval),
                next_run_time=at,
                id=key,
                name=f"{kind} slot {index}",
                replace_existing=True,
            )
        due = first_run(poller.settings.identity, now, phase, interval, ramp)
        found.members[label] = Member(poller, due)
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
        for label, member in found.members.items():
            if member.due <= scheduled:  # a gateway not yet started missed nothing
                self._missed.get(found.kind, self.missed)(label, found.kind, reason)

    @staticmethod
    def missed(label: str, kind: Kind, reason: str) -> None:
        metrics.record_missed_cycle(kind)
        log.warning("%s:%s: cycle missed (%s)", label, kind, reason)

    async def _fire(self, found: Slot) -> None:
        """The slot's job: start a cycle of each of its gateways that is due."""
        # A run is never early (APScheduler waits for the wall time) but may be late
        # (jitter, a busy loop): a first run due within half an interval is this one.
        horizon = self._clock() + found.interval / 2
        create = asyncio.get_running_loop().create_task
        for label, member in found.members.items():
            if member.due:
                if horizon < member.due:
                    continue
                member.due = 0.0
            if member.cycle is not None:
                self._missed.get(found.kind, self.missed)(label, found.kind, "still running")
                continue
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
