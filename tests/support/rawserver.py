"""A raw HTTP server on loopback for the gateway transport's tests: it reads
request heads and answers exactly the bytes a test scripts, well formed or not."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable, Sequence

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
