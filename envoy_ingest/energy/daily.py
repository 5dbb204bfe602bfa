"""Today and the last 7 days from a corrected lifetime counter: pure and clock-free.

A :class:`DayTrack` follows one written (corrected) lifetime series and keeps
its value at each of the last local midnights. The value at a midnight is the
straight line between the written readings on both sides of it, and only when
they are at most ``MAX_MIDNIGHT_GAP`` apart: after a longer gap (an outage, a
gateway clock set forward by days) that midnight is unknown, so nothing is
guessed. A report time that goes backwards never starts a new day.

:func:`resolve` then chooses what to write for a day field: the gateway's own
value while it is believable, else the value derived from the counter, else
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from envoy_ingest.energy.counter import bound_wh, finite, integer
from envoy_ingest.energy.localday import day_of, midnight

MAX_MIDNIGHT_GAP = 7200  # seconds between the readings around a midnight
DAYS_KEPT = 8
# The gateway's own day value agrees with the counter when within this (Wh),
# or this share of the derived value, whichever is larger.
AGREE_WH = 50.0
AGREE_SHARE = 0.02


@dataclass(slots=True)
class DayTrack:
    day: int | None = None  # local date (ordinal) of the latest reading
    prev_t: int = 0
    prev_v: float = 0.0
    midnights: dict[int, float] = field(default_factory=dict)  # date -> counter at 00:00
    derived: dict[str, int] = field(default_factory=dict)  # day field -> date it is derived on

    def advance(self, t: int, value: float, tz: tzinfo) -> None:
        """A written counter ``value`` at report time ``t``."""
        d = day_of(t, tz)
        if self.day is not None and t <= self.prev_t:
            return
        if self.day is not None and d > self.day:
            m = midnight(d, tz)
            if self.prev_t < m <= t and t - self.prev_t <= MAX_MIDNIGHT_GAP:
                share = (m - self.prev_t) / (t - self.prev_t)
                self.midnights[d] = self.prev_v + (value - self.prev_v) * share
            for old in [k for k in self.midnights if k <= d - DAYS_KEPT]:
                del self.midnights[old]
            self.derived = {k: v for k, v in self.derived.items() if v >= d}
        if self.day is None or d >= self.day:
            self.day = d
        self.prev_t, self.prev_v = t, value

    def since(self, t: int, tz: tzinfo, days: int) -> float | None:
        """Counter at the midnight starting the ``days``-day window that ends
        with the day of ``t`` (1: today), or None when unknown."""
        d = day_of(t, tz)
        if d != self.day or t != self.prev_t:
            return None
        base = self.midnights.get(d - days + 1)
        return None if base is None else self.prev_v - base

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "prev_t": self.prev_t,
            "prev_v": self.prev_v,
            "midnights": {str(k): v for k, v in self.midnights.items()},
            "derived": dict(self.derived),
        }

    @classmethod
    def from_json(cls, data: Any) -> DayTrack:
        if not isinstance(data, dict):
            raise ValueError("day track is not an object")
        day = None if data["day"] is None else integer(data["day"])
        midnights = {int(k): finite(v) for k, v in dict(data["midnights"]).items()}
        derived = {str(k): integer(v) for k, v in dict(data["derived"]).items()}
        return cls(day, integer(data["prev_t"]), finite(data["prev_v"]), midnights, derived)


def resolve(
    name: str,
    track: DayTrack,
    *,
    t: int,
    tz: tzinfo,
    days: int,
    gateway: float | None,
    raw_lifetime: float | None,
    written: bool,
    rate_w: float,
    floor: float | None = None,
) -> float | None:
    """What to write for day field ``name`` (a ``days``-day window) at time ``t``.

    ``gateway`` is the gateway's own value (None: not reported), ``raw_lifetime``
    its lifetime reading, ``written`` whether the corrected lifetime was
    written for this point (the track has then advanced to it), ``floor`` the
    least the window can hold (a 7-day window holds at least today).
    """
    derived = track.since(t, tz, days) if written else None
    if derived is not None:
        derived = max(derived, 0.0)
    bad = (
        gateway is None
        or gateway < 0
        or (raw_lifetime is not None and raw_lifetime > 0 and abs(gateway - raw_lifetime) <= 1)
        or (floor is not None and gateway < floor - AGREE_WH)
    )
    today = day_of(t, tz)
    if track.derived.get(name) == today:
        return derived
    if derived is not None:
        assert gateway is not None or bad
        if bad or abs(derived - (gateway or 0.0)) > max(AGREE_WH, AGREE_SHARE * derived):
            track.derived[name] = today
            return derived
        return gateway
    if bad or not written:
        return None
    assert gateway is not None
    # No midnight known yet: believe the gateway unless it holds more than could
    # have been produced since the window began (a day counter not reset).
    start = midnight(today - days + 1, tz)
    return gateway if gateway <= bound_wh(rate_w, t - start) else None
