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
import select
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any

import httpx

from envoy_ingest.errors import CertificateMismatch

MAX_HEAD = 64 * 1024
MAX_BODY = 32 * 1024 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]  # scheme, host, port
Timeouts = Mapping[str, float | None]  # httpx's "timeout" extension: connect, read, write, pool


def origin_of(url: httpx.URL) -> Origin:
    return (url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme, 80))


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as 64 lowercase hex digits."""
    return hashlib.sha256(der).hexdigest()


# Every read lands here first, then only the bytes read are copied to the
# connection's buffer: one event loop, so one scratch area serves every
# connection (asyncio's own TLS transport keeps 256 KB per connection).
_SCRATCH = bytearray(64 * 1024)
_SCRATCH_VIEW = memoryview(_SCRATCH)
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class _Stream:
    """One non-blocking socket (an ``SSLSocket`` for https: OpenSSL reads and
    writes the socket itself) and the bytes read from it but not yet used."""

    __slots__ = ("answered", "buffer", "eof", "error", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.eof = False
        self.answered = False  # a byte of the current answer has arrived
        self.error: OSError | None = None

    def _read_ready(self) -> bool:
        """Take what has arrived (one read: the caller asks again if it needs more;
        reading on to "would block" costs a system call per wait); True if any
        bytes (or the end) came."""
        try:
            n = self.sock.recv_into(_SCRATCH_VIEW)
        except _WOULD_BLOCK:
            return False
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            n = 0  # close_notify, or a close without it: the end either way
        except OSError as exc:
            self.error, self.eof = exc, True
            return True
        if n == 0:
            self.eof = True
            return True
        self.buffer += _SCRATCH_VIEW[:n]
        self.answered = True
        return True

    async def more(self, timeout: float | None) -> bool:  # noqa: ASYNC109
        """Wait for more bytes or the end; False if ``timeout`` passed first."""
        loop = asyncio.get_running_loop()
        until = None if timeout is None else loop.time() + timeout
        while not self._read_ready():
            if not await _ready(loop, self.sock, until, write=False):
                return False
        return True

    async def send(self, data: bytes, timeout: float | None) -> None:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        until = None if timeout is None else loop.time() + timeout
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view) :]
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                if not await _ready(loop, self.sock, until, write=True):
                    raise TimeoutError from None
            except ssl.SSLWantReadError:
                if not await _ready(loop, self.sock, until, write=False):
                    raise TimeoutError from None

    @property
    def usable(self) -> bool:
        """Open, and nothing arrived while idle but TLS housekeeping (session
        tickets): fit for the next request."""
        if self.eof or self.buffer or self.sock.fileno() < 0:
            return False
        poll = select.poll()
        poll.register(self.sock, select.POLLIN)
        if poll.poll(0):
            self._read_ready()
        return not self.eof and not self.buffer

    def abort(self) -> None:
        self.sock.close()


async def _ready(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, until: float | None, *, write: bool
) -> bool:
    """Wait until ``sock`` is readable (writable); False if ``until`` passed first."""
    waiter: asyncio.Future[bool] = loop.create_future()
    fd = sock.fileno()
    if write:
        loop.add_writer(fd, _settle, waiter, True)
    else:
        loop.add_reader(fd, _settle, waiter, True)
    timer = None if until is None else loop.call_at(until, _settle, waiter, False)
    try:
        return await waiter
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
        if timer is not None:
            timer.cancel()


def _settle(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


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
        self._stream: _Stream | None = None
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
        status, reason, headers, keep = await _read_head(stream, timeouts.get("read"))
        body = await _read_body(stream, method, status, headers, timeouts.get("read"))
        if keep and not stream.buffer and not stream.eof:
            self._idle_since = time.monotonic()
            stream.buffer = bytearray()  # not the capacity of the largest answer so far
        else:
            self._drop()
        if _header(headers, b"content-encoding"):  # gzip and the like: httpx decodes
            body = httpx.Response(status, headers=headers, content=body).content
        return Reply(status, reason, headers, body)

    async def _connect(self, origin: Origin, timeout: float | None) -> _Stream:  # noqa: ASYNC109
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
        return _Stream(sock)

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
                    await _ready(loop, tls, None, write=False)
                except ssl.SSLWantWriteError:
                    await _ready(loop, tls, None, write=True)
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


async def _wait(stream: _Stream, timeout: float | None) -> None:  # noqa: ASYNC109
    """More bytes, or an exception saying why there will be none."""
    if stream.eof:
        _raise_closed(stream)
    if not await stream.more(timeout):
        raise httpx.ReadTimeout("timed out")
    if stream.eof and not stream.buffer:
        _raise_closed(stream)


def _raise_closed(stream: _Stream) -> None:
    if stream.error is not None:
        raise httpx.ReadError(str(stream.error) or type(stream.error).__name__)
    what = "a complete response" if stream.answered else "a response"
    raise httpx.RemoteProtocolError(f"Server disconnected without sending {what}.")


async def _read_head(
    stream: _Stream,
    timeout: float | None,  # noqa: ASYNC109
) -> tuple[int, bytes, list[tuple[bytes, bytes]], bool]:
    """Status, reason, headers and whether the connection may be kept."""
    while True:
        head = await _read_until(stream, b"\r\n\r\n", timeout, "the answer's head")
        status_line, *header_lines = head.split(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or not code.isdigit() or len(code) != 3:
            raise httpx.RemoteProtocolError(f"not an HTTP/1.x status line: {status_line[:60]!r}")
        status = int(code)
        if 100 <= status < 200:
            continue  # an interim answer (100 Continue): the real one follows
        headers: list[tuple[bytes, bytes]] = []
        for line in header_lines:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise httpx.RemoteProtocolError(f"malformed header line: {line[:60]!r}")
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
    method: str,
    status: int,
    headers: list[tuple[bytes, bytes]],
    timeout: float | None,  # noqa: ASYNC109
) -> bytes:
    if method == "HEAD" or status in (204, 304):
        return b""
    if b"chunked" in _header(headers, b"transfer-encoding").lower():
        return await _read_chunked(stream, timeout)
    length = _header(headers, b"content-length")
    if length:
        if not length.isdigit():
            raise httpx.RemoteProtocolError(f"bad Content-Length {length!r}")
        return await _read_exactly(stream, int(length), timeout)
    # Neither: the body ends when the gateway closes the connection.
    while not stream.eof:
        if len(stream.buffer) > MAX_BODY:
            raise httpx.RemoteProtocolError("the answer is too large")
        if not await stream.more(timeout):
            raise httpx.ReadTimeout("timed out")
    if stream.error is not None:
        _raise_closed(stream)
    body = bytes(stream.buffer)
    stream.buffer.clear()
    return body


async def _read_exactly(stream: _Stream, n: int, timeout: float | None) -> bytes:  # noqa: ASYNC109
    if n > MAX_BODY:
        raise httpx.RemoteProtocolError("the answer is too large")
    while len(stream.buffer) < n:
        await _wait(stream, timeout)
    body = bytes(stream.buffer[:n])
    del stream.buffer[:n]
    return body


async def _read_until(
    stream: _Stream,
    end_mark: bytes,
    timeout: float | None,  # noqa: ASYNC109
    what: str,
) -> bytes:
    """The bytes before ``end_mark`` (taken off the buffer with it); at most MAX_HEAD."""
    end = stream.buffer.find(end_mark)
    while end < 0:
        if len(stream.buffer) > MAX_HEAD:
            raise httpx.RemoteProtocolError(f"{what} is too large")
        await _wait(stream, timeout)
        end = stream.buffer.find(end_mark)
    data = bytes(stream.buffer[:end])
    del stream.buffer[: end + len(end_mark)]
    return data


async def _read_line(stream: _Stream, timeout: float | None) -> bytes:  # noqa: ASYNC109
    return await _read_until(stream, b"\r\n", timeout, "a chunk header")


async def _read_chunked(stream: _Stream, timeout: float | None) -> bytes:  # noqa: ASYNC109
    parts: list[bytes] = []
    total = 0
    while True:
        size_text = (await _read_line(stream, timeout)).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise httpx.RemoteProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            while await _read_line(stream, timeout):  # trailers, then a blank line
                pass
            return b"".join(parts)
        total += size
        parts.append(await _read_exactly(stream, size, timeout))
        if total > MAX_BODY:
            raise httpx.RemoteProtocolError("the answer is too large")
        if await _read_line(stream, timeout):
            raise httpx.RemoteProtocolError("a chunk does not end with CRLF")
