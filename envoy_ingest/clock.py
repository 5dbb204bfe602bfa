"""Clocks a host's clock jump cannot fool.

A board without a real-time clock boots with a stale time and jumps (by days)
when NTP answers; an operator may set the clock by hand. Which clock decides what:

- **Point times** are the gateway's own report times (``normalize/``); the
  host clock is only the fallback for the few values without one, and
  :mod:`envoy_ingest.timecheck` drops a time that cannot be true.
- **Token expiry** (``envoy/tokens.py``) uses a :class:`SteadyClock`: Unix time
  that advances with the monotonic clock from an anchor (the host's time at
  start), re-anchored on a trusted wall time: the issue time (``iat``) of a
  token just fetched from the Enphase cloud. A jump of the host clock never
  makes a token look expired (no refresh storm) or fresh.
- **Intervals** (re-checking ``/info``, re-probing, health staleness) use the
  monotonic clock.
- **The schedule**: APScheduler's interval trigger runs on wall time. On a
  forward jump it runs each job once (``coalesce``) and goes on; on a backward
  jump it would wait until the old next run time comes round again (days).
  :class:`JumpDetector` notices either jump and the worker reschedules every
  job to run now (``worker/scheduler.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]

#: A difference between wall and monotonic time that changed by more than this
#: (seconds) is a jump of the host clock, not drift or NTP slewing.
JUMP_THRESHOLD = 30.0


class SteadyClock:
    """Unix time that moves only with the monotonic clock, from a trusted anchor."""

    def __init__(self, wall: Clock = time.time, monotonic: Clock = time.monotonic) -> None:
        self._monotonic = monotonic
        self._anchor = (wall(), monotonic())

    def __call__(self) -> float:
        wall, mono = self._anchor
        return wall + (self._monotonic() - mono)

    def trust(self, wall_time: float) -> None:
        """``wall_time`` is now, from a source better than the host clock (to the
        second: a difference under :data:`JUMP_THRESHOLD` is rounding, and kept)."""
        if abs(wall_time - self()) > JUMP_THRESHOLD:
            self._anchor = (wall_time, self._monotonic())


class JumpDetector:
    """Notices the host clock jumping: wall minus monotonic time changed."""

    def __init__(
        self,
        wall: Clock = time.time,
        monotonic: Clock = time.monotonic,
        threshold: float = JUMP_THRESHOLD,
    ) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self.threshold = threshold
        self._offset = wall() - monotonic()

    def jumped(self) -> float:
        """Seconds the wall clock jumped since the last call (0.0 if it did not)."""
        offset = self._wall() - self._monotonic()
        jump = offset - self._offset
        self._offset = offset
        return jump if abs(jump) > self.threshold else 0.0
