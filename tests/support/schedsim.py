"""APScheduler's own timing on a simulated clock, for days of a fleet's schedule
in seconds of test time.

:class:`SimulatedScheduler` does with the jobs of a paused ``AsyncIOScheduler``
what APScheduler 3's ``_process_jobs`` and its asyncio executor do with them
(apscheduler/schedulers/base.py, executors/base.py ``run_coroutine_job``), on
a clock the test moves: a job is taken when its next run time comes (plus how
late the scheduler wakes: ``late``), its run times are the job's own
``Job._get_run_times(now)`` (its trigger's arithmetic), coalesced to the last
when the job coalesces; a run more than ``misfire_grace_time`` late is skipped
and ``EVENT_JOB_MISSED`` goes to the scheduler's listeners; otherwise the job's
coroutine is awaited. The job's next run time is then
``trigger.get_next_fire_time(last run time, now)``, as APScheduler sets it.

The worker's :class:`~envoy_ingest.worker.slots.Slots` runs on the same clock
(``clock=sim.time``), and the cycles it starts run before the clock moves on.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

#: How late the scheduler wakes for a run due at the given time (seconds).
Lateness = Callable[[float], float]


class SimulatedScheduler:
    def __init__(self, scheduler: AsyncIOScheduler, start: float) -> None:
        self.scheduler = scheduler
        self.now = start
        self.missed_events = 0

    def time(self) -> float:
        return self.now

    async def run(self, until: float, late: Lateness) -> None:
        """Run the scheduler's jobs (those it holds now) until ``until`` (Unix seconds)."""
        queue = [
            (job.next_run_time.timestamp(), n, job)
            for n, job in enumerate(self.scheduler.get_jobs())
            if job.next_run_time is not None
        ]
        heapq.heapify(queue)
        while queue and queue[0][0] <= until:
            due, n, job = heapq.heappop(queue)
            self.now = max(self.now, due + late(due))
            now = datetime.fromtimestamp(self.now, UTC)
            run_times = job._get_run_times(now)
            if job.coalesce:
                run_times = run_times[-1:]
            for run_time in run_times:
                if self.now - run_time.timestamp() > job.misfire_grace_time:
                    self.missed_events += 1
                    event = JobExecutionEvent(EVENT_JOB_MISSED, job.id, "default", run_time)
                    self.scheduler._dispatch_event(event)
                else:
                    await job.func(*job.args, **job.kwargs)
            following = job.trigger.get_next_fire_time(run_times[-1], now)
            job._modify(next_run_time=following)
            await asyncio.sleep(0)  # the cycles started run (and end)
            if following is not None:
                heapq.heappush(queue, (following.timestamp(), n, job))
