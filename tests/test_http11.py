"""envoy/http11.py: the gateway transport against a raw socket server that
answers exactly the bytes each test scripts."""

from __future__ import annotations

import asyncio
import gzip
import ssl

import httpx
import pytest

from envoy_ingest.envoy import transport
from envoy_ingest.envoy.http11 import GatewayConnection, Reply, request_head
from envoy_ingest.settings import GatewaySettings
from tests.support.rawserver import RawServer, new_conn


async def _get(
    conn: GatewayConnection, url: str, timeout: float = 2.0, **headers: str
) -> httpx.Response:
    request = httpx.Request(
        "GET", url, headers=headers, extensions={"timeout": httpx.Timeout(timeout).as_dict()}
    )
    return await conn.handle_async_request(request)


def _ok(body: bytes, *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"Content-Length: %d" % len(body), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def test_keeps_one_connection_across_requests_and_sends_a_plain_get() -> None:
    server = RawServer(lambda head: _ok(b'{"a": 1}', b"Content-Type: application/json"))
    async with server as base:
        conn = new_conn()
        first = await _get(conn, f"{base}/production.json?details=1", Authorization="Bearer x")
        second = await _get(conn, f"{base}/info")
        await conn.aclose()
    assert first.status_code == 200 and first.json() == {"a": 1}
    assert first.reason_phrase == "OK" and first.headers["content-type"] == "application/json"
    assert second.content == b'{"a": 1}'
    assert server.connections == 1 and conn.connections_opened == 1
    port = base.rsplit(":", 1)[1]
    assert server.heads[0] == (
        b"GET /production.json?details=1 HTTP/1.1\r\n"
        b"Host: 127.0.0.1:" + port.encode() + b"\r\nAuthorization: Bearer x\r\n\r\n"
    )


async def test_chunked_answers_are_joined_and_trailers_skipped() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    server = RawServer(lambda head: raw)
    async with server as base:
        conn = new_conn()
        assert (await _get(conn, f"{base}/a")).content == b"hello, world"
        assert (await _get(conn, f"{base}/b")).content == b"hello, world"
        await conn.aclose()
    assert server.connections == 1


async def test_an_answer_without_length_ends_at_close_and_is_not_reused() -> None:
    server = RawServer(lambda head: b"HTTP/1.0 200 OK\r\n\r\n<envoy_info/>")
    server.close_after = True  # the end of the body
    async with server as base:
        conn = new_conn()
        assert (await _get(conn, f"{base}/info")).content == b"<envoy_info/>"
        server.answer = lambda head: _ok(b"again")
        assert (await _get(conn, f"{base}/info")).content == b"again"
        await conn.aclose()
    assert server.connections == 2


@pytest.mark.parametrize(
    ("raw", "reused"),
    [
        (_ok(b"x", b"Connection: close"), False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nx", True),
        (_ok(b"x"), True),
    ],
)
async def test_connection_kept_only_when_the_answer_allows(raw: bytes, reused: bool) -> None:
    server = RawServer(lambda head: raw)
    async with server as base:
        conn = new_conn()
        for _ in range(2):
            assert (await _get(conn, f"{base}/x")).content == b"x"
        await conn.aclose()
    assert server.connections == (1 if reused else 2)


async def test_interim_100_continue_is_skipped_and_204_has_no_body() -> None:
    server = RawServer(lambda head: b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    async with server as base:
        conn = new_conn()
        response = await _get(conn, f"{base}/x")
        again = await _get(conn, f"{base}/x")
        await conn.aclose()
    assert (response.status_code, response.content, again.status_code) == (204, b"", 204)
    assert server.connections == 1


async def test_a_connection_the_gateway_closed_while_idle_is_replaced() -> None:
    server = RawServer(lambda head: _ok(b"x"))
    async with server as base:
        conn = new_conn()
        await _get(conn, f"{base}/x")
        server.writers[0].close()  # the gateway's idle timeout
        await asyncio.sleep(0.05)
        assert (await _get(conn, f"{base}/x")).content == b"x"
        await conn.aclose()
    assert server.connections == 2


async def test_an_idle_connection_past_its_expiry_is_replaced() -> None:
    server = RawServer(lambda head: _ok(b"x"))
    async with server as base:
        conn = GatewayConnection(ssl.create_default_context(), keepalive_expiry=0.0)
        await _get(conn, f"{base}/x")
        await _get(conn, f"{base}/x")
        await conn.aclose()
    assert server.connections == 2


async def test_dropped_without_an_answer_is_a_remote_protocol_error() -> None:
    server = RawServer(lambda head: None)
    async with server as base:
        conn = new_conn()
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await _get(conn, f"{base}/x")
        await conn.aclose()


async def test_a_body_cut_short_is_a_remote_protocol_error_and_the_next_request_works() -> None:
    server = RawServer(lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    server.close_after = True
    async with server as base:
        conn = new_conn()
        with pytest.raises(httpx.RemoteProtocolError, match="complete response"):
            await _get(conn, f"{base}/x")
        server.close_after = False
        server.answer = lambda head: _ok(b"fine")
        assert (await _get(conn, f"{base}/x")).content == b"fine"
        await conn.aclose()


async def test_silence_is_a_read_timeout_and_closes_the_connection() -> None:
    server = RawServer(lambda head: b"")
    async with server as base:
        conn = new_conn()
        with pytest.raises(httpx.ReadTimeout):
            await _get(conn, f"{base}/x", timeout=0.2)
        server.answer = lambda head: _ok(b"late")
        assert (await _get(conn, f"{base}/x")).content == b"late"
        await conn.aclose()
    assert server.connections == 2


async def test_nothing_listening_is_a_connect_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    conn = new_conn()
    with pytest.raises(httpx.ConnectError):
        await _get(conn, f"http://127.0.0.1:{port}/x")
    assert conn.connections_opened == 0


async def test_a_second_request_waits_for_the_first_and_a_busy_connection_times_out() -> None:
    server = RawServer(lambda head: _ok(b"x"))
    async with server as base:
        conn = new_conn()
        first, second = await asyncio.gather(_get(conn, f"{base}/1"), _get(conn, f"{base}/2"))
        assert (first.content, second.content) == (b"x", b"x")
        server.answer = lambda head: b""  # the first never gets an answer
        slow = asyncio.create_task(_get(conn, f"{base}/slow", timeout=1.0))
        await asyncio.sleep(0.05)
        request = httpx.Request(
            "GET", f"{base}/3", extensions={"timeout": httpx.Timeout(5, pool=0.1).as_dict()}
        )
        with pytest.raises(httpx.PoolTimeout):
            await conn.handle_async_request(request)
        with pytest.raises(httpx.ReadTimeout):
            await slow
        await conn.aclose()
    assert server.connections == 1


async def test_an_encoded_answer_is_decoded_and_a_plain_one_kept_as_is() -> None:
    packed = gzip.compress(b'{"wattsNow": 5}')
    server = RawServer(lambda head: _ok(packed, b"Content-Encoding: gzip"))
    async with server as base:
        conn = new_conn()
        decoded = await _get(conn, f"{base}/api/v1/production")
        server.answer = lambda head: _ok(b'{"wattsNow": 6}')
        plain = await _get(conn, f"{base}/api/v1/production")
        await conn.aclose()
    assert decoded.json() == {"wattsNow": 5} and decoded.content == b'{"wattsNow": 5}'
    assert plain.content == b'{"wattsNow": 6}' and plain.text == '{"wattsNow": 6}'
    assert await plain.aread() == b'{"wattsNow": 6}'  # what the transport layer does next


# --- the lean path: prepared heads in, Reply out -------------------------------------------------


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("https://127.1.0.1/production.json?details=1", {"Authorization": "Bearer abc.def.ghi"}),
        ("https://127.1.0.1:443/ivp/meters", None),
        ("http://10.0.0.5:8080/api/v1/production", {}),
        ("http://envoy.local/info", {"X-One": "1", "X-Two": "2"}),
        ("http://envoy.local/info", {"Accept": "application/json"}),  # replaces ours, in place
        ("http://envoy.local/info", {"user-agent": "other", "Authorization": "Bearer t"}),
        ("http://[fe80::1]:8080/a%20b?c=d e", {"Authorization": "Bearer t"}),
    ],
)
def test_a_prepared_head_is_the_bytes_httpx_would_send(
    url: str, extra: dict[str, str] | None
) -> None:
    target = transport.Target(url)
    expected = request_head(target.request(extra, {}))
    assert target.head(extra) == expected
    assert target.head(extra) == request_head(httpx.Request("GET", url, headers=_own(extra)))


def _own(extra: dict[str, str] | None) -> dict[str, str]:
    headers = {"Accept": "*/*", "User-Agent": transport.USER_AGENT}
    headers.update(extra or {})
    return headers


async def test_a_plain_get_goes_out_as_prepared_and_comes_back_as_a_reply() -> None:
    answer = _ok(
        b'{"a": 1}',
        b"Content-Type: application/json",
        b"Date: Mon, 30 Nov 2026 05:14:05 GMT",
        b"Set-Cookie: a=1",
        b"set-cookie: b=2",
    )
    server = RawServer(lambda head: answer)
    async with server as base:
        conn = new_conn()
        gw = GatewaySettings(host=base)
        reply = await transport.send(
            conn, gw, f"{base}/ivp/meters?x=1", headers={"Authorization": "Bearer tok"}
        )
        again = await transport.send(conn, gw, transport.Target(f"{base}/info"))
        await conn.aclose()
    assert isinstance(reply, Reply) and isinstance(again, Reply)
    port = base.rsplit(":", 1)[1].encode()
    user_agent = transport.USER_AGENT.encode()
    assert server.heads == [
        b"GET /ivp/meters?x=1 HTTP/1.1\r\nHost: 127.0.0.1:" + port + b"\r\nAccept: */*\r\n"
        b"User-Agent: " + user_agent + b"\r\nAuthorization: Bearer tok\r\n\r\n",
        b"GET /info HTTP/1.1\r\nHost: 127.0.0.1:" + port + b"\r\nAccept: */*\r\n"
        b"User-Agent: " + user_agent + b"\r\n\r\n",
    ]
    assert server.connections == 1
    assert (reply.status_code, reply.reason_phrase, reply.content) == (200, "OK", b'{"a": 1}')
    assert reply.headers == {
        "content-length": "8",
        "content-type": "application/json",
        "date": "Mon, 30 Nov 2026 05:14:05 GMT",
        "set-cookie": "a=1, b=2",
    }
    assert reply.text == '{"a": 1}'


@pytest.mark.parametrize(
    "raw",
    [
        [(b"Content-Type", b"text/plain; charset=latin-1"), (b"X-A", b"1"), (b"x-a", b"2")],
        [(b"Location", "/caf\u00e9".encode()), (b"Server", b"openresty")],  # UTF-8
        [(b"Location", b"/caf\xe9"), (b"X-Odd", b"\xff")],  # Latin-1
        [],
    ],
)
def test_reply_reads_as_httpx_reads_the_same_answer(raw: list[tuple[bytes, bytes]]) -> None:
    body = "caf\u00e9".encode("latin-1")
    reply = Reply(404, b"Not Found", raw, body)
    response = httpx.Response(
        404, headers=raw, stream=httpx.ByteStream(body), extensions={"reason_phrase": b"Not Found"}
    )
    response.read()
    assert dict(reply.headers) == dict(response.headers.items())
    assert (reply.status_code, reply.reason_phrase) == (404, "Not Found")
    assert (reply.content, reply.text) == (response.content, response.text)
    converted = reply.to_httpx()
    assert (converted.status_code, converted.reason_phrase) == (404, "Not Found")
    assert converted.headers.raw == raw and converted.content == body


async def test_failures_on_the_httpx_interface_name_the_request() -> None:
    server = RawServer(lambda head: None)
    async with server as base:
        conn = new_conn()
        request = httpx.Request(
            "GET", f"{base}/x", extensions={"timeout": httpx.Timeout(2.0).as_dict()}
        )
        with pytest.raises(httpx.RemoteProtocolError) as err:
            await conn.handle_async_request(request)
        await conn.aclose()
    assert err.value.request is request


async def test_an_encoded_answer_on_the_lean_path_is_decoded() -> None:
    packed = gzip.compress(b'{"wattsNow": 5}')
    server = RawServer(lambda head: _ok(packed, b"Content-Encoding: gzip"))
    async with server as base:
        conn = new_conn()
        reply = await transport.send(conn, GatewaySettings(host=base), f"{base}/api/v1/production")
        await conn.aclose()
    assert reply.content == b'{"wattsNow": 5}' and reply.headers["content-encoding"] == "gzip"
