"""HTTP/1.1 to one gateway over asyncio's own sockets: the transport under httpx.

A fleet worker sends about 100 requests per gateway an hour; under httpx's
default transport (httpcore, h11 and anyio's TLS streams) each cost more CPU
than everything else the worker does with the answer. A gateway needs little
of what that stack offers: plain ``GET`` requests, one at a time, on one
connection. :class:`GatewayConnection` is that, as an
:class:`httpx.AsyncBaseTransport`, so httpx's requests, responses, auth flows
and exceptions stay what the rest of the code (and the tests' mock transports)
use:

- one connection, one request at a time; kept alive between cycles while the
  gateway keeps it and it has been idle less than ``keepalive_expiry``;
- TLS from the context it is given (the process shares one); a pinned
  certificate is checked right after the handshake, before a byte of HTTP;
- answers read whole by llhttp (:mod:`envoy_ingest.envoy.wire`, which says what
  it accepts and refuses): ``Content-Length``, chunked, or until the gateway
  closes; at most ``wire.MAX_BODY`` bytes;
- failures raised as httpx's own exceptions: ``ConnectError``,
  ``ConnectTimeout``, ``ReadTimeout``, ``ReadError``, ``RemoteProtocolError``
  (a connection dropped without an answer, or an answer that breaks HTTP/1.1's
  framing), ``PoolTimeout``;
- a request that ends any other way (cancelled, timed out) closes its
  connection, so the next one starts clean: nothing is left half-read.

Its core, :meth:`GatewayConnection.request`, takes a request head already
encoded and returns a :class:`Reply` (status, headers, body): what a plain
``GET`` needs, without building an ``httpx.Request`` and ``httpx.Response``
(with their headers) for each (transport.py prepares the heads). The httpx
interface, for auth flows (digest) and other callers, is a thin layer on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any

import httpx

from envoy_ingest.envoy.wire import Stream, find_header, read_answer, ready
from envoy_ingest.errors import CertificateMismatch
from envoy_ingest.origin import Origin

Timeouts = Mapping[str, float | None]  # httpx's "timeout" extension: connect, read, write, pool


def origin_of(url: httpx.URL) -> Origin:
    return Origin.of(url.scheme, url.host, url.port)


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as 64 lowercase hex digits."""
    return hashlib.sha256(der).hexdigest()


class Reply:
    """An answer read whole: what the client reads of it, as httpx.Response has it
    (``status_code``, ``reason_phrase``, ``headers.get``, ``content``, ``text``).

    ``headers`` maps lowercase names to values (repeated headers joined by ", ",
    as ``httpx.Headers`` does); ``content`` is decoded when the gateway used a
    ``Content-Encoding``.
    """

    __slots__ = ("_headers", "content", "raw_headers", "reason", "status_code")

    def __init__(
        self,
        status_code: int,
        reason: bytes,
        raw_headers: list[tuple[bytes, bytes]],
        content: bytes,
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.raw_headers = raw_headers
        self.content = content
        self._headers: dict[str, str] | None = None

    @property
    def reason_phrase(self) -> str:
        return self.reason.decode("ascii", errors="ignore")  # as httpx.Response's

    @property
    def headers(self) -> Mapping[str, str]:
        if self._headers is None:
            self._headers = _header_dict(self.raw_headers)
        return self._headers

    @property
    def text(self) -> str:
        """The body as text, by httpx's rules (the charset, else UTF-8): for the rare
        answer that is not JSON (``/info``)."""
        return self.to_httpx().text

    def to_httpx(self, request: httpx.Request | None = None) -> httpx.Response:
        response = httpx.Response(
            self.status_code,
            headers=self.raw_headers,
            stream=httpx.ByteStream(self.content),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": self.reason},
        )
        # Already whole and decoded: no decoding pass (a quarter of building a
        # response). Were httpx to name it otherwise, aread() reads the stream.
        response._content = self.content
        return response

    def __repr__(self) -> str:
        return f"<Reply [{self.status_code} {self.reason_phrase}]>"


def _header_dict(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    try:
        for name, value in raw:
            key, text = name.decode("ascii").lower(), value.decode("ascii")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
    except UnicodeDecodeError:  # httpx's fallbacks (UTF-8, then Latin-1) for all of them
        return dict(httpx.Headers(raw).items())
    return headers


class GatewayConnection(httpx.AsyncBaseTransport):
    """One keep-alive HTTP/1.1 connection to one gateway (see the module's doc)."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        pinned: str | None = None,
        label: str = "",
        keepalive_expiry: float = 75.0,
    ) -> None:
        self.ssl_context = ssl_context
        self.pinned = pinned
        self.label = label
        self.keepalive_expiry = keepalive_expiry
        self.connections_opened = 0
        self._stream: Stream | None = None
        self._origin: Origin | None = None
        self._idle_since = 0.0
        self._lock = asyncio.Lock()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """The httpx interface: :meth:`request` for an ``httpx.Request``."""
        head = request_head(request) + _body(request)
        timeouts: Timeouts = request.extensions.get("timeout", {})
        try:
            reply = await self.request(
                origin_of(request.url), head, timeouts, method=request.method
            )
        except httpx.RequestError as exc:
            exc.request = request
            raise
        return reply.to_httpx(request)

    async def request(
        self, origin: Origin, head: bytes, timeouts: Timeouts, *, method: str = "GET"
    ) -> Reply:
        """Send ``head`` (a whole request: request line, headers, blank line, body)
        to ``origin``, on the kept connection if it is still good, and read the
        answer. ``timeouts``: httpx's ``connect``, ``read``, ``write``, ``pool``."""
        if self._lock.locked():
            try:
                async with asyncio.timeout(timeouts.get("pool")):
                    await self._lock.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("the gateway's connection stayed busy") from None
        else:
            await self._lock.acquire()
        done = False
        try:
            reply = await self._exchange(origin, head, timeouts, method)
            done = True
            return reply
        finally:
            if not done:
                self._drop()
            self._lock.release()

    async def aclose(self) -> None:
        self._drop()

    def _drop(self) -> None:
        if self._stream is not None:
            self._stream.abort()
            self._stream = None

    async def _exchange(
        self, origin: Origin, head: bytes, timeouts: Timeouts, method: str
    ) -> Reply:
        stream = self._stream
        reused = (
            stream is not None
            and origin == self._origin
            and time.monotonic() - self._idle_since < self.keepalive_expiry
            and stream.usable  # last: it polls the socket
        )
        if not reused:
            self._drop()
            stream = self._stream = await self._connect(origin, timeouts.get("connect"))
            self._origin = origin
        assert stream is not None
        stream.answered = False
        try:
            await stream.send(head, timeouts.get("write"))
        except TimeoutError:
            raise httpx.WriteTimeout("timed out") from None
        except OSError as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__) from None
        status, reason, headers, body, keep = await read_answer(
            stream, method, timeouts.get("read")
        )
        if keep and not stream.buffer and not stream.eof:
            self._idle_since = time.monotonic()
            stream.buffer = bytearray()  # not the capacity of the largest answer so far
        else:
            self._drop()
        if find_header(headers, b"content-encoding"):  # gzip and the like: httpx decodes
            body = httpx.Response(status, headers=headers, content=body).content
        return Reply(status, reason, headers, body)

    async def _connect(self, origin: Origin, timeout: float | None) -> Stream:  # noqa: ASYNC109
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                sock = await _open(loop, host, port)
                if scheme == "https":
                    sock = await self._handshake(loop, sock, host)
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out") from None
        except OSError as exc:  # ssl.SSLError too
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
        self.connections_opened += 1
        return Stream(sock)

    async def _handshake(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, host: str
    ) -> ssl.SSLSocket:
        try:
            tls = self.ssl_context.wrap_socket(
                sock, server_hostname=host, do_handshake_on_connect=False
            )
        except BaseException:
            sock.close()
            raise
        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    await ready(loop, tls, None, write=False)
                except ssl.SSLWantWriteError:
                    await ready(loop, tls, None, write=True)
            if self.pinned is not None:
                self._check_pin(tls)
        except BaseException:
            tls.close()
            raise
        return tls

    def _check_pin(self, tls: ssl.SSLSocket) -> None:
        der = tls.getpeercert(binary_form=True)
        actual = fingerprint(der) if der else None
        if actual != self.pinned:
            raise CertificateMismatch(
                f"gateway {self.label}: the TLS certificate's SHA-256 fingerprint is "
                f"{actual or 'unavailable'}, not the pinned tls_fingerprint {self.pinned}; "
                "if the gateway really got a new certificate (firmware update), "
                "set tls_fingerprint to the new value"
            )


async def _open(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket; each address of a name tried in turn."""
    addresses: list[tuple[int, tuple[Any, ...]]]
    try:
        ip = ipaddress.ip_address(host)
        addresses = [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, (host, port))]
    except ValueError:  # a name: resolved off the event loop
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [(family, address) for family, _, _, _, address in infos]
    error: OSError = OSError(f"{host} has no address")
    for family, address in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error


def request_head(request: httpx.Request) -> bytes:
    """The request line and headers of ``request``, as sent (with the blank line)."""
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    lines.extend(name + b": " + value for name, value in request.headers.raw)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _body(request: httpx.Request) -> bytes:
    try:
        return request.content
    except httpx.RequestNotRead:
        raise httpx.LocalProtocolError(
            "a streamed request body is not supported by the gateway transport", request=request
        ) from None
