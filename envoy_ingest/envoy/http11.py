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
- answers read whole: ``Content-Length``, chunked, or until the gateway closes;
  at most :data:`MAX_BODY` bytes;
- failures raised as httpx's own exceptions: ``ConnectError``,
  ``ConnectTimeout``, ``ReadTimeout``, ``ReadError``, ``RemoteProtocolError``
  (a connection dropped without an answer), ``PoolTimeout``;
- a request that ends any other way (cancelled, timed out) closes its
  connection, so the next one starts clean: nothing is left half-read.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time

import httpx

from envoy_ingest.errors import CertificateMismatch

MAX_HEAD = 64 * 1024
MAX_BODY = 32 * 1024 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as 64 lowercase hex digits."""
    return hashlib.sha256(der).hexdigest()


class _Stream(asyncio.Protocol):
    """The bytes of one connection, waited for with a per-read timeout."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.answered = False  # a byte of the current answer has arrived
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[bool] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.answered = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: BaseException | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    async def more(self, timeout: float | None) -> bool:  # noqa: ASYNC109
        """Wait for more bytes or the end; False if ``timeout`` passed first."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    @property
    def usable(self) -> bool:
        """Idle, open and with nothing unread: fit for the next request."""
        t = self.transport
        return t is not None and not self.eof and not t.is_closing() and not self.buffer

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


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
        self._stream: _Stream | None = None
        self._origin: tuple[str, str, int] | None = None
        self._idle_since = 0.0
        self._lock = asyncio.Lock()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        if self._lock.locked():
            try:
                async with asyncio.timeout(timeouts.get("pool")):
                    await self._lock.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout(
                    "the gateway's connection stayed busy", request=request
                ) from None
        else:
            await self._lock.acquire()
        done = False
        try:
            response = await self._exchange(request, timeouts)
            done = True
            return response
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
        self, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> httpx.Response:
        url = request.url
        origin = (url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme, 80))
        stream = self._stream
        reused = (
            stream is not None
            and stream.usable
            and origin == self._origin
            and time.monotonic() - self._idle_since < self.keepalive_expiry
        )
        if not reused:
            self._drop()
            stream = self._stream = await self._connect(request, origin, timeouts.get("connect"))
            self._origin = origin
        assert stream is not None and stream.transport is not None
        stream.answered = False
        stream.transport.write(_head(request) + _body(request))
        status, reason, headers, keep = await _read_head(stream, request, timeouts.get("read"))
        body = await _read_body(stream, request, status, headers, timeouts.get("read"))
        if keep and not stream.buffer and not stream.eof:
            self._idle_since = time.monotonic()
        else:
            self._drop()
        return httpx.Response(
            status,
            headers=headers,
            content=body,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def _connect(
        self,
        request: httpx.Request,
        origin: tuple[str, str, int],
        timeout: float | None,  # noqa: ASYNC109
    ) -> _Stream:
        scheme, host, port = origin
        tls = self.ssl_context if scheme == "https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, stream = await loop.create_connection(
                    _Stream, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out", request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from None
        self.connections_opened += 1
        if tls is not None and self.pinned is not None:
            self._check_pin(stream)
        return stream

    def _check_pin(self, stream: _Stream) -> None:
        assert stream.transport is not None
        ssl_object = stream.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        actual = fingerprint(der) if der else None
        if actual != self.pinned:
            stream.abort()
            raise CertificateMismatch(
                f"gateway {self.label}: the TLS certificate's SHA-256 fingerprint is "
                f"{actual or 'unavailable'}, not the pinned tls_fingerprint {self.pinned}; "
                "if the gateway really got a new certificate (firmware update), "
                "set tls_fingerprint to the new value"
            )


def _head(request: httpx.Request) -> bytes:
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


async def _wait(stream: _Stream, request: httpx.Request, timeout: float | None) -> None:  # noqa: ASYNC109
    """More bytes, or an exception saying why there will be none."""
    if stream.eof:
        _raise_closed(stream, request)
    if not await stream.more(timeout):
        raise httpx.ReadTimeout("timed out", request=request)
    if stream.eof and not stream.buffer:
        _raise_closed(stream, request)


def _raise_closed(stream: _Stream, request: httpx.Request) -> None:
    if isinstance(stream.error, OSError):
        raise httpx.ReadError(str(stream.error) or type(stream.error).__name__, request=request)
    what = "a complete response" if stream.answered else "a response"
    raise httpx.RemoteProtocolError(f"Server disconnected without sending {what}.", request=request)


async def _read_head(
    stream: _Stream,
    request: httpx.Request,
    timeout: float | None,  # noqa: ASYNC109
) -> tuple[int, bytes, list[tuple[bytes, bytes]], bool]:
    """Status, reason, headers and whether the connection may be kept."""
    while True:
        end = stream.buffer.find(b"\r\n\r\n")
        while end < 0:
            if len(stream.buffer) > MAX_HEAD:
                raise httpx.RemoteProtocolError("the answer's head is too large", request=request)
            await _wait(stream, request, timeout)
            end = stream.buffer.find(b"\r\n\r\n")
        head = bytes(stream.buffer[:end])
        del stream.buffer[: end + 4]
        status_line, *header_lines = head.split(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or not code.isdigit() or len(code) != 3:
            raise httpx.RemoteProtocolError(
                f"not an HTTP/1.x status line: {status_line[:60]!r}", request=request
            )
        status = int(code)
        if 100 <= status < 200:
            continue  # an interim answer (100 Continue): the real one follows
        headers: list[tuple[bytes, bytes]] = []
        for line in header_lines:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise httpx.RemoteProtocolError(
                    f"malformed header line: {line[:60]!r}", request=request
                )
            headers.append((name, value.strip()))
        connection = _header(headers, b"connection").lower()
        # HTTP/1.1 keeps the connection unless told not to; 1.0 only when told to.
        keep = b"keep-alive" in connection if version == b"HTTP/1.0" else b"close" not in connection
        return status, reason, headers, keep


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    for key, value in headers:
        if key.lower() == name:
            return value
    return b""


async def _read_body(
    stream: _Stream,
    request: httpx.Request,
    status: int,
    headers: list[tuple[bytes, bytes]],
    timeout: float | None,  # noqa: ASYNC109
) -> bytes:
    if request.method == "HEAD" or status in (204, 304):
        return b""
    if b"chunked" in _header(headers, b"transfer-encoding").lower():
        return await _read_chunked(stream, request, timeout)
    length = _header(headers, b"content-length")
    if length:
        if not length.isdigit():
            raise httpx.RemoteProtocolError(f"bad Content-Length {length!r}", request=request)
        return await _read_exactly(stream, request, int(length), timeout)
    # Neither: the body ends when the gateway closes the connection.
    while not stream.eof:
        if len(stream.buffer) > MAX_BODY:
            raise httpx.RemoteProtocolError("the answer is too large", request=request)
        if not await stream.more(timeout):
            raise httpx.ReadTimeout("timed out", request=request)
    if isinstance(stream.error, OSError):
        _raise_closed(stream, request)
    body = bytes(stream.buffer)
    stream.buffer.clear()
    return body


async def _read_exactly(
    stream: _Stream,
    request: httpx.Request,
    n: int,
    timeout: float | None,  # noqa: ASYNC109
) -> bytes:
    if n > MAX_BODY:
        raise httpx.RemoteProtocolError("the answer is too large", request=request)
    while len(stream.buffer) < n:
        await _wait(stream, request, timeout)
    body = bytes(stream.buffer[:n])
    del stream.buffer[:n]
    return body


async def _read_line(stream: _Stream, request: httpx.Request, timeout: float | None) -> bytes:  # noqa: ASYNC109
    end = stream.buffer.find(b"\r\n")
    while end < 0:
        if len(stream.buffer) > MAX_HEAD:
            raise httpx.RemoteProtocolError("a chunk header is too large", request=request)
        await _wait(stream, request, timeout)
        end = stream.buffer.find(b"\r\n")
    line = bytes(stream.buffer[:end])
    del stream.buffer[: end + 2]
    return line


async def _read_chunked(stream: _Stream, request: httpx.Request, timeout: float | None) -> bytes:  # noqa: ASYNC109
    parts: list[bytes] = []
    total = 0
    while True:
        size_text = (await _read_line(stream, request, timeout)).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise httpx.RemoteProtocolError(
                f"bad chunk size {size_text[:20]!r}", request=request
            ) from None
        if size == 0:
            while await _read_line(stream, request, timeout):  # trailers, then a blank line
                pass
            return b"".join(parts)
        total += size
        parts.append(await _read_exactly(stream, request, size, timeout))
        if total > MAX_BODY:
            raise httpx.RemoteProtocolError("the answer is too large", request=request)
        if await _read_line(stream, request, timeout):
            raise httpx.RemoteProtocolError("a chunk does not end with CRLF", request=request)
