"""What the worker asks of the host, and how it copes when the host misbehaves:
enough open files for a fleet, a garbage collector paced for one, and a host
clock that jumps (NTP after boot)."""

from __future__ import annotations

import gc
import logging
import resource
import time
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from envoy_ingest.envoy.tokens.claims import duration_text
from envoy_ingest.worker.spread import next_run

log = logging.getLogger("envoy_ingest.worker.scheduler")

# How often the worker looks for a jump of the host clock (seconds, monotonic).
CLOCK_CHECK_SECONDS = 5.0
#: Container allocations (net) between two collections of the youngest
#: generation while the worker runs (Python's default is 700).
GC_YOUNG_THRESHOLD = 7000


def after_clock_jump(scheduler: AsyncIOScheduler, jump: float, now: float | None = None) -> None:
    """The host clock jumped by ``jump`` seconds: keep polling at the same pace.

    APScheduler's interval triggers (the slots' :class:`.grid.GridTrigger` is
    one) run on wall time. After a forward jump it
    runs each job once (``coalesce``, ``misfire_grace_time`` of one interval)
    and goes on: no burst. After a backward jump it would wait until its old
    next run time came round again, i.e. stop polling for as long as the clock
    went back; so each job is put back on its own phase (the phase of its start
    date, set by :mod:`.spread`): its next run is the first time at its phase at
    or after ``now`` (Unix seconds; the host clock if None), within one interval.
    A fleet stays spread: no burst of polls."""
    log.warning(
        "the host clock jumped %s by %s%s",
        "forward" if jump > 0 else "back",
        duration_text(abs(jump)),
        "; every job rescheduled at its phase" if jump < 0 else "; polling goes on as before",
    )
    if jump >= 0:
        return
    at = time.time() if now is None else now
    for job in scheduler.get_jobs():
        trigger = job.trigger
        if isinstance(trigger, IntervalTrigger):
            phase = trigger.start_date.timestamp()
            when = next_run(at, phase, trigger.interval_length)
            job.modify(next_run_time=datetime.fromtimestamp(when, UTC))


def raise_fd_limit(gateways: int, wanted: int) -> None:
    """Lift the soft open-file limit towards ``wanted`` (one kept-alive connection per
    gateway, plus the requests in flight), up to the hard limit: systemd's default
    soft limit of 1024 would stop a fleet at about a thousand gateways."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning(
            "only %d files may be open (the hard limit); %d gateways may need %d: "
            "raise LimitNOFILE= or ulimit -n",
            target,
            gateways,
            wanted,
        )


def pace_gc() -> Callable[[], None]:
    """Run the cyclic garbage collector's youngest generation every
    :data:`GC_YOUNG_THRESHOLD` container allocations instead of every 700; returns
    the function that puts the previous thresholds back.

    Each request and each answer builds thousands of short-lived dicts and lists
    (parsed JSON, points), nearly all freed by their reference counts before any
    collection. A 1,000-gateway worker spent 1.7 % of its CPU collecting at the
    default, 0.5 % at 7,000 (docs/operations.md#fleets). Memory is unchanged:
    what a collection finds is rare (reference cycles), and it is found at most
    7,000 allocations later."""
    before = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *before[1:])
    return lambda: gc.set_threshold(*before)
