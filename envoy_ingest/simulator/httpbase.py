"""A stdlib HTTP(S) server in a background thread, answering through an app.

The app turns a :class:`Request` into an :class:`Answer`, or ``None`` to close
the connection without answering (as a gateway that drops a request). TLS
handshakes happen in the connection's own thread, and ``stop()`` closes open
keep-alive connections, so stopping never waits on a client.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, Self

from envoy_ingest.simulator.answer import Answer


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # as sent, with the query
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


class App(Protocol):
    server_header: str
    keep_alive: bool

    def handle(self, request: Request) -> Answer | None: ...


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server

    def version_string(self) -> str:
        return self.server.app.server_header

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the simulator records requests itself

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        app = self.server.app
        answer = app.handle(request)
        if answer is None:  # drop: close without a word
            self.close_connection = True
            return
        self.send_response(answer.status)
        if answer.content_type is not None:
            self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers:
            self.send_header(name, value)
        if not app.keep_alive:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], app: App, tls: ssl.SSLContext | None, family: int
    ) -> None:
        self.address_family = family
        self.app = app
        self.tls = tls
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn: socket.socket = request
        conn.settimeout(_Handler.timeout)
        with self.conn_lock:
            self.connections.add(conn)
        try:
            if self.tls is not None:
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    return  # not TLS (a plain-http probe) or the client gave up
                with self.conn_lock:
                    self.connections.add(conn)
            _Handler(conn, client_address, self)
        except OSError:
            pass
        finally:
            with self.conn_lock:
                self.connections.discard(request)
                self.connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that hangs up is not an error worth a traceback

    def close_connections(self) -> None:
        with self.conn_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class Startable:
    """``with`` starts and stops: for a class whose ``start()`` returns it."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class BackgroundServer:
    """Serve ``app`` on ``host:port`` (0: any free port) until :meth:`stop`."""

    def __init__(
        self, app: App, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.app = app
        self.host = host
        self.tls = tls
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.netloc}"

    def start(self) -> None:
        if self._server is not None:
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._server = _Server((self.host, self._requested_port), self.app, self.tls, family)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
