"""A raw HTTP server on loopback for the gateway transport's tests: it reads
request heads and answers exactly the bytes a test scripts, well formed or not;
and the requests those tests send it."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time
from collections.abc import Callable, Sequence

import httpx
import pytest

from envoy_ingest.envoy.http11 import GatewayConnection, Reply
from envoy_ingest.origin import Origin

# An answer: bytes written at once; a sequence of bytes and pauses (seconds),
# written piece by piece; None: close without answering.
Script = bytes | Sequence[bytes | float] | None
Answer = Callable[[bytes], Script]  # request head -> what to send

#: Ends a scripted sequence by resetting the connection (TCP RST) instead of closing it.
RESET = -1.0


class RawServer:
    """Reads request heads; writes what ``answer`` returns; counts connections."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.close_after = False  # close the connection after each answer
        self.connections = 0
        self.heads: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                script = self.answer(head)
                if script is None:
                    break
                if not await _send(writer, script) or self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def _send(writer: asyncio.StreamWriter, script: bytes | Sequence[bytes | float]) -> bool:
    """Write ``script``; False if the connection is to be closed after it (a reset)."""
    if isinstance(script, bytes):
        writer.write(script)
        await writer.drain()
        return True
    for piece in script:
        if piece == RESET:
            sock: socket.socket = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if isinstance(piece, bytes):
            writer.write(piece)
            await writer.drain()
        else:
            await asyncio.sleep(piece)
    return True


#: A well-formed answer, and the one a test expects after a refused one.
GOOD = b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"a": 42}'


def new_conn() -> GatewayConnection:
    """A gateway's connection, as the client makes one."""
    return GatewayConnection(ssl.create_default_context(), label="g", keepalive_expiry=75.0)


async def get(conn: GatewayConnection, base: str, timeout: float = 2.0) -> Reply:
    """GET /x from the server at ``base``, a prepared head as transport.py sends one."""
    host, port = base.removeprefix("http://").split(":")
    head = b"GET /x HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode()
    origin = Origin("http", host, int(port))
    return await conn.request(origin, head, httpx.Timeout(timeout).as_dict())


async def refused_then_good(script: Script, error: type[Exception], message: str) -> None:
    """``script`` is refused with ``error`` saying exactly ``message``, as it
    comes (well before the read timeout); the next request on the same
    connection object is answered right, on a new connection."""
    server = RawServer(lambda head: script)
    async with server as base:
        conn = new_conn()
        started = time.monotonic()
        with pytest.raises(error) as raised:
            await get(conn, base, timeout=5.0)
        took = time.monotonic() - started
        server.answer = lambda head: GOOD
        reply = await get(conn, base)
        again = await get(conn, base)
        await conn.aclose()
    assert str(raised.value) == message
    assert (reply.status_code, reply.content, again.content) == (200, b'{"a": 42}', b'{"a": 42}')
    assert (server.connections, conn.connections_opened) == (2, 2)  # then kept for the third
    assert took < 2.5  # not the read timeout


def invalid(reason: str) -> str:
    """The error for an answer llhttp refuses, with its reason."""
    return f"the answer is not valid HTTP/1.1 ({reason})"


def chunked(*lines: bytes) -> bytes:
    """A chunked answer's head, then ``lines`` as they are."""
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"".join(lines)
