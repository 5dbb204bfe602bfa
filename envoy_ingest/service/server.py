"""The health listener: ``/healthz``, ``/readyz``, ``/gateways`` and ``/metrics``.

Off unless ``[health].enabled``; listens on ``[health].listen``
(``127.0.0.1:9842`` by default). A WSGI app served by the standard library's
``wsgiref`` server (one thread per request) in a thread of its own, with
``/metrics`` answered by prometheus-client's own WSGI app: no HTTP parsing of
ours. The JSON endpoints read a :class:`~envoy_ingest.service.health.HealthState`::

    server = await start_health_server("127.0.0.1:9842", health)
    ...
    await server.close()

``/healthz`` (live) and ``/readyz`` (ready) answer 200 or 503 with a JSON body
naming the reason; ``/gateways`` answers 200 with the per-gateway state. Only
``GET`` and ``HEAD``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from collections.abc import Iterable
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import make_wsgi_app

from envoy_ingest.errors import SettingsError
from envoy_ingest.service.health import HealthReport, HealthState
from envoy_ingest.telemetry import metrics

log = logging.getLogger(__name__)

PATHS = ("/healthz", "/readyz", "/gateways", "/metrics")


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (all interfaces) -> (host, port)."""
    text = listen.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise SettingsError(f"health.listen: {listen!r} is not host:port (e.g. 127.0.0.1:9842)")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise SettingsError(f"health.listen: port {port} is not between 0 and 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise SettingsError(f"health.listen: write an IPv6 address in brackets: [{host}]:{port}")
    return host or "0.0.0.0", port  # noqa: S104 - ':9842' asks for every interface


def make_app(state: HealthState) -> WSGIApplication:
    """The WSGI application behind the listener."""
    prometheus = make_wsgi_app(metrics.REGISTRY)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if method not in ("GET", "HEAD"):
            return _json(start_response, HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use GET"})
        if path == "/metrics":
            body = b"".join(prometheus({**environ, "REQUEST_METHOD": "GET"}, start_response))
            return [b"" if method == "HEAD" else body]
        if path == "/healthz":
            return _verdict(start_response, state.report(), method)
        if path == "/readyz":
            return _verdict(start_response, state.readiness(), method)
        if path == "/gateways":
            return _json(start_response, HTTPStatus.OK, {"gateways": state.gateways()}, method)
        return _json(
            start_response, HTTPStatus.NOT_FOUND, {"error": f"try {', '.join(PATHS)}"}, method
        )

    return app


def _verdict(start_response: StartResponse, report: HealthReport, method: str) -> list[bytes]:
    status = HTTPStatus.OK if report.healthy else HTTPStatus.SERVICE_UNAVAILABLE
    return _json(start_response, status, report.body, method)


def _json(
    start_response: StartResponse, status: HTTPStatus, obj: dict[str, Any], method: str = "GET"
) -> list[bytes]:
    body = (json.dumps(obj) + "\n").encode("utf-8")
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    if status == HTTPStatus.METHOD_NOT_ALLOWED:
        headers.append(("Allow", "GET, HEAD"))
    start_response(f"{status.value} {status.phrase}", headers)
    return [b"" if method == "HEAD" else body]


class _Handler(WSGIRequestHandler):
    timeout = 5.0  # a client gets this long to send its request

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged (probes come every few seconds)."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class HealthServer:
    """A running listener; :meth:`close` stops it."""

    def __init__(self, server: WSGIServer) -> None:
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="health-server"
        )
        self._thread.daemon = True
        self._thread.start()

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    async def close(self) -> None:
        if not self._thread.is_alive():
            return
        await asyncio.to_thread(self._server.shutdown)
        self._server.server_close()
        self._thread.join()


def _server_class(host: str, port: int) -> type[_Server]:
    family = socket.AF_INET
    with contextlib.suppress(OSError):  # if the name does not resolve, binding says why
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return type("_Server", (_Server,), {"address_family": family})


async def start_health_server(listen: str, state: HealthState) -> HealthServer:
    """Listen on ``listen`` (``host:port``; port 0 picks a free one) and serve ``state``.

    Raises :class:`SettingsError` naming ``health.listen`` when that is not an
    address, or when the port cannot be bound (in use, no permission).
    """
    host, port = parse_listen(listen)
    try:
        server = await asyncio.to_thread(
            make_server,
            host,
            port,
            make_app(state),
            server_class=_server_class(host, port),
            handler_class=_Handler,
        )
    except OSError as exc:
        raise SettingsError(
            f"health.listen: cannot listen on {listen} ({exc.strerror or exc})"
        ) from None
    health = HealthServer(server)
    log.info("health and metrics on %s (%s)", health.url, ", ".join(PATHS))
    return health
