"""Bytes on one gateway's socket: a non-blocking stream, and HTTP/1.1 answers
read off it (head, then body: ``Content-Length``, chunked, or until the close).

The reading half of :mod:`envoy_ingest.envoy.http11`; failures are httpx's
own exceptions (``ReadTimeout``, ``ReadError``, ``RemoteProtocolError``).
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl

import httpx

MAX_HEAD = 64 * 1024
MAX_BODY = 32 * 1024 * 1024

# Every read lands here first, then only the bytes read are copied to the
# connection's buffer: one event loop, so one scratch area serves every
# connection (asyncio's own TLS transport keeps 256 KB per connection).
_SCRATCH = bytearray(64 * 1024)
_SCRATCH_VIEW = memoryview(_SCRATCH)
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class Stream:
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
        # Nothing of the answer yet, and nothing held in OpenSSL: wait for the
        # socket before reading (a read now would only find it empty).
        fresh = not self.answered and not (
            isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        )
        if fresh and not await ready(loop, self.sock, until, write=False):
            return False
        while not self._read_ready():
            if not await ready(loop, self.sock, until, write=False):
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
                if not await ready(loop, self.sock, until, write=True):
                    raise TimeoutError from None
            except ssl.SSLWantReadError:
                if not await ready(loop, self.sock, until, write=False):
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


async def ready(
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


async def _wait(stream: Stream, timeout: float | None) -> None:  # noqa: ASYNC109
    """More bytes, or an exception saying why there will be none."""
    if stream.eof:
        _raise_closed(stream)
    if not await stream.more(timeout):
        raise httpx.ReadTimeout("timed out")
    if stream.eof and not stream.buffer:
        _raise_closed(stream)


def _raise_closed(stream: Stream) -> None:
    if stream.error is not None:
        raise httpx.ReadError(str(stream.error) or type(stream.error).__name__)
    what = "a complete response" if stream.answered else "a response"
    raise httpx.RemoteProtocolError(f"Server disconnected without sending {what}.")


async def read_head(
    stream: Stream,
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
        connection = find_header(headers, b"connection").lower()
        # HTTP/1.1 keeps the connection unless told not to; 1.0 only when told to.
        keep = b"keep-alive" in connection if version == b"HTTP/1.0" else b"close" not in connection
        return status, reason, headers, keep


def find_header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    for key, value in headers:
        if key.lower() == name:
            return value
    return b""


async def read_body(
    stream: Stream,
    method: str,
    status: int,
    headers: list[tuple[bytes, bytes]],
    timeout: float | None,  # noqa: ASYNC109
) -> bytes:
    if method == "HEAD" or status in (204, 304):
        return b""
    if b"chunked" in find_header(headers, b"transfer-encoding").lower():
        return await _read_chunked(stream, timeout)
    length = find_header(headers, b"content-length")
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


async def _read_exactly(stream: Stream, n: int, timeout: float | None) -> bytes:  # noqa: ASYNC109
    if n > MAX_BODY:
        raise httpx.RemoteProtocolError("the answer is too large")
    while len(stream.buffer) < n:
        await _wait(stream, timeout)
    body = bytes(stream.buffer[:n])
    del stream.buffer[:n]
    return body


async def _read_until(
    stream: Stream,
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


async def _read_line(stream: Stream, timeout: float | None) -> bytes:  # noqa: ASYNC109
    return await _read_until(stream, b"\r\n", timeout, "a chunk header")


async def _read_chunked(stream: Stream, timeout: float | None) -> bytes:  # noqa: ASYNC109
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
