"""Answers cut short, silences, slow drips and late extra bytes, and what real
embedded servers send (bare LF, folded headers, no length, chunk extensions,
trailers, interim answers), read by the gateway transport (envoy/http11.py
over envoy/wire.py) from a raw server on loopback that scripts them byte for
byte. None gives a wrong value or hangs past its deadline, and the next
request on the same client gets its own answer.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from envoy_ingest.envoy import transport
from envoy_ingest.settings import GatewaySettings
from tests.support.rawserver import GOOD, RESET, RawServer, chunked, get, new_conn

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
            [chunked(b'9\r\n{"a": ')],
            httpx.RemoteProtocolError,
            "Server disconnected without sending a complete response.",
        ),
        (  # every chunk but the last (the 0 chunk that says the body is whole)
            [chunked(b'9\r\n{"a": 42}\r\n')],
            httpx.RemoteProtocolError,
            "Server disconnected without sending a complete response.",
        ),
        (
            [chunked(b'9\r\n{"a": 42}\r\n0\r\nX-Trailer: 1\r\n')],
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
        conn = new_conn()
        with pytest.raises(error) as raised:
            await get(conn, base)
        server.close_after = False
        server.answer = lambda head: GOOD
        assert (await get(conn, base)).content == b'{"a": 42}'
        await conn.aclose()
    assert str(raised.value) == message
    assert server.connections == 2


@pytest.mark.parametrize(
    "script",
    [
        [],  # nothing at all
        [b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"],  # the head never ends
        [b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"a": '],  # the body stops
        [chunked(b'9\r\n{"a": 42}\r\n')],  # the last chunk never comes
        [b'HTTP/1.1 200 OK\r\n\r\n{"a": 42}'],  # no length, and no close
    ],
)
async def test_silence_is_a_read_timeout_at_its_time(script: list[bytes | float]) -> None:
    server = RawServer(lambda head: script)
    async with server as base:
        conn = new_conn()
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await get(conn, base, timeout=0.3)
        took = time.monotonic() - started
        server.answer = lambda head: GOOD
        assert (await get(conn, base)).content == b'{"a": 42}'
        await conn.aclose()
    assert 0.29 <= took < 1.5  # the read timeout
    assert server.connections == 2


async def test_a_huge_chunk_size_is_read_no_further_than_the_bytes_that_come() -> None:
    """A size in range (2 ** 62) with a few bytes after it: a read timeout when
    they stop, not an allocation of the size."""
    server = RawServer(lambda head: chunked(b"4000000000000000\r\nabc"))
    async with server as base:
        conn = new_conn()
        with pytest.raises(httpx.ReadTimeout):
            await get(conn, base, timeout=0.3)
        server.answer = lambda head: GOOD
        assert (await get(conn, base)).content == b'{"a": 42}'
        await conn.aclose()
    assert server.connections == 2


async def test_a_slow_drip_body_ends_at_the_deadline_and_the_next_request_works() -> None:
    """Slowloris: a byte every 50 ms never lets a read time out, but
    the request's deadline ends it; the next request opens a new connection."""
    drip: list[bytes | float] = [b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"]
    drip += [b"x", 0.05] * 200
    server = RawServer(lambda head: drip)
    async with server as base:
        conn = new_conn()
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


# --- extra bytes after an answer, in a later packet ---------------------------------------


async def test_bytes_arriving_after_the_answer_keep_it_but_poison_no_other() -> None:
    """The extra answer comes in a later packet: the first answer is whole and
    right; the connection it came on is not used again (the extra bytes would
    be read as the next answer), so the next request reads its own answer."""
    extra = b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"a": 40}'
    server = RawServer(lambda head: [GOOD, 0.05, extra])
    async with server as base:
        conn = new_conn()
        first = await get(conn, base)
        await asyncio.sleep(0.15)  # the extra answer has arrived while idle
        server.answer = lambda head: GOOD.replace(b"42", b"43")
        second = await get(conn, base)
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
            chunked(
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
        conn = new_conn()
        first = await get(conn, base)
        second = await get(conn, base)
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
        conn = new_conn()
        first = await get(conn, base)
        second = await get(conn, base)
        await conn.aclose()
    assert (first.content, second.content) == (b'{"a": 42}', b'{"a": 42}')
    assert server.connections == 2


async def test_the_answer_to_head_has_no_body_whatever_its_head_says() -> None:
    server = RawServer(lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
    async with server as base:
        conn = new_conn()
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
