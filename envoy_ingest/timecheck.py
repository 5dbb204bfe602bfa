"""Which point times can be true.

Points carry the gateway's own report times. A time is **implausible**, and
the point is not written (counted as dropped, reason ``implausible_time``):

- before :data:`FLOOR` (2008-01-01 UTC): the first Envoys shipped in 2008, so
  an earlier time is a gateway (or host) clock that was never set, e.g. 1970;
- more than :data:`MAX_AHEAD` (one day) ahead of **both** the host's clock and
  the gateway's clock (the ``Date`` of its latest answer): a host that booted
  with a stale clock still accepts a correct gateway, and a gateway with a
  correct clock and one bad report time (2099) is caught.
"""

from __future__ import annotations

from datetime import UTC, datetime

FLOOR = int(datetime(2008, 1, 1, tzinfo=UTC).timestamp())
MAX_AHEAD = 86400.0


def latest(host_now: float, gateway_now: float | None) -> float:
    """The latest plausible report time: the times from :data:`FLOOR` to this one,
    both included, are those :func:`implausible` accepts."""
    return max(host_now, gateway_now if gateway_now is not None else host_now) + MAX_AHEAD


def implausible(t: float, host_now: float, gateway_now: float | None) -> str | None:
    """Why ``t`` (Unix seconds) cannot be a report time, or None if it can."""
    if t < FLOOR:
        return "before 2008, earlier than any Envoy"
    if t > latest(host_now, gateway_now):
        return "more than a day ahead of both the host's and the gateway's clock"
    return None
