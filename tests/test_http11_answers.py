"""Answers as RFC 9112 frames them, and as gateways get them wrong: each one
scripted byte for byte by a raw server on loopback, read by the gateway
transport (envoy/http11.py over envoy/wire.py).

For every answer refused, the test checks the exact error, that it came
before its deadline, and that the next request on the same client gets the
next answer right on a new connection (the refused one is never reused).
"""

from __future__ import annotations

import asyncio
import ssl
import time

import httpx
import pytest

from envoy_ingest.envoy import transport, wire
from envoy_ingest.envoy.http11 import GatewayConnection, Reply
from envoy_ingest.envoy.wire import MAX_BODY, MAX_HEAD
from envoy_ingest.settings import GatewaySettings
from tests.support.rawserver import RESET, RawServer, Script

GOOD = b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"a": 42}'


def _conn() -> GatewayConnection:
    return GatewayConnection(ssl.create_default_context(), label="g", keepalive_expiry=75.0)


async def _get(conn: GatewayConnection, base: str, timeout: float = 2.0) -> Reply:
    host, port = base.removeprefix("http://").split(":")
    head = b"GET /x HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode()
    return await conn.request(("http", host, int(port)), head, httpx.Timeout(timeout).as_dict())


async def _refused_then_good(script: Script, error: type[Exception], message: str) -> None:
    """``script`` is refused with ``error`` saying exactly ``message``, as it
    comes (well before the read timeout); the next request on the same
    connection object is answered right, on a new connection."""
    server = RawServer(lambda head: script)
    async with server as base:
        conn = _conn()
        started = time.monotonic()
        with pytest.raises(error) as raised:
            await _get(conn, base, timeout=5.0)
        took = time.monotonic() - started
        server.answer = lambda head: GOOD
        reply = await _get(conn, base)
        again = await _get(conn, base)
        await conn.aclose()
    assert str(raised.value) == message
    assert (reply.status_code, reply.content, again.content) == (200, b'{"a": 42}', b'{"a": 42}')
    assert (server.connections, conn.connections_opened) == (2, 2)  # then kept for the third
    assert took < 2.5  # not the read timeout


def _invalid(reason: str) -> str:
    return f"the answer is not valid HTTP/1.1 ({reason})"


def _chunked(*lines: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"".join(lines)


# --- ambiguous framing: refused, whatever follows ---------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # two Content-Length values: the hand parser took the first (a 2-byte body)
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nabcde",
            _invalid("Duplicate Content-Length"),
        ),
        # equal ones too (RFC 9110 8.6 allows refusing them)
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nabcde",
            _invalid("Duplicate Content-Length"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 5\r\n\r\nabcde",
            _invalid("Invalid character in Content-Length"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            _invalid("Invalid character in Content-Length"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nabcde",
            _invalid("Invalid character in Content-Length"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\nabcde",
            _invalid("Invalid character in Content-Length"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5.0\r\n\r\nabcde",
            _invalid("Invalid character in Content-Length"),
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nabcde", _invalid("Empty Content-Length")),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nabcde",
            _invalid("Content-Length overflow"),
        ),
        # the hand parser's int(x, 16) took all of these as sizes
        (_chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), _invalid("Invalid character in chunk size")),
        (_chunked(b"+5\r\nhello\r\n0\r\n\r\n"), _invalid("Invalid character in chunk size")),
        (
            _chunked(b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n"),
            _invalid("Invalid character in chunk size"),
        ),
        (_chunked(b"-3\r\nabc\r\n0\r\n\r\n"), _invalid("Invalid character in chunk size")),
        (_chunked(b" 5\r\nhello\r\n0\r\n\r\n"), _invalid("Invalid character in chunk size")),
        (_chunked(b"5 \r\nhello\r\n0\r\n\r\n"), _invalid("Invalid character in chunk size")),
        (_chunked(b"\r\nhello\r\n0\r\n\r\n"), _invalid("Invalid character in chunk size")),
        (_chunked(b"zz\r\n"), _invalid("Invalid character in chunk size")),
        (_chunked(b"1" + b"0" * 16 + b"\r\n"), _invalid("Chunk size overflow")),  # 2 ** 64
        # a chunk longer than its size: the size was wrong
        (_chunked(b"5\r\nhello, world\r\n0\r\n\r\n"), _invalid("Expected LF after chunk data")),
        (
            _chunked(b"5;\x01\r\nhello\r\n0\r\n\r\n"),
            _invalid("Invalid character in chunk extensions name"),
        ),
        (_chunked(b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n"), _invalid("Invalid header token")),
        # codings the client did not ask for: the body would be read as if plain
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc",
            "Transfer-Encoding b'gzip': only chunked was accepted",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "Transfer-Encoding b'gzip, chunked': only chunked was accepted",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            "Transfer-Encoding b'chunked,chunked': only chunked was accepted",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
            "the answer is too large",
        ),
    ],
)
async def test_ambiguous_framing_is_refused_and_the_connection_dropped(
    raw: bytes, message: str
) -> None:
    await _refused_then_good(raw, httpx.RemoteProtocolError, message)


# --- status lines, header lines, heads ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"SSH-2.0-OpenSSH_8.9\r\n\r\n", _invalid("Expected HTTP/, RTSP/ or ICE/")),
        (
            b"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            _invalid("Expected HTTP/, RTSP/ or ICE/"),
        ),
        (b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", _invalid("Invalid status code")),
        (b"HTTP/1.1 OK 200\r\nContent-Length: 0\r\n\r\n", _invalid("Invalid status code")),
        (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", _invalid("Invalid response status")),
        (b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n", _invalid("Invalid status code")),
        (
            b"HTTP/1.1 099 OK\r\nContent-Length: 0\r\n\r\n",
            "status 99 is not an HTTP status (100 to 599)",
        ),
        (
            b"HTTP/1.1 600 OK\r\nContent-Length: 0\r\n\r\n",
            "status 600 is not an HTTP status (100 to 599)",
        ),
        (b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", "HTTP/2.0 is not HTTP/1.x"),
        (b"HTTP/0.9 200 OK\r\nContent-Length: 0\r\n\r\n", "HTTP/0.9 is not HTTP/1.x"),
        (b"HTTP/1.x 200 OK\r\nContent-Length: 0\r\n\r\n", _invalid("Invalid minor version")),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", _invalid("Invalid header token")),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
            "a space before the colon of header b'Content-Length '",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding\t: chunked\r\nContent-Length: 3\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            _invalid("Invalid header token"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding  : chunked\r\nContent-Length: 3\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            "a space before the colon of header b'Transfer-Encoding  '",
        ),
        (
            b"HTTP/1.1 200 OK\r\n: empty name\r\nContent-Length: 0\r\n\r\n",
            _invalid("Invalid header token"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n",
            _invalid("Missing expected LF after header value"),
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\n\r\n",
            "101 Switching Protocols, to a request that asked for no upgrade",
        ),
    ],
)
async def test_a_garbled_head_is_refused_and_the_connection_dropped(
    raw: bytes, message: str
) -> None:
    await _refused_then_good(raw, httpx.RemoteProtocolError, message)


@pytest.mark.parametrize(
    "raw",
    [
        # many headers, the blank line never reached
        b"HTTP/1.1 200 OK\r\n" + b"X-Filler: %s\r\n" % (b"f" * 100) * 700,
        # one huge header line
        b"HTTP/1.1 200 OK\r\nX-Huge: " + b"h" * (MAX_HEAD + 10),
        # interim answers without end
        b"HTTP/1.1 100 Continue\r\n\r\n" * (MAX_HEAD // 20),
    ],
)
async def test_a_head_beyond_max_head_is_refused_at_once(raw: bytes) -> None:
    assert len(raw) > MAX_HEAD
    await _refused_then_good(raw, httpx.RemoteProtocolError, "the answer's head is too large")


@pytest.mark.parametrize(
    "raw",
    [
        _chunked(b"258\r\n" + b"x" * 600 + b"\r\n" + b"258\r\n" + b"x" * 600 + b"\r\n"),
        b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 1500,  # no length: until the close that never comes
    ],
)
async def test_a_body_growing_beyond_max_body_is_refused_at_once(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wire, "MAX_BODY", 1000)
    await _refused_then_good(raw, httpx.RemoteProtocolError, "the answer is too large")


async def test_a_huge_chunk_size_is_read_no_further_than_the_bytes_that_come() -> None:
    """A size in range (2 ** 62) with a few bytes after it: a read timeout when
    they stop, not an allocation of the size."""
    server = RawServer(lambda head: _chunked(b"4000000000000000\r\nabc"))
    async with server as base:
        conn = _conn()
        with pytest.raises(httpx.ReadTimeout):
            await _get(conn, base, timeout=0.3)
        server.answer = lambda head: GOOD
        assert (await _get(conn, base)).content == b'{"a": 42}'
        await conn.aclose()
    assert server.connections == 2


# --- answers cut short, silences, resets ---------------------------------------------------


@pytest.mark.parametrize(
    ("script", "error", "message"),
    [
        ([], httpx.RemoteProtocolError, "Server disconnected without sending a response."),
        (
            [b"HTTP/1.1 200 OK\r\nContent-Le"],
            httpx.RemoteProtocolError,
            "Server disconnected without sending a complete response.",
        ),
        (
            [b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"a": '],
            httpx.RemoteProtocolError,
            "Server disconnected without sending a complete response.",
        ),
        (
            [_chunked(b'9\r\n{"a": ')],
            httpx.RemoteProtocolError,
            "Server disconnected without sending a complete response.",
        ),
        (  # every chunk but the last (the 0 chunk that says the body is whole)
            [_chunked(b'9\r\n{"a": 42}\r\n')],
            httpx.RemoteProtocolError,
            "Server disconnected without sending a complete response.",
        ),
        (
            [_chunked(b'9\r\n{"a": 42}\r\n0\r\nX-Trailer: 1\r\n')],
            httpx.RemoteProtocolError,
            "Server disconnected without sending a complete response.",
        ),
        (
            [b"HTTP/1.1 100 Continue\r\n\r\n"],
            httpx.RemoteProtocolError,
            "Server disconnected without sending a complete response.",
        ),
        (
            [b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"a": ', 0.05, RESET],
            httpx.ReadError,
            "[Errno 104] Connection reset by peer",
        ),
        (  # no length, read until the close: a reset is not the end of the body
            [b'HTTP/1.0 200 OK\r\n\r\n{"a": ', 0.05, RESET],
            httpx.ReadError,
            "[Errno 104] Connection reset by peer",
        ),
    ],
)
async def test_an_answer_cut_short_is_an_error_never_a_shorter_body(
    script: list[bytes | float], error: type[Exception], message: str
) -> None:
    server = RawServer(lambda head: script)
    server.close_after = True
    async with server as base:
        conn = _conn()
        with pytest.raises(error) as raised:
            await _get(conn, base)
        server.close_after = False
        server.answer = lambda head: GOOD
        assert (await _get(conn, base)).content == b'{"a": 42}'
        await conn.aclose()
    assert str(raised.value) == message
    assert server.connections == 2


@pytest.mark.parametrize(
    "script",
    [
        [],  # nothing at all
        [b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"],  # the head never ends
        [b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"a": '],  # the body stops
        [_chunked(b'9\r\n{"a": 42}\r\n')],  # the last chunk never comes
        [b'HTTP/1.1 200 OK\r\n\r\n{"a": 42}'],  # no length, and no close
    ],
)
async def test_silence_is_a_read_timeout_at_its_time(script: list[bytes | float]) -> None:
    server = RawServer(lambda head: script)
    async with server as base:
        conn = _conn()
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await _get(conn, base, timeout=0.3)
        took = time.monotonic() - started
        server.answer = lambda head: GOOD
        assert (await _get(conn, base)).content == b'{"a": 42}'
        await conn.aclose()
    assert 0.29 <= took < 1.5  # the read timeout
    assert server.connections == 2


async def test_a_slow_drip_body_ends_at_the_deadline_and_the_next_request_works() -> None:
    """Slowloris: a byte every 50 ms never lets a read time out, but
    the request's deadline ends it; the next request opens a new connection."""
    drip: list[bytes | float] = [b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"]
    drip += [b"x", 0.05] * 200
    server = RawServer(lambda head: drip)
    async with server as base:
        conn = _conn()
        gw = GatewaySettings(host=base, read_timeout=2.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(transport.TransportFailure) as raised:
            await transport.send(conn, gw, f"{base}/x", deadline=started + 0.5)
        took = loop.time() - started
        server.answer = lambda head: GOOD
        reply = await transport.send(conn, gw, f"{base}/x", deadline=loop.time() + 5)
        await conn.aclose()
    assert str(raised.value) == f"gateway {gw.label}: /x: no answer before the end of this cycle"
    assert 0.49 <= took < 1.9  # the deadline, not the read timeout
    assert reply.content == b'{"a": 42}' and server.connections == 2


# --- extra bytes: an answer nobody asked for must not become the next one's -------------------


async def test_bytes_after_the_answer_in_the_same_read_refuse_it() -> None:
    poisoned = GOOD.replace(b"42", b"41") + b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"a": 40}'
    await _refused_then_good(
        poisoned, httpx.RemoteProtocolError, "bytes after the end of the answer"
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 204 No Content\r\n\r\nsurprise",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 8\r\n\r\nsurprise",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}garbage",
    ],
)
async def test_a_body_where_none_may_be_is_refused(raw: bytes) -> None:
    await _refused_then_good(raw, httpx.RemoteProtocolError, "bytes after the end of the answer")


async def test_bytes_arriving_after_the_answer_keep_it_but_poison_no_other() -> None:
    """The extra answer comes in a later packet: the first answer is whole and
    right; the connection it came on is not used again (the extra bytes would
    be read as the next answer), so the next request reads its own answer."""
    extra = b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"a": 40}'
    server = RawServer(lambda head: [GOOD, 0.05, extra])
    async with server as base:
        conn = _conn()
        first = await _get(conn, base)
        await asyncio.sleep(0.15)  # the extra answer has arrived while idle
        server.answer = lambda head: GOOD.replace(b"42", b"43")
        second = await _get(conn, base)
        await conn.aclose()
    assert (first.content, second.content) == (b'{"a": 42}', b'{"a": 43}')
    assert server.connections == 2


# --- what real embedded servers send: accepted ------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "content", "headers", "reused"),
    [
        # bare LF line ends in the head
        (
            b'HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 9\n\n{"a": 42}',
            b'{"a": 42}',
            {"content-type": "application/json", "content-length": "9"},
            True,
        ),
        (  # ... with chunks (their lines in CRLF)
            b'HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n9\r\n{"a": 42}\r\n0\r\n\r\n',
            b'{"a": 42}',
            {"transfer-encoding": "chunked"},
            True,
        ),
        # an obsolete folded header line, and a header value with spaces about it
        (
            b"HTTP/1.1 200 OK\r\nX-Note: one\r\n two\r\nX-Pad:  padded  \r\n"
            b"Content-Length: 9\r\n\r\n"
            b'{"a": 42}',
            b'{"a": 42}',
            {"x-note": "one two", "x-pad": "padded", "content-length": "9"},
            True,
        ),
        (  # the folded header the Content-Length
            b'HTTP/1.1 200 OK\r\nContent-Length:\r\n 9\r\n\r\n{"a": 42}',
            b'{"a": 42}',
            {"content-length": "9"},
            True,
        ),
        # chunk extensions (quoted too), hex digits of either case, leading zeros, trailers
        (
            _chunked(
                b'5;name=value\r\n{"a":\r\n0004;q="a b"\r\n 42}\r\nA\r\n0123456789\r\n'
                b"0\r\nX-Trailer: 1\r\n\r\n"
            ),
            b'{"a": 42}0123456789',
            {"transfer-encoding": "chunked"},
            True,
        ),
        # interim answers, then the answer; only its headers are kept
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + GOOD,
            b'{"a": 42}',
            {"content-length": "9"},
            True,
        ),
        # no body, whatever the head says
        (
            b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
            b"",
            {"content-length": "9"},
            True,
        ),
        (b"HTTP/1.1 304 Not Modified\r\n\r\n", b"", {}, True),
        # a status line without a reason phrase
        (
            b'HTTP/1.1 200\r\nContent-Length: 9\r\n\r\n{"a": 42}',
            b'{"a": 42}',
            {"content-length": "9"},
            True,
        ),
        # chunked with a Content-Length: the chunks are the body; never reused
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'9\r\n{"a": 42}\r\n0\r\n\r\n',
            b'{"a": 42}',
            {"content-length": "3", "transfer-encoding": "chunked"},
            False,
        ),
        # HTTP/1.0 with chunks (RFC 9112 6.1: faulty framing, close after it)
        (
            b'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{"a": 42}\r\n0\r\n\r\n',
            b'{"a": 42}',
            {"transfer-encoding": "chunked"},
            False,
        ),
        # Connection: close among others
        (
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 9\r\n\r\n"
            b'{"a": 42}',
            b'{"a": 42}',
            {"connection": "keep-alive, close", "content-length": "9"},
            False,
        ),
    ],
)
async def test_what_embedded_servers_send_is_read(
    raw: bytes, content: bytes, headers: dict[str, str], reused: bool
) -> None:
    server = RawServer(lambda head: raw)
    async with server as base:
        conn = _conn()
        first = await _get(conn, base)
        second = await _get(conn, base)
        await conn.aclose()
    status = int(raw.rpartition(b"HTTP/1.")[2][2:5])
    assert (first.status_code, first.content, dict(first.headers)) == (status, content, headers)
    assert (second.status_code, second.content) == (status, content)
    assert server.connections == (1 if reused else 2)


@pytest.mark.parametrize("version", [b"HTTP/1.0", b"HTTP/1.1"])
async def test_an_answer_without_length_is_read_to_the_close_and_not_reused(
    version: bytes,
) -> None:
    server = RawServer(lambda head: [version + b' 200 OK\r\n\r\n{"a":', 0.05, b" 42}"])
    server.close_after = True  # the end of the body
    async with server as base:
        conn = _conn()
        first = await _get(conn, base)
        second = await _get(conn, base)
        await conn.aclose()
    assert (first.content, second.content) == (b'{"a": 42}', b'{"a": 42}')
    assert server.connections == 2


async def test_the_answer_to_head_has_no_body_whatever_its_head_says() -> None:
    server = RawServer(lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
    async with server as base:
        conn = _conn()
        request = httpx.Request(
            "HEAD", f"{base}/x", extensions={"timeout": httpx.Timeout(1.0).as_dict()}
        )
        first = await conn.handle_async_request(request)
        second = await conn.handle_async_request(request)
        server.answer = lambda head: GOOD  # a body after the head: not an answer to HEAD
        with pytest.raises(httpx.RemoteProtocolError, match=r"^bytes after the end of the answer$"):
            await conn.handle_async_request(request)
        await conn.aclose()
    assert (first.status_code, first.content, first.headers["content-length"]) == (200, b"", "9")
    assert second.content == b"" and server.heads[0].startswith(b"HEAD /x HTTP/1.1\r\n")
    assert server.connections == 1


# --- through the transport: the gateway is named, the retries are the usual ones --------------


async def test_a_refused_answer_is_a_transport_failure_naming_the_gateway() -> None:
    server = RawServer(
        lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nabcde"
    )
    async with server as base:
        conn = _conn()
        gw = GatewaySettings(host=base)
        with pytest.raises(transport.TransportFailure) as raised:
            await transport.send(conn, gw, f"{base}/production.json", backoff=0.01)
        server.answer = lambda head: GOOD
        reply = await transport.send(conn, gw, f"{base}/production.json")
        await conn.aclose()
    assert str(raised.value) == (
        f"gateway {gw.label}: /production.json: connection dropped "
        "(the answer is not valid HTTP/1.1 (Duplicate Content-Length)) (3 attempts)"
    )
    assert reply.content == b'{"a": 42}'
    assert server.connections == 4  # three refused, each on a connection of its own; then one
