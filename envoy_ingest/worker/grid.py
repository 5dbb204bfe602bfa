"""A trigger that never drifts: one run in every interval of a fixed grid.

APScheduler 3's ``IntervalTrigger`` computes each next run from the previous
run *with its jitter* plus the interval plus a new ``uniform(0, jitter)``, so
the jitter adds up: with a 60 s interval and 5 s of jitter every interval is
2.5 s longer on average (57.6 runs an hour, not 60), and a gateway's runs walk
away from its phase.

:class:`GridTrigger` keeps the grid ``start_date + k * interval`` (``k`` any
whole number, before the start date too: after the host clock went back the
grid is still the job's phase). Run ``k`` is at grid point ``k`` plus its
jitter, at most half an interval; the run after a run is at the next grid
point, found from the grid point the previous run belongs to, never from the
previous run's jittered time. So there is exactly one run in each interval
``[grid k, grid k+1)``, jitter or not.

A grid point's jitter is spread evenly over ``[0, jitter)`` like a random
draw, but taken from a stable hash of the grid point (:func:`.spread.stable_fraction`):
APScheduler asks for the next run twice when it runs a job (once to see
whether it is due, once to store it), and both answers must agree, or a run
that fell behind could be taken as due again at once.

What APScheduler does around the trigger is unchanged: it asks for the run
after the previous *scheduled* run (a late run does not move the grid); with
``coalesce`` the runs a busy scheduler fell behind on are one run; with
``misfire_grace_time`` a run that could not start in time is skipped and
reported. It is still an ``IntervalTrigger`` (``interval_length``,
``start_date`` on the grid), so :func:`.host.after_clock_jump` puts it back on
its phase like any interval job.
"""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.triggers.interval import IntervalTrigger

from envoy_ingest.worker.spread import GRID_TOLERANCE, interval_index, stable_fraction

#: The largest jitter, as a part of the interval: a run stays inside its interval.
MAX_JITTER = 0.5


class GridTrigger(IntervalTrigger):  # type: ignore[misc]  # APScheduler 3 is untyped
    """Every ``seconds`` from ``start_date`` (on its grid), each run delayed by up to
    ``jitter`` seconds (at most :data:`MAX_JITTER` of the interval)."""

    __slots__ = ()

    def __init__(self, seconds: float, start_date: datetime, jitter: float = 0.0) -> None:
        if seconds <= 0:
            raise ValueError(f"the interval must be positive, not {seconds}")
        if not 0 <= jitter <= seconds * MAX_JITTER:
            raise ValueError(f"jitter {jitter} s is not within half the interval ({seconds} s)")
        super().__init__(
            seconds=seconds, start_date=start_date, timezone=UTC, jitter=jitter or None
        )

    def grid_point(self, k: int) -> float:
        """Grid point ``k`` (Unix seconds): the start date is grid point 0."""
        return float(self.start_date.timestamp() + k * self.interval_length)

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        start = self.start_date.timestamp()
        if previous_fire_time is not None:
            # The grid point the previous run belongs to (its jitter is less than an
            # interval), and the next one.
            k = interval_index(previous_fire_time.timestamp(), start, self.interval_length) + 1
        else:
            # The first grid point at or after now, and not before the start date.
            t = now.timestamp()
            k = interval_index(t, start, self.interval_length)
            if self.grid_point(k) < t - GRID_TOLERANCE:
                k += 1
            k = max(k, 0)
        at = self.grid_point(k)
        if self.jitter:
            at += self.jitter * stable_fraction(f"{round(at * 1000)}/{self.interval_length:g}")
        if self.end_date is not None and at > self.end_date.timestamp():
            return None
        return datetime.fromtimestamp(at, UTC)

    def __str__(self) -> str:
        return f"grid[{self.interval!s}]"
