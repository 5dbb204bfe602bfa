"""Answers the gateway transport (envoy/http11.py over envoy/wire.py) refuses:
ambiguous framing, garbled heads, heads and bodies beyond their bounds, bytes
after the end of an answer. Each is scripted byte for byte by a raw server on
loopback; each test checks the exact error, that it came at once (not at the
read timeout), and that the next request on the same client gets the next
answer right, on a new connection (the refused one is never reused).
"""

from __future__ import annotations

import httpx
import pytest

from envoy_ingest.envoy import transport, wire
from envoy_ingest.envoy.wire import MAX_BODY, MAX_HEAD
from envoy_ingest.settings import GatewaySettings
from tests.support.rawserver import (
    GOOD,
    RawServer,
    chunked,
    invalid,
    new_conn,
    refused_then_good,
)

# --- ambiguous framing: refused, whatever follows ---------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # two Content-Length values: the hand parser took the first (a 2-byte body)
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nabcde",
            invalid("Duplicate Content-Length"),
        ),
        # equal ones too (RFC 9110 8.6 allows refusing them)
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nabcde",
            invalid("Duplicate Content-Length"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 5\r\n\r\nabcde",
            invalid("Invalid character in Content-Length"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            invalid("Invalid character in Content-Length"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nabcde",
            invalid("Invalid character in Content-Length"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\nabcde",
            invalid("Invalid character in Content-Length"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5.0\r\n\r\nabcde",
            invalid("Invalid character in Content-Length"),
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nabcde", invalid("Empty Content-Length")),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nabcde",
            invalid("Content-Length overflow"),
        ),
        # the hand parser's int(x, 16) took all of these as sizes
        (chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), invalid("Invalid character in chunk size")),
        (chunked(b"+5\r\nhello\r\n0\r\n\r\n"), invalid("Invalid character in chunk size")),
        (
            chunked(b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n"),
            invalid("Invalid character in chunk size"),
        ),
        (chunked(b"-3\r\nabc\r\n0\r\n\r\n"), invalid("Invalid character in chunk size")),
        (chunked(b" 5\r\nhello\r\n0\r\n\r\n"), invalid("Invalid character in chunk size")),
        (chunked(b"5 \r\nhello\r\n0\r\n\r\n"), invalid("Invalid character in chunk size")),
        (chunked(b"\r\nhello\r\n0\r\n\r\n"), invalid("Invalid character in chunk size")),
        (chunked(b"zz\r\n"), invalid("Invalid character in chunk size")),
        (chunked(b"1" + b"0" * 16 + b"\r\n"), invalid("Chunk size overflow")),  # 2 ** 64
        # a chunk longer than its size: the size was wrong
        (chunked(b"5\r\nhello, world\r\n0\r\n\r\n"), invalid("Expected LF after chunk data")),
        (
            chunked(b"5;\x01\r\nhello\r\n0\r\n\r\n"),
            invalid("Invalid character in chunk extensions name"),
        ),
        (chunked(b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n"), invalid("Invalid header token")),
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
    await refused_then_good(raw, httpx.RemoteProtocolError, message)


# --- status lines, header lines, heads ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"SSH-2.0-OpenSSH_8.9\r\n\r\n", invalid("Expected HTTP/, RTSP/ or ICE/")),
        (
            b"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            invalid("Expected HTTP/, RTSP/ or ICE/"),
        ),
        (b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", invalid("Invalid status code")),
        (b"HTTP/1.1 OK 200\r\nContent-Length: 0\r\n\r\n", invalid("Invalid status code")),
        (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", invalid("Invalid response status")),
        (b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n", invalid("Invalid status code")),
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
        (b"HTTP/1.x 200 OK\r\nContent-Length: 0\r\n\r\n", invalid("Invalid minor version")),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", invalid("Invalid header token")),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
            "a space before the colon of header b'Content-Length '",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding\t: chunked\r\nContent-Length: 3\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            invalid("Invalid header token"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding  : chunked\r\nContent-Length: 3\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            "a space before the colon of header b'Transfer-Encoding  '",
        ),
        (
            b"HTTP/1.1 200 OK\r\n: empty name\r\nContent-Length: 0\r\n\r\n",
            invalid("Invalid header token"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n",
            invalid("Missing expected LF after header value"),
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
    await refused_then_good(raw, httpx.RemoteProtocolError, message)


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
    await refused_then_good(raw, httpx.RemoteProtocolError, "the answer's head is too large")


@pytest.mark.parametrize(
    "raw",
    [
        chunked(b"258\r\n" + b"x" * 600 + b"\r\n" + b"258\r\n" + b"x" * 600 + b"\r\n"),
        b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 1500,  # no length: until the close that never comes
    ],
)
async def test_a_body_growing_beyond_max_body_is_refused_at_once(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wire, "MAX_BODY", 1000)
    await refused_then_good(raw, httpx.RemoteProtocolError, "the answer is too large")


# --- extra bytes: an answer nobody asked for must not become the next one's -------------------


async def test_bytes_after_the_answer_in_the_same_read_refuse_it() -> None:
    poisoned = GOOD.replace(b"42", b"41") + b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"a": 40}'
    await refused_then_good(
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
    await refused_then_good(raw, httpx.RemoteProtocolError, "bytes after the end of the answer")


# --- through the transport: the gateway is named, the retries are the usual ones --------------


async def test_a_refused_answer_is_a_transport_failure_naming_the_gateway() -> None:
    server = RawServer(
        lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nabcde"
    )
    async with server as base:
        conn = new_conn()
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
