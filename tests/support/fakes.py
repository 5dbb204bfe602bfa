"""Fakes: one of each thing a test talks to that is not a real server here.

- ``fake_influx`` (:class:`FakeInflux`): a scripted HTTP server for answers the
  real servers here cannot give (429/503 with ``Retry-After``, a v2 401, the
  bucket query parameter). InfluxDB 2.x and 3.x cannot be installed here, so
  what only they would answer is tested against it.
- :class:`ListSink`: a sink that keeps the points it is given, for the worker's
  tests that look at points, not at delivery.
- :class:`InProcessEnphase`: the simulator's firmware-7 gateway and its fake
  Enphase cloud, served in-process through ``httpx.MockTransport`` (no socket,
  no TLS) with their tokens dated by a :class:`FakeClock`, for token logic that
  needs hours of fake time. Over real HTTP, start a
  :class:`envoy_ingest.simulator.Simulator` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from envoy_ingest.point import Point
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.simulator.answer import Answer as SimAnswer
from envoy_ingest.simulator.cloud import TOKEN_PATH
from envoy_ingest.simulator.httpbase import App, Request
from envoy_ingest.sink.base import ImmediateSink


@dataclass
class FakeRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes  # decompressed
    at: float = field(default_factory=time.monotonic)


Answer = tuple[int, dict[str, str], bytes]


class FakeInflux:
    """An HTTP server answering from a script; records every request.

    ``answers`` is consumed in order; when empty, ``default`` answers.
    """

    def __init__(self) -> None:
        self.requests: list[FakeRequest] = []
        self.answers: list[Answer | Callable[[FakeRequest], Answer]] = []
        self.default: Answer = (204, {}, b"")
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Content-Encoding") == "gzip" and body:
                    body = gzip.decompress(body)
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                req = FakeRequest(self.command, parts.path, query, dict(self.headers), body)
                status, headers, payload = fake._answer(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def _answer(self, req: FakeRequest) -> Answer:
        with self._lock:
            self.requests.append(req)
            if req.path == "/ping":
                return (204, {"X-Influxdb-Version": "fake"}, b"")
            if self.answers:
                answer = self.answers.pop(0)
                return answer(req) if callable(answer) else answer
            return self.default

    def writes(self) -> list[FakeRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/write")]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def fake_influx() -> Iterator[FakeInflux]:
    server = FakeInflux()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class ListSink(ImmediateSink):
    """A :class:`envoy_ingest.sink.base.Sink` that keeps what it is given."""

    name = "list"

    def __init__(self) -> None:
        self.points: list[Point] = []

    def submit(self, points: Sequence[Point]) -> None:
        self.points.extend(points)


# --- the Enphase gateway and cloud, in-process ------------------------------------------

T0 = 1_800_000_000.0
Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]


class FakeClock:
    """Unix seconds that move only when told (``t += ...``) or when slept on."""

    def __init__(self, t: float = T0) -> None:
        self.t = t
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


def app_handler(app: App) -> Handler:
    """An ``httpx.MockTransport`` handler serving a simulator app in-process.

    Each request runs in a thread of its own, so an app that holds a request
    (the cloud's ``timeout`` mode) times out after the client's read timeout;
    an app that drops the connection is a ``RemoteProtocolError``.
    """

    async def handle(request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        headers = {k.lower(): v for k, v in request.headers.items()}
        sim_request = Request(request.method, request.url.raw_path.decode(), headers, body)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[SimAnswer | None] = loop.create_future()

        def settle(answer: SimAnswer | None) -> None:
            if not done.done():
                done.set_result(answer)

        def serve() -> None:
            answer = app.handle(sim_request)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, answer)

        threading.Thread(target=serve, daemon=True).start()
        timeout = request.extensions.get("timeout", {}).get("read")
        try:
            answer = await asyncio.wait_for(done, timeout)
        except TimeoutError:
            raise httpx.ReadTimeout("timed out", request=request) from None
        if answer is None:
            raise httpx.RemoteProtocolError("closed without an answer", request=request)
        out = list(answer.headers)
        if answer.content_type is not None:
            out.append(("Content-Type", answer.content_type))
        return httpx.Response(answer.status, headers=out, content=answer.body)

    return handle


class InProcessEnphase:
    """The simulator's firmware-7 gateway and its paired cloud on ``clock``.

    ``sim`` is never started: its gateway app and cloud answer through
    :meth:`gateway_transport` / :meth:`cloud_transport`. Tokens the cloud issues
    are recorded in ``issued``, and the gateway accepts them.
    """

    def __init__(self, clock: FakeClock, *, lifetime: float | None = None) -> None:
        # the default serial, "122238082690"
        self.clock = clock
        self.sim = Simulator(SimulatorConfig(family="modern", inverters=2, cts="1phase"))
        self.sim.authority.clock = clock
        self.cloud = self.sim.cloud
        if lifetime is not None:
            self.cloud.token_lifetime = lifetime
        self.issued: list[str] = []
        self.on_token_request: Callable[[], None] = lambda: None
        self.gateway_handler = app_handler(self.sim.app)
        self._cloud = app_handler(self.cloud)

    async def cloud_handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == TOKEN_PATH:
            self.on_token_request()
        response = await self._cloud(request)
        if request.url.path == TOKEN_PATH and response.status_code == 200:
            self.issued.append(response.text)
        return response

    def gateway_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.gateway_handler)

    def cloud_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.cloud_handler)

    def issue(self, lifetime: float, user: str = "owner") -> str:
        """A token the gateway accepts, issued now on the clock (as pasted)."""
        return self.sim.authority.issue(lifetime, user)

    def close(self) -> None:
        """Release requests the cloud holds (``timeout`` mode)."""
        self.cloud.stop()
