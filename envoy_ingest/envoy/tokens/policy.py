"""When to renew a token, when to retry the cloud, when to warn about a pasted
token and how long the renewal loop sleeps: pure functions of the time (no
clock of their own, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from envoy_ingest.envoy.tokens.claims import DAY, TokenInfo

WARN_DAYS = (30, 7, 1)  # warnings before a pasted token expires
BACKOFF_BASE = 60.0  # cloud failures: 1 minute, doubling ...
BACKOFF_CAP = 6 * 3600.0  # ... up to 6 hours (and at once after a refused login)
SESSION_REUSE = 300.0  # one Enlighten login serves the account's gateways for a while
MAX_IDLE = 3600.0  # the renewal loop wakes at least this often
MIN_SLEEP = 0.5  # ... and sleeps at least this long


def renew_at(tok: TokenInfo | None, obtained: float, refused: bool, now: float) -> float:
    """When a token should be replaced: at once when there is none or the gateway
    refused it, else once less than ``min(30 days, lifetime / 10)`` is left."""
    if tok is None or refused:
        return now
    return tok.expires - tok.refresh_ahead(obtained)


def due(tok: TokenInfo | None, obtained: float, refused: bool, now: float) -> bool:
    return renew_at(tok, obtained, refused, now) <= now


def renewal_time(
    tok: TokenInfo | None, obtained: float, refused: bool, retry_at: float, now: float
) -> float:
    """When the renewal loop renews a fetched token: once it is due (:func:`renew_at`)
    and its account's backoff (``retry_at``) has passed. Renewed when this is <= ``now``."""
    return max(renew_at(tok, obtained, refused, now), retry_at)


def next_wake(now: float, times: Iterable[float]) -> float:
    """The earliest of ``times`` (renewals, warnings), and at most :data:`MAX_IDLE` away."""
    return min([now + MAX_IDLE, *times])


def sleep_for(wake: float, now: float) -> float:
    """How long the loop sleeps to wake at ``wake``: at least :data:`MIN_SLEEP` (no
    busy loop on something due now), at most :data:`MAX_IDLE`."""
    return min(max(wake - now, MIN_SLEEP), MAX_IDLE)


def pasted_warnings(left: float, warned: AbstractSet[float]) -> set[float]:
    """The warnings now due for a pasted token with ``left`` seconds to go, given
    those already given: ``{0.0}`` once it has expired, else every threshold of
    :data:`WARN_DAYS` it has crossed (said in one warning); empty when none is new."""
    if left <= 0:
        return set() if 0.0 in warned else {0.0}
    crossed = {float(d) for d in WARN_DAYS if left <= d * DAY}
    return crossed if crossed - warned else set()


def pasted_wakes(expires: float, warned: AbstractSet[float]) -> list[float]:
    """When the warnings not given yet fall due."""
    times = [expires - d * DAY for d in WARN_DAYS if d not in warned]
    if 0.0 not in warned:
        times.append(expires)
    return times
