"""TokenManager: one JWT per gateway serial, kept usable (see the package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from envoy_ingest.backoff import Backoff
from envoy_ingest.clock import Clock, SteadyClock
from envoy_ingest.envoy.tokens.cache import TokenCache
from envoy_ingest.envoy.tokens.claims import TokenInfo, decode_token, duration_text
from envoy_ingest.envoy.tokens.cloud import TOKEN_PAGE, EnlightenClient
from envoy_ingest.envoy.tokens.pasted import PastedTokens
from envoy_ingest.envoy.tokens.policy import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    SESSION_REUSE,
    due,
    next_wake,
    renewal_time,
    sleep_for,
)
from envoy_ingest.envoy.tokens.state import Account, Entry
from envoy_ingest.errors import (
    CloudError,
    CloudLoginRefused,
    GatewayAuthError,
    MultiFactorAccount,
    TokenError,
)
from envoy_ingest.gateway import GatewaySettings
from envoy_ingest.settings import Settings

log = logging.getLogger("envoy_ingest.envoy.tokens")

Validator = Callable[[str], Awaitable[bool]]
Sleep = Callable[[float], Awaitable[None]]

REASON_REFUSED = "the gateway refused the current one"


class TokenManager:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        cloud_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        # Expiry decisions on a clock a host clock jump cannot move (envoy_ingest.clock).
        self.clock: Clock = clock if clock is not None else SteadyClock()
        self._sleep = sleep
        self._rng = rng
        self.cloud = EnlightenClient(
            settings.enlighten, transport=cloud_transport, clock=self.clock, sleep=sleep
        )
        self.cache = TokenCache(settings.state.directory / "tokens", self.clock)
        self._entries: dict[str, Entry] = {}
        self._accounts: dict[str, Account] = {}
        self.pasted = PastedTokens(settings.gateways)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        for gw in settings.gateways:
            if gw.enlighten_username and gw.enlighten_password is not None:
                self._accounts.setdefault(
                    gw.enlighten_username,
                    Account(
                        gw.enlighten_username,
                        gw.enlighten_password.get_secret_value(),
                        Backoff(BACKOFF_BASE, BACKOFF_CAP, rng=self._rng),
                    ),
                )
        # Lookups per new entry, in O(1) for fleets of thousands.
        self._position = {id(gw): i for i, gw in enumerate(settings.gateways)}

    # --- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Load what is known and start renewing in the background."""
        for i, gw in enumerate(self.settings.gateways):
            if gw.serial and (i in self.pasted or self._account(gw)):
                self._entry(gw, gw.serial)
        if self._task is None and (self.pasted or self._accounts):
            self._task = asyncio.create_task(self._renew(), name="token-refresh")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- what the client calls -----------------------------------------------

    async def token_for(self, gw: GatewaySettings, serial: str, check: Validator) -> str:
        """A token for ``serial`` the gateway should accept (fast when one is known)."""
        entry = self._entry(gw, serial)
        tok = entry.current
        acct = self._account(gw)
        # A refused token is replaced when it can be; a pasted one is checked again.
        if tok is not None and tok.expires > self.clock() and (not entry.refused or acct is None):
            if entry.validated:
                return tok.value
            if await check(tok.value):
                entry.validated, entry.refused = True, False
                log.info("%s: the gateway accepts the %s token", entry.where, tok.source)
                return tok.value
            return await self._refused(entry, tok)
        if acct is None:
            raise self._no_token(entry)
        await self._refresh(entry, seen=tok, reason="no usable token")
        assert entry.current is not None
        return entry.current.value

    async def unauthorized(
        self, gw: GatewaySettings, serial: str, token: str, check: Validator
    ) -> str:
        """The gateway answered 401 to ``token``: the token to retry with, once."""
        entry = self._entry(gw, serial)
        tok = entry.current
        if tok is not None and tok.value != token and not entry.refused:
            return tok.value  # renewed meanwhile
        if await check(token):
            entry.validated = True
            return token
        if tok is None or tok.value != token:
            raise GatewayAuthError(f"{entry.where}: the gateway refused the token")
        return await self._refused(entry, tok)

    def accepted(self, serial: str, token: str) -> None:
        """A request with ``token`` succeeded."""
        entry = self._entries.get(serial)
        if entry is None or entry.current is None or entry.current.value != token:
            return
        if entry.replaces_refused and (acct := self._account(entry.gw)) is not None:
            acct.backoff.reset()
            acct.retry_at, acct.last_error = 0.0, None
        entry.validated, entry.replaces_refused, entry.refused = True, False, False

    def rejected(self, serial: str, token: str) -> None:
        """The retry after a refresh got a 401 too: stop using ``token``."""
        entry = self._entries.get(serial)
        if entry is None or entry.current is None or entry.current.value != token:
            return
        entry.refused, entry.validated = True, False
        acct = self._account(entry.gw)
        if acct is not None and entry.replaces_refused:
            self._failed(acct, "the gateway refused a token fetched moments before")
        self._wake.set()

    def describe(self, serial: str) -> str:
        """For ``check``: what authenticates us (never the token)."""
        entry = self._entries.get(serial)
        if entry is None or entry.current is None:
            return "bearer token (none yet)"
        return f"bearer token ({entry.current.describe()})"

    def seconds_until_expiry(self, serial: str) -> float | None:
        entry = self._entries.get(serial)
        if entry is not None and entry.current is not None:
            return entry.current.expires - self.clock()
        pasted = self.pasted.of_serial(serial)
        return None if pasted is None else pasted.expires - self.clock()

    # --- decisions -------------------------------------------------------------

    def _account(self, gw: GatewaySettings) -> Account | None:
        return self._accounts.get(gw.enlighten_username or "")

    def _index(self, gw: GatewaySettings) -> int:
        i = self._position.get(id(gw))
        if i is not None:
            return i
        for i, other in enumerate(self.settings.gateways):
            if other == gw:
                return i
        raise ValueError(f"gateway {gw.label} is not in the settings")

    def _entry(self, gw: GatewaySettings, serial: str) -> Entry:
        entry = self._entries.get(serial)
        if entry is not None:
            return entry
        index = self._index(gw)
        entry = Entry(serial, index, gw)
        now = self.clock()
        candidates = [t for t in (self.pasted.get(index), self._load(entry)) if t is not None]
        usable = [t for t in candidates if t.expires > now]
        best = max(usable or candidates, key=lambda t: t.expires, default=None)
        entry.current, entry.obtained = best, now
        self._entries[serial] = entry
        self._wake.set()
        return entry

    def _due(self, entry: Entry, now: float) -> bool:
        return due(entry.current, entry.obtained, entry.refused, now)

    def _no_token(self, entry: Entry) -> TokenError | GatewayAuthError:
        tok = entry.current
        if tok is None:
            return TokenError(
                f"{entry.where}: firmware 7 or later needs a token: set token (or token_file) "
                f"to one from {TOKEN_PAGE}, or set enlighten_username and enlighten_password"
            )
        if entry.refused:
            return GatewayAuthError(
                f"{entry.where}: the gateway refuses the pasted token (expires "
                f"{tok.expiry_text}); is it for this gateway's serial {entry.serial}? Paste a "
                f"new one from {TOKEN_PAGE}, or set enlighten_username and enlighten_password"
            )
        return TokenError(
            f"{entry.where}: the pasted token expired on {tok.expiry_text}; get a new one at "
            f"{TOKEN_PAGE}, set it as token (or token_file) and restart, or set "
            "enlighten_username and enlighten_password to have tokens fetched automatically"
        )

    async def _refused(self, entry: Entry, tok: TokenInfo) -> str:
        entry.refused, entry.validated = True, False
        acct = self._account(entry.gw)
        log.warning("%s: the gateway refuses the %s token", entry.where, tok.source)
        if acct is None:
            raise self._no_token(entry)
        if entry.replaces_refused:
            self._failed(acct, "the gateway refused a token fetched moments before")
            raise GatewayAuthError(
                f"{entry.where}: the gateway refused a new token from Enlighten too; "
                f"next attempt in {duration_text(acct.retry_at - self.clock())}"
            )
        await self._refresh(entry, seen=tok, reason=REASON_REFUSED)
        assert entry.current is not None
        return entry.current.value

    def _failed(self, acct: Account, reason: str, *, permanent: bool = False) -> None:
        delay = acct.backoff.next()
        if permanent:
            delay = BACKOFF_CAP
        acct.retry_at = self.clock() + delay
        acct.last_error = reason
        acct.session = None

    async def _refresh(
        self, entry: Entry, *, seen: TokenInfo | None, reason: str, force: bool = False
    ) -> None:
        """Fetch a new token for ``entry`` unless another task just did."""
        acct = self._account(entry.gw)
        assert acct is not None
        async with acct.lock:
            now = self.clock()
            cur = entry.current
            if cur is not seen and cur is not None and not entry.refused and cur.expires > now:
                return
            if not force and acct.retry_at > now:
                keep = ""
                if cur is not None and not entry.refused and cur.expires > now:
                    keep = f"; the current token stays in use until {cur.expiry_text}"
                raise TokenError(
                    f"{entry.where}: no new token yet: the last attempt failed "
                    f"({acct.last_error}); next attempt in "
                    f"{duration_text(acct.retry_at - now)}{keep}"
                )
            log.info("%s: fetching a token from Enlighten (%s)", entry.where, reason)
            try:
                if acct.session is None or now - acct.session_at > SESSION_REUSE:
                    acct.session = await self.cloud.login(acct.username, acct.password)
                    acct.session_at = now
                value = await self.cloud.fetch_token(acct.session, entry.serial)
                try:
                    tok = decode_token(value, "Enlighten")
                except ValueError as exc:
                    raise CloudError(f"Enlighten answered a token that is {exc}") from None
            except (CloudLoginRefused, MultiFactorAccount) as exc:
                self._failed(acct, str(exc), permanent=True)
                raise type(exc)(f"{entry.where}: {exc}") from None
            except CloudError as exc:
                self._failed(acct, str(exc))
                raise CloudError(
                    f"{entry.where}: {exc}; next attempt in "
                    f"{duration_text(acct.retry_at - self.clock())}"
                ) from None
            if isinstance(self.clock, SteadyClock) and tok.issued is not None:
                self.clock.trust(tok.issued)  # the Enphase cloud's clock, just now
            now = self.clock()
            entry.current, entry.obtained = tok, now
            entry.replaces_refused = entry.refused
            entry.validated, entry.refused = True, False
            if self._due(entry, now):
                # A token that is due again at once must not start a loop.
                self._failed(acct, "Enlighten answered a token that is about to expire")
            elif not entry.replaces_refused:
                # (after a refusal, the backoff ends only once the gateway accepts the new one)
                acct.backoff.reset()
                acct.retry_at, acct.last_error = 0.0, None
            log.info(
                "%s: new %s token from Enlighten, valid until %s",
                entry.where,
                tok.user,
                tok.expiry_text,
            )
            self._save(entry, tok)
            self._wake.set()

    async def refresh_now(self, gw: GatewaySettings, serial: str) -> TokenInfo:
        """Fetch a new token now, whatever the backoff (``envoy-ingest token``)."""
        entry = self._entry(gw, serial)
        if self._account(gw) is None:
            raise TokenError(f"{entry.where}: set enlighten_username and enlighten_password")
        await self._refresh(entry, seen=entry.current, reason="asked for", force=True)
        assert entry.current is not None
        return entry.current

    def current(self, gw: GatewaySettings, serial: str) -> TokenInfo | None:
        return self._entry(gw, serial).current

    # --- background: the renewal loop ---------------------------------------------

    def _renewal_time(self, entry: Entry) -> float | None:
        """When the loop renews ``entry`` (None: it cannot, no Enlighten account)."""
        acct = self._account(entry.gw)
        if acct is None:
            return None
        return renewal_time(
            entry.current, entry.obtained, entry.refused, acct.retry_at, self.clock()
        )

    async def refresh_due(self) -> None:
        """One pass: renew what is due (outside backoff) and warn about pasted tokens."""
        for entry in list(self._entries.values()):
            at = self._renewal_time(entry)
            if at is None or at > self.clock():
                continue
            try:
                await self._refresh(entry, seen=entry.current, reason="renewing ahead of expiry")
            except TokenError as exc:
                tok = entry.current
                if tok is not None and not entry.refused and tok.expires > self.clock():
                    log.warning("%s; the current token stays in use", exc)
                else:
                    log.error("%s", exc)
        self.pasted.warn(self.clock(), self.has_credentials)

    def _next_wake(self, now: float) -> float:
        """When the loop has something to do next."""
        renewals = (self._renewal_time(entry) for entry in self._entries.values())
        times = [at for at in renewals if at is not None]
        return next_wake(now, times + self.pasted.wakes(self.has_credentials))

    async def _renew(self) -> None:
        """In the background, never in a poll's path: renew and warn until cancelled;
        sleep until the next thing falls due, woken early when a token is refused or
        added."""
        while True:
            self._wake.clear()
            try:
                await self.refresh_due()
            except Exception as exc:  # never let the renewer die
                log.error("token renewal failed: %s", type(exc).__name__)
            now = self.clock()
            sleeper = asyncio.ensure_future(self._sleep(sleep_for(self._next_wake(now), now)))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()

    # --- for the `token` command -----------------------------------------------------

    def has_credentials(self, gw: GatewaySettings) -> bool:
        """The gateway has Enlighten credentials: tokens can be fetched for it."""
        return self._account(gw) is not None

    def missing_token_error(
        self, gw: GatewaySettings, serial: str
    ) -> TokenError | GatewayAuthError:
        """The error that says why there is no usable token and what to do."""
        return self._no_token(self._entry(gw, serial))

    def cache_path(self, serial: str) -> Path:
        """Where the token of ``serial`` is cached."""
        return self.cache.path(serial)

    def _load(self, entry: Entry) -> TokenInfo | None:
        acct = self._account(entry.gw)
        if acct is None:
            return None
        return self.cache.load(entry.serial, acct.username, entry.where)

    def _save(self, entry: Entry, tok: TokenInfo) -> None:
        acct = self._account(entry.gw)
        self.cache.save(entry.serial, acct.username if acct else None, tok, entry.where)
