"""The slots' trigger (worker/grid.py): one run in every interval of a fixed grid,
each delayed by its jitter, never by the jitter of the runs before it; coalesced
and put back on its phase after the host clock went back like an interval job."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from envoy_ingest.worker.grid import GridTrigger
from envoy_ingest.worker.host import after_clock_jump

START = 1_800_000_012.5
AT = datetime.fromtimestamp(START, UTC)


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def fire(trigger: GridTrigger, previous: datetime | None, now: datetime) -> datetime:
    got = trigger.get_next_fire_time(previous, now)
    assert got is not None
    return got


def test_each_run_is_its_grid_point_plus_jitter_never_the_previous_runs_jitter() -> None:
    trigger = GridTrigger(60, AT, jitter=5)
    runs = [fire(trigger, None, at(START - 30))]
    for _ in range(1000):
        runs.append(fire(trigger, runs[-1], runs[-1]))
    offsets = [r.timestamp() - START - 60 * k for k, r in enumerate(runs)]
    assert all(0 <= o <= 5 for o in offsets)
    assert max(offsets) > 4.9 and min(offsets) < 0.1  # jitter on
    # 1,001 runs in 1,001 minutes: the last in the grid's minute 1,000.
    assert START + 60_000 <= runs[-1].timestamp() <= START + 60_005


def test_a_run_a_rounding_error_before_its_grid_point_is_that_point() -> None:
    trigger = GridTrigger(60, AT)
    for previous in (START + 120, START + 120 - 1e-6, START + 120 + 59):
        got = trigger.get_next_fire_time(at(previous), at(previous))
        assert got == at(START + 180), previous


def test_the_first_run_is_the_start_or_the_first_grid_point_from_now() -> None:
    trigger = GridTrigger(60, AT)
    assert trigger.get_next_fire_time(None, at(START - 1000)) == AT
    assert trigger.get_next_fire_time(None, at(START + 120)) == at(START + 120)
    assert trigger.get_next_fire_time(None, at(START + 120.01)) == at(START + 180)
    ended = GridTrigger(60, AT)
    ended.end_date = at(START + 100)
    assert ended.get_next_fire_time(at(START + 60), at(START + 60)) is None


def test_jitter_stays_within_half_the_interval() -> None:
    GridTrigger(60, AT, jitter=30)
    with pytest.raises(ValueError, match="jitter"):
        GridTrigger(60, AT, jitter=30.5)
    with pytest.raises(ValueError, match="interval"):
        GridTrigger(0, AT)


async def test_a_late_job_runs_once_and_after_the_clock_went_back_at_its_phase() -> None:
    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
    scheduler.add_job(
        print, GridTrigger(60, AT, jitter=5), id="slot", coalesce=True, next_run_time=AT
    )
    scheduler.start(paused=True)
    try:
        (job,) = scheduler.get_jobs()
        now = at(START + 3.5 * 60)  # the scheduler woke 3.5 minutes late
        run_times = job._get_run_times(now)
        assert [round(t.timestamp() - START) // 60 for t in run_times] == [0, 1, 2, 3]
        following = fire(job.trigger, run_times[-1], now)  # coalesced: once
        assert START + 240 <= following.timestamp() <= START + 245
        after_clock_jump(scheduler, -5 * 86_400, now=START - 5 * 86_400 + 1)
        (job,) = scheduler.get_jobs()
        back = job.next_run_time.timestamp()
        assert back == pytest.approx(START - 5 * 86_400 + 60, abs=1e-5)  # its phase, next
        following = fire(job.trigger, job.next_run_time, job.next_run_time)
        assert back + 60 <= following.timestamp() <= back + 65
    finally:
        scheduler.shutdown(wait=False)


def test_asked_twice_the_trigger_answers_the_same() -> None:
    """APScheduler asks once to see whether a job is due and once to store its next
    run: a late run must not look due again at once."""
    trigger = GridTrigger(60, AT, jitter=5)
    for k in range(200):
        previous = at(START + 60 * k + 1.5)
        assert fire(trigger, previous, previous) == fire(trigger, previous, previous)
