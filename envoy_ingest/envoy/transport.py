"""HTTP to one gateway: where it listens, TLS (off or pinned), timeouts, retries.

- ``host`` may be ``host``, ``host:port`` or ``http(s)://host:port``, read by
  :class:`envoy_ingest.origin.GatewayAddress`; a scheme forces it, otherwise the
  client tries https then http (see client.py).
- Gateways use self-signed certificates: verification is off unless
  ``verify_tls``; ``tls_fingerprint`` pins the SHA-256 of the certificate, checked
  on every new connection right after the TLS handshake, before a byte of HTTP
  (so a token is never sent to an impostor).
- Redirects are never followed. Dropped connections and 503 are retried with
  exponential backoff while the caller's deadline allows.
- Shared by every gateway of the process (a fleet has thousands): one TLS
  context per verification mode (:func:`gateway_ssl_context`), and one
  :class:`InFlightLimit` bounding the requests in flight across gateways. Each
  gateway has one connection (:class:`~envoy_ingest.envoy.http11.GatewayConnection`,
  an httpx transport on asyncio's sockets), kept alive between cycles
  (:data:`KEEPALIVE_EXPIRY`) so that a gateway that keeps it open is not asked
  for a new TLS handshake every minute.
- Requests go straight to that transport: no ``httpx.AsyncClient`` per
  gateway (its cookie jar, URL merging and event hooks are nothing a gateway
  needs). A plain GET (Bearer or no auth) is a request head prepared once per
  URL (:class:`Target`) plus its ``Authorization`` line, answered with a
  :class:`~envoy_ingest.envoy.http11.Reply`. So is a digest GET once the
  gateway has challenged (its ``Authorization`` computed by httpx's own
  digest code, :meth:`GatewayDigestAuth.authorization`); the first digest
  request, a new challenge (stale nonce, rebooted gateway) and other
  transports (tests' mocks) are httpx requests and responses, the auth flow
  driven by :mod:`envoy_ingest.envoy.flow`. Both answer as an :class:`Answer`.
- A request never ends in a bare ``CancelledError``: running out of the cycle's
  time, or a cancellation that was not aimed at the task, is a
  :class:`TransportFailure` like any other failed request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import sys
from collections.abc import Mapping
from typing import Protocol

import httpx

from envoy_ingest import __version__
from envoy_ingest.backoff import Backoff
from envoy_ingest.envoy.auth import GatewayDigestAuth
from envoy_ingest.envoy.flow import exchange, signed_get
from envoy_ingest.envoy.http11 import GatewayConnection, origin_of, request_head
from envoy_ingest.errors import (
    CertificateMismatch,
    GatewayResponseError,
    GatewayUnreachable,
)
from envoy_ingest.gateway import GatewaySettings
from envoy_ingest.origin import Origin, split_url

log = logging.getLogger(__name__)

# Retried failures: the gateway dropped the connection, or said "try later".
RETRY_STATUS = 503
MAX_ATTEMPTS_WITHOUT_DEADLINE = 3
MAX_ATTEMPTS = 8
MAX_BACKOFF = 16.0
# An idle connection is kept this long: beyond the default 60 s totals interval,
# within the 75 s that nginx (the gateway's openresty) keeps one by default. A
# connection the gateway closed sooner is noticed before use and replaced.
KEEPALIVE_EXPIRY = 75.0
USER_AGENT = f"envoy-ingest/{__version__}"


@functools.cache
def gateway_ssl_context(verify: bool) -> ssl.SSLContext:
    """The process's one TLS context for gateways with (or without) verification.

    Shared by every client: a context holds the parsed CA store (hundreds of KB,
    and about 50 ms of CPU to load), which a fleet must not pay per gateway.
    Pinning (``tls_fingerprint``) is checked per connection, not in the context.
    """
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def gateway_transport(gw: GatewaySettings) -> GatewayConnection:
    """The gateway's one connection: TLS from the shared context, pinned when
    ``tls_fingerprint``."""
    return GatewayConnection(
        gateway_ssl_context(gw.verify_tls),
        pinned=gw.tls_fingerprint,
        label=gw.label,
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )


def build_client(
    gw: GatewaySettings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncBaseTransport:
    """What :func:`send` sends through: ``transport`` (tests), else the gateway's own."""
    return transport if transport is not None else gateway_transport(gw)


# --- requests with retries --------------------------------------------------------


class TransportFailure(GatewayUnreachable):
    """No answer: ``reason`` says why without naming the gateway or path."""

    def __init__(self, gw: GatewaySettings, path: str, reason: str) -> None:
        super().__init__(f"gateway {gw.label}: {path}: {reason}")
        self.reason = reason


class InFlightLimit:
    """At most ``limit`` requests to gateways in flight at once, across gateways.

    One per worker. A fleet's cycles are spread over the interval, so this is
    a bound for bad moments (a restart, a network that comes back): it caps
    open sockets and buffers. A request waits for a slot within its deadline.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the in-flight limit must be at least 1")
        self.limit = limit
        self.in_flight = 0
        self.peak = 0  # the most requests seen in flight at once
        self._slots = asyncio.Semaphore(limit)

    async def acquire(self) -> None:
        await self._slots.acquire()
        self.in_flight += 1
        if self.in_flight > self.peak:
            self.peak = self.in_flight

    def release(self) -> None:
        self.in_flight -= 1
        self._slots.release()


def _now() -> float:
    return asyncio.get_running_loop().time()


def _timeout(gw: GatewaySettings, deadline: float | None) -> dict[str, float]:
    """httpx's ``timeout`` request extension: the gateway's timeouts, within ``deadline``."""
    read, connect = gw.read_timeout, gw.connect_timeout
    if deadline is not None:
        left = max(deadline - _now(), 0.01)
        read, connect = min(read, left), min(connect, left)
    return {"connect": connect, "read": read, "write": read, "pool": read}


def path_of(url: str) -> str:
    """``"https://10.0.0.5/ivp/meters?x=1"`` -> ``"/ivp/meters?x=1"``."""
    return split_url(url)[3] or "/"


def _headers(extra: dict[str, str] | None) -> dict[str, str]:
    # No cookies and no compression: the weak gateway gets no sessions from us
    # (Bearer or digest only), and its answers are small.
    headers = {"Accept": "*/*", "User-Agent": USER_AGENT}
    if extra:
        headers.update(extra)
    return headers


_OWN_HEADERS = frozenset(("host", "accept", "user-agent"))


class Answer(Protocol):
    """What the client reads of an answer: an ``httpx.Response`` or an
    :class:`~envoy_ingest.envoy.http11.Reply` (whose ``headers`` are keyed by
    lowercase names: look them up so)."""

    @property
    def status_code(self) -> int: ...
    @property
    def reason_phrase(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content(self) -> bytes: ...
    @property
    def text(self) -> str: ...


class Target:
    """A URL asked again and again, prepared once: where it connects, and the
    head of a GET of it up to the extra headers (the bytes httpx would make:
    request line, ``Host``, ``Accept``, ``User-Agent``). The parsed URL is kept
    only once an httpx request needs it (digest flows, other transports): a
    fleet holds a few of these per gateway."""

    __slots__ = ("_start", "_url", "origin", "path", "raw_path", "text")

    def __init__(self, url: str | httpx.URL) -> None:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        self._url = parsed if isinstance(url, httpx.URL) else None
        self.text = str(url)
        self.raw_path = parsed.raw_path  # as in the request line (and a digest's uri)
        self.path = self.raw_path.decode("ascii", "replace") if self._url else path_of(self.text)
        scheme, host, port = origin_of(parsed)
        # Shared by every URL of the gateway (and its connection).
        self.origin = Origin(sys.intern(scheme), sys.intern(host), port)
        # Without the blank line that ends it: extra headers go there.
        self._start = request_head(httpx.Request("GET", parsed, headers=_headers(None)))[:-2]

    @property
    def url(self) -> httpx.URL:
        if self._url is None:
            self._url = httpx.URL(self.text)
        return self._url

    def request(self, extra: dict[str, str] | None, timeouts: dict[str, float]) -> httpx.Request:
        return httpx.Request(
            "GET", self.url, headers=_headers(extra), extensions={"timeout": timeouts}
        )

    def head(self, extra: dict[str, str] | None) -> bytes:
        """The whole head of a GET with ``extra`` headers, as ``request(extra)`` sends it."""
        if not extra:
            return self._start + b"\r\n"
        lines = [self._start]
        for name, value in extra.items():
            if name.lower() in _OWN_HEADERS:  # replaces one of ours, in its place
                return request_head(self.request(extra, {}))
            lines.append(f"{name}: {value}\r\n".encode("ascii"))
        lines.append(b"\r\n")
        return b"".join(lines)


def _cancelled_from_outside() -> bool:
    """Is the current task being cancelled (shutdown), rather than a library leaking
    a CancelledError of its own (e.g. an inner timeout) into ours?"""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def is_dropped(exc: Exception) -> bool:
    """The gateway closed the connection without an answer ("Server disconnected")."""
    return isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError)


def describe_transport_error(exc: Exception) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout | httpx.PoolTimeout):
        return "no answer in time"
    if isinstance(exc, TimeoutError):
        return "no answer before the end of this cycle"
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({text})"
    if is_dropped(exc):
        return f"connection dropped ({text})"
    return text


async def send(
    client: httpx.AsyncBaseTransport,
    gw: GatewaySettings,
    url: str | httpx.URL | Target,
    *,
    headers: dict[str, str] | None = None,
    auth: httpx.Auth | None = None,
    deadline: float | None = None,
    backoff: float = 1.0,
    limit: InFlightLimit | None = None,
) -> Answer:
    """GET ``url``; retry dropped connections and 503 with backoff while time allows.

    ``url`` may be prepared already (a client asks for the same few URLs every
    cycle: parsing one costs more than the rest of building the request).

    Returns the response, whatever its status (a 503 too, once retries run
    out). Raises :class:`TransportFailure` (a :class:`GatewayUnreachable`) for
    connect errors, timeouts, drops that persist and cancellations not aimed at
    this task; :class:`CertificateMismatch` for a pinned certificate that does
    not match. Each attempt holds a slot of ``limit`` while in flight.
    """
    attempt = 0
    pace: Backoff | None = None  # made when a retry needs it
    max_attempts = MAX_ATTEMPTS if deadline is not None else MAX_ATTEMPTS_WITHOUT_DEADLINE
    target = url if isinstance(url, Target) else Target(url)
    path = target.path
    # A plain GET on the gateway's own connection: prepared bytes, no httpx objects;
    # a digest one too, once the gateway has challenged.
    conn = client if isinstance(client, GatewayConnection) else None
    digest = auth if conn is not None and isinstance(auth, GatewayDigestAuth) else None
    head = target.head(headers) if conn is not None and auth is None else b""
    while True:
        attempt += 1
        if deadline is not None and deadline - _now() <= 0:
            raise TransportFailure(gw, path, "no time left in this cycle")
        failure: str
        response: Answer | None = None
        try:
            # Until the deadline (TimeoutError after it), holding a slot of the
            # limit. A request cut short leaves nothing behind: its connection
            # is closed (see http11), and the next request opens a new one.
            async with asyncio.timeout_at(deadline):
                if limit is not None:
                    await limit.acquire()
                try:
                    timeouts = _timeout(gw, deadline)
                    signed = (
                        digest.authorization("GET", target.raw_path) if digest is not None else None
                    )
                    if conn is not None and auth is None:
                        response = await conn.request(target.origin, head, timeouts)
                    elif conn is not None and digest is not None and signed is not None:
                        response = await signed_get(
                            conn,
                            target.origin,
                            target.head({**(headers or {}), "Authorization": signed}),
                            timeouts,
                            digest,
                            functools.partial(target.request, headers, timeouts),
                        )
                    else:
                        request = target.request(headers, timeouts)
                        response = await exchange(client, request, auth)
                        await response.aread()
                finally:
                    if limit is not None:
                        limit.release()
        except CertificateMismatch:
            raise
        except httpx.TransportError as exc:
            if not is_dropped(exc):
                raise TransportFailure(gw, path, describe_transport_error(exc)) from None
            failure = describe_transport_error(exc)
        except TimeoutError:
            raise TransportFailure(gw, path, describe_transport_error(TimeoutError())) from None
        except asyncio.CancelledError:
            if _cancelled_from_outside():
                raise  # the worker is stopping: let the task end
            raise TransportFailure(gw, path, "request cancelled") from None
        else:
            if response.status_code != RETRY_STATUS:
                return response
            failure = "503 service unavailable"
        if pace is None:
            pace = Backoff(backoff, MAX_BACKOFF, jitter=False)
        delay = pace.next()
        out_of_time = deadline is not None and _now() + delay >= deadline
        if attempt >= max_attempts or out_of_time:
            if response is not None:
                return response
            raise TransportFailure(gw, path, f"{failure} ({attempt} attempts)")
        log.debug("%s: %s: %s; retrying in %.1f s", gw.label, path, failure, delay)
        await asyncio.sleep(delay)


def check_status(gw: GatewaySettings, path: str, response: Answer) -> None:
    """Raise for answers that are not a usable 2xx (401/403 are handled by the caller)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        where = response.headers.get("location", "?")
        raise GatewayResponseError(
            f"gateway {gw.label}: {path} answered {status}, a redirect to {where} "
            "(not followed; usually a missing or refused login)"
        )
    reason = response.reason_phrase or ""
    raise GatewayResponseError(
        f"gateway {gw.label}: {path} answered {status} {reason}".rstrip(), status=status
    )
