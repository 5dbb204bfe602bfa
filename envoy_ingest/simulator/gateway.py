"""The gateway's HTTP behaviour around its data: auth, faults, latency, reboots,
and a record of every request served."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from http.cookies import CookieError, SimpleCookie
from typing import Protocol
from urllib.parse import urlsplit

from envoy_ingest.simulator.answer import (
    LEGACY_UNAUTHORIZED,
    MODERN_UNAUTHORIZED,
    VALID_TOKEN,
    Answer,
    error_page,
)
from envoy_ingest.simulator.auth import DigestAuth, TokenAuthority
from envoy_ingest.simulator.httpbase import Request

# Paths a gateway serves without credentials.
LEGACY_PUBLIC = frozenset(
    {"/", "/home", "/info", "/production", "/production.json", "/api/v1/production"}
)
MODERN_PUBLIC = frozenset({"/info", "/home"})


class Source(Protocol):
    def answer(self, path: str, now: float, *, rebooting: bool = False) -> Answer: ...


class Clock:
    """Simulated time: ``start`` + elapsed real time x ``scale`` (+ manual advances)."""

    def __init__(self, start: float, scale: float) -> None:
        self._start = start
        self._scale = scale
        self._origin = time.monotonic()
        self._offset = 0.0
        self._lock = threading.Lock()

    def restart(self) -> None:
        with self._lock:
            self._origin = time.monotonic()

    def now(self) -> float:
        with self._lock:
            return self._start + (time.monotonic() - self._origin) * self._scale + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds


def matches(rule: str, path: str) -> bool:
    """A rule with a query matches that exact request; without, any query."""
    return rule == path if "?" in rule else rule == path.split("?", 1)[0]


@dataclass(slots=True)
class _Rule:
    path: str
    remaining: int
    status: int = 0  # 0: drop the connection


class GatewayApp:
    """Answers one gateway's requests (the HTTP server calls :meth:`handle`)."""

    def __init__(
        self,
        source: Source,
        *,
        modern: bool,
        serial: str,
        clock: Clock,
        authority: TokenAuthority,
        latency: float = 0.0,
        record: bool = True,
    ) -> None:
        self.source = source
        self.record = record  # keep every request in :attr:`requests` (off in a fleet)
        self.modern = modern
        self.clock = clock
        self.authority = authority
        self.digest = DigestAuth(serial)
        self.latency = latency
        self.server_header = "openresty/1.17.8.1" if modern else "Envoy"
        self.keep_alive = modern  # legacy firmware closes every connection
        self._lock = threading.Lock()
        self._requests: list[tuple[str, str]] = []
        self._rules: list[_Rule] = []
        self._reboot_until = 0.0
        self._slow: dict[str, float] = {}  # path (no query) -> seconds added to its answers

    # controls --------------------------------------------------------------------

    def add_rule(self, path: str, count: int, status: int) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._rules.append(_Rule(path, count, status))

    def slow(self, path: str, seconds: float) -> None:
        """Answer ``path`` (any query) ``seconds`` later than the others (0: as fast)."""
        with self._lock:
            if seconds > 0:
                self._slow[path] = seconds
            else:
                self._slow.pop(path, None)

    def reboot(self, seconds: float) -> None:
        with self._lock:
            self._reboot_until = time.monotonic() + seconds

    @property
    def rebooting(self) -> bool:
        return time.monotonic() < self._reboot_until

    @property
    def requests(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._requests)

    def request_count(self, path: str | None = None) -> int:
        with self._lock:
            if path is None:
                return len(self._requests)
            return sum(1 for _, p in self._requests if matches(path, p))

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _take_rule(self, path: str) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if matches(rule.path, path):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                    return rule
        return None

    # requests -------------------------------------------------------------------

    def handle(self, request: Request) -> Answer | None:
        if self.record:
            with self._lock:
                self._requests.append((request.method, request.path))
        delay = self.latency + self._slow.get(request.path.split("?", 1)[0], 0.0)
        if delay > 0:
            time.sleep(delay)
        rule = self._take_rule(request.path)
        if rule is not None:
            return None if rule.status == 0 else error_page(rule.status)
        path = urlsplit(request.path).path
        rebooting = self.rebooting
        if self.modern:
            if rebooting and path != "/info":
                return error_page(503)
            return self._modern(request, path)
        return self._legacy(request, path, rebooting)

    def _legacy(self, request: Request, path: str, rebooting: bool) -> Answer:
        challenge = ("WWW-Authenticate", self.digest.challenge())
        if path not in LEGACY_PUBLIC:
            header = request.headers.get("authorization")
            if self.digest.verify(request.method, request.path, header) is None:
                return replace(LEGACY_UNAUTHORIZED, headers=(challenge,))
        answer = self.source.answer(request.path, self.clock.now(), rebooting=rebooting)
        if answer.status == 401:  # a recorded refusal: challenge again, as the gateway did
            return replace(answer, headers=(challenge,))
        return answer

    def _bearer(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            return header[7:].strip()
        return None

    def _session(self, request: Request) -> str | None:
        raw = request.headers.get("cookie")
        if not raw:
            return None
        try:
            cookie = SimpleCookie(raw)
        except CookieError:
            return None
        morsel = cookie.get("sessionId")
        return morsel.value if morsel is not None else None

    def _modern(self, request: Request, path: str) -> Answer:
        token = self._bearer(request)
        token_ok = token is not None and self.authority.verify(token)
        session = self._session(request)
        session_ok = session is not None and self.authority.session_ok(session)
        if path == "/auth/check_jwt":
            if token is not None and token_ok:
                sid = self.authority.open_session(token)
                cookie = f"sessionId={sid}; Path=/; Secure; HttpOnly; SameSite=Strict"
                return replace(VALID_TOKEN, headers=(("Set-Cookie", cookie),))
            return VALID_TOKEN if session_ok and token is None else MODERN_UNAUTHORIZED
        if path not in MODERN_PUBLIC and not (token_ok or (token is None and session_ok)):
            return MODERN_UNAUTHORIZED
        return self.source.answer(request.path, self.clock.now())
