"""Bytes on one gateway's socket: a non-blocking stream, and HTTP/1.1 answers
read off it by llhttp (Node.js's parser, through httptools).

The reading half of :mod:`envoy_ingest.envoy.http11`; failures are httpx's
own exceptions (``ReadTimeout``, ``ReadError``, ``RemoteProtocolError``).

What an answer may be (RFC 9112), as llhttp reads it with three leniencies:

- refused, as a ``RemoteProtocolError``, and the connection closed: a status
  line that is not ``HTTP/1.x`` with a status of 100 to 599; a header line
  without a name and colon, or with a space before the colon; two
  ``Content-Length`` fields (even equal ones) or one that is not digits; a
  chunk size that is not hex digits alone (``0x5``, ``+5``, ``1_0``, ``-3``,
  a space) or beyond 64 bits; a chunk not followed by CRLF; a
  ``Transfer-Encoding`` other than ``chunked`` once (a gateway may not apply
  codings we did not ask for); a head over :data:`MAX_HEAD` or a body over
  :data:`MAX_BODY`; a ``101`` upgrade; bytes after the end of the answer (an
  answer nobody asked for: the next request would read it as its own);
- accepted: a head with bare LF line ends (lenient_optional_cr_before_lf); an
  obsolete folded header line, joined with a space (lenient_headers, which
  also lets a header value carry control characters other than CR and LF:
  nothing here frames by those); chunk extensions and trailers (skipped);
  interim ``1xx`` answers (skipped); an answer without a length (read until
  the gateway closes, so never reused); no body for ``HEAD``, ``204``, ``304``;
- ``Transfer-Encoding: chunked`` with a ``Content-Length``: the chunks are the
  body (RFC 9112 6.3: Transfer-Encoding overrides; lenient_chunked_length) and
  the connection is closed after it, never reused (6.1: such an answer may be
  an attempt at response splitting).

Chunk lines (sizes, the CRLF after each chunk) need CRLF, as llhttp and h11
both require.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl

import httptools
import httpx

MAX_HEAD = 64 * 1024
MAX_BODY = 32 * 1024 * 1024

Headers = list[tuple[bytes, bytes]]
# status, reason, headers (names as sent, values stripped), body, connection reusable
Answer = tuple[int, bytes, Headers, bytes, bool]

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


async def read_answer(stream: Stream, method: str, timeout: float | None) -> Answer:  # noqa: ASYNC109
    """Read one answer off ``stream`` (after any interim ``1xx``): status, reason,
    headers, body, and whether the connection may carry the next request.

    A fresh parser per answer (a few hundred bytes, gone with it): nothing of
    one answer's parsing outlives it, and an idle connection holds no parser."""
    answer = _Answer(method == "HEAD")
    fed = 0
    try:
        while True:
            if stream.buffer:
                fed += len(stream.buffer)
                answer.feed(stream.buffer)
                stream.buffer.clear()
                if answer.complete:
                    break
                if not answer.head_done and fed > MAX_HEAD:
                    raise httpx.RemoteProtocolError("the answer's head is too large")
                if answer.size > MAX_BODY:
                    raise httpx.RemoteProtocolError("the answer is too large")
            if stream.eof:
                if answer.until_close and stream.error is None:
                    break  # no length: the body ended when the gateway closed
                _raise_closed(stream)
            if not await stream.more(timeout):
                raise httpx.ReadTimeout("timed out")
    finally:
        # The parser and its answer refer to each other: parted, both are freed
        # now, not by a pass of the garbage collector.
        del answer.parser
    body = answer.body[0] if len(answer.body) == 1 else b"".join(answer.body)
    return answer.status, answer.reason, answer.headers, body, answer.keep


def find_header(headers: Headers, name: bytes) -> bytes:
    """The value of the first header called ``name`` (lowercase), or b""."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return b""


def _raise_closed(stream: Stream) -> None:
    if stream.error is not None:
        raise httpx.ReadError(str(stream.error) or type(stream.error).__name__)
    what = "a complete response" if stream.answered else "a response"
    raise httpx.RemoteProtocolError(f"Server disconnected without sending {what}.")


_BLANKS = (ord(" "), ord("\t"))


class _Refused(Exception):
    """Raised in a parser callback to stop llhttp: the answer is refused."""


class _Answer:
    """One answer as llhttp reports it while it reads (its callbacks)."""

    on_chunk_header = on_chunk_complete = None  # not wanted (found at once, not missed)

    __slots__ = (
        "body",
        "complete",
        "head_done",
        "head_only",
        "headers",
        "keep",
        "parser",
        "reason",
        "refused",
        "size",
        "status",
        "until_close",
    )

    def __init__(self, head_only: bool) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.parser.set_dangerous_leniencies(
            lenient_optional_cr_before_lf=True,  # bare LF line ends in the head
            lenient_headers=True,  # obsolete line folding
            lenient_chunked_length=True,  # chunked with Content-Length: see the module's doc
        )
        self.head_only = head_only  # the answer to HEAD: no body, whatever the head says
        self.headers: Headers = []
        self.reason = b""
        self.body: list[bytes] = []
        self.size = 0
        self.status = 0
        self.refused = ""
        self.head_done = self.complete = self.keep = self.until_close = False

    def feed(self, data: bytearray) -> None:
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade, _Refused) as exc:
            why = self.refused or f"the answer is not valid HTTP/1.1 ({exc or type(exc).__name__})"
            raise httpx.RemoteProtocolError(why) from None

    def _refuse(self, why: str) -> None:
        self.refused = why
        raise _Refused(why)

    # --- llhttp's callbacks, in the order it makes them ---

    def on_message_begin(self) -> None:
        if self.complete:
            self._refuse("bytes after the end of the answer")

    def on_status(self, reason: bytes) -> None:
        self.reason += reason  # in pieces if the status line came in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_done:
            return  # a trailer (after the chunks): skipped
        if name[-1] in _BLANKS:  # lenient_headers lets it through; "Content-Length :" is
            self._refuse(f"a space before the colon of header {name[:40]!r}")  # ambiguous
        self.headers.append((name, value.strip()))

    def on_headers_complete(self) -> None:
        if not self.parser.get_http_version().startswith("1."):
            self._refuse(f"HTTP/{self.parser.get_http_version()} is not HTTP/1.x")
        status = self.parser.get_status_code()
        if not 100 <= status <= 599:
            self._refuse(f"status {status} is not an HTTP status (100 to 599)")
        if status == 101:
            self._refuse("101 Switching Protocols, to a request that asked for no upgrade")
        self.status = status
        self.keep = self.parser.should_keep_alive()
        if status < 200:
            return  # an interim answer (100 Continue): the real one follows
        self.head_done = True
        codings = length = None
        for name, value in self.headers:
            key = name.lower()
            if key == b"content-length":
                length = value  # digits: llhttp checked it, and that there is one
            elif key == b"transfer-encoding":
                codings = value if codings is None else codings + b"," + value
        if codings is not None:
            if [coding.strip().lower() for coding in codings.split(b",")] != [b"chunked"]:
                self._refuse(f"Transfer-Encoding {codings[:40]!r}: only chunked was accepted")
            if length is not None:
                self.keep = False
        elif length is not None:
            if int(length) > MAX_BODY:
                self._refuse("the answer is too large")
        elif not self.head_only and status not in (204, 304):
            self.until_close = True
            self.keep = False
        if self.head_only:
            self.complete = True

    def on_body(self, body: bytes) -> None:
        if self.complete:  # a body after the head of an answer to HEAD
            self._refuse("bytes after the end of the answer")
        self.body.append(body)
        self.size += len(body)

    def on_message_complete(self) -> None:
        if self.status < 200:
            self.headers = []
            self.reason = b""
        else:
            self.complete = True
