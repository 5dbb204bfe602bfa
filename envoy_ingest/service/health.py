"""The health listener: ``/healthz`` and ``/metrics`` over plain HTTP/1.1.

Off unless ``[health].enabled``; listens on ``[health].listen``
(``127.0.0.1:9842`` by default). Built on asyncio streams so it needs nothing
beyond the standard library and runs on the worker's event loop.

``/healthz`` answers 200 while the scheduler runs and every registered gateway
job had a successful poll within three of its intervals (counted from its
registration until the first success, so a fresh start is healthy), else 503.
Both carry a JSON body; the 503 one names the reason::

    {"status": "unhealthy",
     "reason": "home: no successful totals poll for 245 s (limit 180 s)",
     "reasons": [...], "scheduler_running": true, "gateways": {...}}

A sink working in a degraded mode (the spool cannot be written, points are
held in memory) keeps 200 with ``"status": "degraded"`` and
``"degraded": {"spool": "<reason>"}``: collection goes on, and a restart would
not fix a full disk.

The worker drives a :class:`HealthState`::

    health = HealthState()
    server = await start_health_server("127.0.0.1:9842", health)
    health.register_gateway("home", "totals", 60.0)
    health.scheduler_running(True)
    health.poll_succeeded("home", "totals")
    ...
    await server.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from envoy_ingest.errors import SettingsError
from envoy_ingest.service import metrics

log = logging.getLogger(__name__)

#: A gateway job is unhealthy after this many intervals without a successful poll.
STALE_INTERVALS = 3

# A client gets this long to send its request line and headers.
_READ_TIMEOUT = 5.0
_MAX_HEADER_LINES = 100


@dataclass(slots=True)
class _Job:
    interval: float
    registered: float
    last_success: float | None = None


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The verdict and the JSON body of ``/healthz``."""

    healthy: bool
    body: dict[str, Any]


class HealthState:
    """What ``/healthz`` judges by; the worker updates it, the server reads it.

    Times are taken from ``clock`` (monotonic by default, so a wall-clock jump
    never makes the worker look stale). Thread-safe, cheap to update.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._running = False
        self._jobs: dict[tuple[str, str], _Job] = {}
        self._successes: dict[tuple[str, str], float] = {}
        self._degraded: dict[str, str] = {}
        self._lock = threading.Lock()

    def set_degraded(self, component: str, reason: str) -> None:
        """``component`` (``spool``, ``file``) works in a degraded mode, because ``reason``.

        Degraded is not unhealthy: collection goes on (``/healthz`` stays 200,
        ``status`` says ``degraded``), since a restart would not fix a full disk."""
        with self._lock:
            self._degraded[component] = reason

    def clear_degraded(self, component: str) -> None:
        """``component`` works normally again."""
        with self._lock:
            self._degraded.pop(component, None)

    def scheduler_running(self, running: bool) -> None:
        """The scheduler started (``True``) or stopped (``False``)."""
        with self._lock:
            self._running = running

    def register_gateway(self, name: str, job: str, interval: float) -> None:
        """Watch ``job`` of gateway ``name``, which should succeed every ``interval`` s."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        with self._lock:
            now = self.clock()
            self._jobs[(name, job)] = _Job(interval, now, self._successes.get((name, job)))

    def unregister_gateway(self, name: str) -> None:
        """Stop watching every job of gateway ``name``."""
        with self._lock:
            for key in [k for k in self._jobs if k[0] == name]:
                del self._jobs[key]

    def poll_succeeded(self, name: str, job: str) -> None:
        """A poll of ``job`` of gateway ``name`` succeeded just now."""
        with self._lock:
            now = self.clock()
            self._successes[(name, job)] = now
            entry = self._jobs.get((name, job))
            if entry is not None:
                entry.last_success = now

    def report(self) -> HealthReport:
        """Judge now: healthy or not, and why."""
        with self._lock:
            now = self.clock()
            running = self._running
            jobs = sorted(self._jobs.items())
            degraded = dict(sorted(self._degraded.items()))
        reasons: list[str] = []
        if not running:
            reasons.append("the scheduler is not running")
        gateways: dict[str, dict[str, Any]] = {}
        for (name, job), entry in jobs:
            limit = STALE_INTERVALS * entry.interval
            since = entry.last_success if entry.last_success is not None else entry.registered
            age = now - since
            ok = age <= limit
            detail: dict[str, Any] = {
                "interval_seconds": entry.interval,
                "seconds_since_success": (
                    round(now - entry.last_success, 1) if entry.last_success is not None else None
                ),
                "healthy": ok,
            }
            gateways.setdefault(name, {})[job] = detail
            if not ok and entry.last_success is None:
                reasons.append(
                    f"{name}: no successful {job} poll in the {age:.0f} s since start "
                    f"(limit {limit:g} s)"
                )
            elif not ok:
                reasons.append(
                    f"{name}: no successful {job} poll for {age:.0f} s (limit {limit:g} s)"
                )
        status = "unhealthy" if reasons else "degraded" if degraded else "ok"
        body: dict[str, Any] = {"status": status}
        if reasons:
            body["reason"] = reasons[0] if len(reasons) == 1 else "; ".join(reasons)
            body["reasons"] = reasons
        if degraded:
            body["degraded"] = degraded
        body["scheduler_running"] = running
        body["gateways"] = gateways
        return HealthReport(not reasons, body)


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


class HealthServer:
    """A running listener; :meth:`close` stops it and its open connections."""

    def __init__(self, state: HealthState) -> None:
        self.state = state
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def _listen(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)

    @property
    def host(self) -> str:
        assert self._server is not None
        return str(self._server.sockets[0].getsockname()[0])

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._clients):
            task.cancel()
        for task in list(self._clients):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            await _handle(reader, writer, self.state)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # a client that hangs up or sends garbage gets nothing more
        except Exception:
            log.exception("health server: request failed")
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def start_health_server(listen: str, state: HealthState) -> HealthServer:
    """Listen on ``listen`` (``host:port``; port 0 picks a free one) and serve ``state``.

    Raises :class:`SettingsError` naming ``health.listen`` when that is not an
    address, or when the port cannot be bound (in use, no permission).
    """
    host, port = parse_listen(listen)
    server = HealthServer(state)
    try:
        await server._listen(host, port)
    except OSError as exc:
        raise SettingsError(
            f"health.listen: cannot listen on {listen} ({exc.strerror or exc})"
        ) from None
    log.info("health and metrics on %s (/healthz, /metrics)", server.url)
    return server


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    line = await reader.readline()
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError("not an HTTP request line")
    for _ in range(_MAX_HEADER_LINES):
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            return parts[0], parts[1]
    raise ValueError("too many header lines")


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: HealthState
) -> None:
    method, target = await asyncio.wait_for(_read_request(reader), _READ_TIMEOUT)
    path = target.split("?", 1)[0]
    content_type = "application/json"
    if method not in ("GET", "HEAD"):
        status, body = HTTPStatus.METHOD_NOT_ALLOWED, _json({"error": "use GET"})
    elif path == "/healthz":
        report = state.report()
        status = HTTPStatus.OK if report.healthy else HTTPStatus.SERVICE_UNAVAILABLE
        body = _json(report.body)
    elif path == "/metrics":
        status, body, content_type = HTTPStatus.OK, metrics.exposition(), CONTENT_TYPE_LATEST
    else:
        status, body = HTTPStatus.NOT_FOUND, _json({"error": "try /healthz or /metrics"})
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n"
    )
    if status == HTTPStatus.METHOD_NOT_ALLOWED:
        head += "Allow: GET, HEAD\r\n"
    writer.write(head.encode("latin-1") + b"\r\n" + (b"" if method == "HEAD" else body))
    await writer.drain()


def _json(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, sort_keys=False) + "\n").encode("utf-8")
