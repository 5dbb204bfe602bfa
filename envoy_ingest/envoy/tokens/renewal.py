"""The renewal loop: in the background, never in a poll's path, renew the fetched
tokens that are due (outside their account's backoff) and warn about pasted
tokens running out; sleep until the next thing falls due (at most an hour)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from envoy_ingest.envoy.tokens.claims import duration_text
from envoy_ingest.envoy.tokens.cloud import TOKEN_PAGE
from envoy_ingest.envoy.tokens.policy import (
    MAX_IDLE,
    MIN_SLEEP,
    pasted_wakes,
    pasted_warnings,
    renew_at,
)
from envoy_ingest.errors import TokenError

if TYPE_CHECKING:
    from envoy_ingest.envoy.tokens.manager import TokenManager

log = logging.getLogger("envoy_ingest.envoy.tokens")
_NONE: frozenset[float] = frozenset()  # no warning given yet


async def refresh_due(manager: TokenManager) -> None:
    """One pass: renew what is due (outside backoff) and warn about pasted tokens."""
    for entry in list(manager._entries.values()):
        acct = manager._account(entry.gw)
        now = manager.clock()
        if acct is None or not manager._due(entry, now) or acct.retry_at > now:
            continue
        try:
            await manager._refresh(entry, seen=entry.current, reason="renewing ahead of expiry")
        except TokenError as exc:
            tok = entry.current
            if tok is not None and not entry.refused and tok.expires > manager.clock():
                log.warning("%s; the current token stays in use", exc)
            else:
                log.error("%s", exc)
    warn_pasted(manager, manager.clock())


def warn_pasted(manager: TokenManager, now: float) -> None:
    """Warn 30, 7 and 1 days before a pasted token that cannot be renewed expires,
    and once when it has."""
    for i, tok in manager._pasted.items():
        gw = manager.settings.gateways[i]
        if manager._account(gw) is not None:
            continue  # renewed from Enlighten when it runs out
        left = tok.expires - now
        # A set is stored only once a warning is given: a fleet has thousands of tokens.
        new = pasted_warnings(left, manager._warned.get(i) or _NONE)
        if not new:
            continue
        manager._warned.setdefault(i, set()).update(new)
        where = f"gateways[{i}] ({gw.label})"
        if left <= 0:
            log.error(
                "%s: the pasted token expired on %s; the gateway will refuse it. Get a "
                "new one at %s, set it as token (or token_file) and restart, or set "
                "enlighten_username and enlighten_password to fetch tokens automatically",
                where,
                tok.expiry_text,
                TOKEN_PAGE,
            )
        else:
            log.warning(
                "%s: the pasted token expires in %s (%s); get a new one at %s and set it "
                "as token (or token_file), or set enlighten_username and "
                "enlighten_password to fetch tokens automatically",
                where,
                duration_text(left),
                tok.expiry_text,
                TOKEN_PAGE,
            )


def next_wake(manager: TokenManager, now: float) -> float:
    """When the loop has something to do next."""
    times = [now + MAX_IDLE]
    for entry in manager._entries.values():
        acct = manager._account(entry.gw)
        if acct is not None:
            at = renew_at(entry.current, entry.obtained, entry.refused, now)
            times.append(max(at, acct.retry_at))
    for i, tok in manager._pasted.items():
        if manager._account(manager.settings.gateways[i]) is None:  # else renewed, no warnings
            times += pasted_wakes(tok.expires, manager._warned.get(i) or _NONE)
    return min(times)


async def run(manager: TokenManager) -> None:
    """Renew and warn until cancelled; woken early when a token is refused or added."""
    while True:
        manager._wake.clear()
        try:
            await refresh_due(manager)
        except Exception as exc:  # never let the renewer die
            log.error("token renewal failed: %s", type(exc).__name__)
        now = manager.clock()
        delay = min(max(next_wake(manager, now) - now, MIN_SLEEP), MAX_IDLE)
        sleeper = asyncio.ensure_future(manager._sleep(delay))
        waker = asyncio.ensure_future(manager._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
