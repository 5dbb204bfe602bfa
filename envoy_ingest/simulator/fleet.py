"""Fleet mode: thousands of recorded gateways behind one listening socket.

Two asyncio servers listen on ``0.0.0.0``: one port for plain http (the
gateways below firmware 7, as their port 80) and one for https (7 and later,
as their port 443). On Linux a connection to any loopback address
``127.a.b.c:PORT`` reaches them, so gateway ``i`` is served at
:func:`fleet_address` ``(i)`` and the server tells the gateways apart by the
local address of each accepted connection (``sock.getsockname()``). Only
loopback clients are answered. Two sockets and one thread serve them all, so a
fleet of 5,000 costs the simulator a few thousand file descriptors (one per
open connection), not 5,000 listening sockets and threads.

Gateway ``i`` serves the recorded set ``sets[i % len(sets)]`` (layout of
``../shared/fixtures/envoy``) under a serial of its own (rewritten in
``/info``), with the set's auth: digest over plain http below firmware 7, JWT
over https (one shared self-signed certificate) from 7 on, keeping connections
alive as the real firmware does (legacy ones close after each answer).

Answer times are those recorded (``duration_seconds`` in ``NAME_log.json``)
where the set has them, else as measured on real gateways:
``/production.json`` 5 to 11 s on firmware 8.x, everything else 0.25 to
0.35 s. ``delay_scale`` shrinks them for accelerated runs (0: answer at once).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

from envoy_ingest.simulator.answer import Answer
from envoy_ingest.simulator.auth import OWNER_LIFETIME, TokenAuthority
from envoy_ingest.simulator.fixtures import LOG_SUFFIX, FixtureGateway, path_to_fixture_name
from envoy_ingest.simulator.gateway import Clock, GatewayApp
from envoy_ingest.simulator.httpbase import Request
from envoy_ingest.simulator.tls import self_signed, server_context

# Idle keep-alive connections are closed after this (nginx's default).
KEEPALIVE_SECONDS = 75.0
# Paths whose answer is a totals poll (the first request of every totals cycle).
_TOTALS = ("/production.json", "/api/v1/production")


def fleet_address(index: int) -> str:
    """The loopback address of gateway ``index``: 127.1.0.1, 127.1.0.2, ... (no .0/.255)."""
    if not 0 <= index < 250 * 250 * 250:
        raise ValueError(f"gateway index {index} is out of range")
    return f"127.{index // 62500 + 1}.{index // 250 % 250 + 1}.{index % 250 + 1}"


def fixture_sets(directory: Path) -> list[Path]:
    """The recorded sets under ``directory`` (subdirectories with an ``info``), or
    ``directory`` itself when it is one; sets that record refused logins are left out."""
    if (directory / "info").is_file():
        return [directory]
    return sorted(
        d
        for d in directory.iterdir()
        if d.is_dir() and (d / "info").is_file() and "bad_auth" not in d.name
    )


class _RecordedDelays:
    """Answer times of one recorded set, by fixture name."""

    def __init__(self, fixture: FixtureGateway) -> None:
        self.recorded: dict[str, float] = {}
        for log in fixture.directory.glob(f"*{LOG_SUFFIX}"):
            try:
                seconds = json.loads(log.read_text()).get("duration_seconds")
            except ValueError:
                continue
            if isinstance(seconds, int | float) and seconds >= 0:
                self.recorded[log.name.removesuffix(LOG_SUFFIX)] = float(seconds)
        version = fixture.info.version if fixture.info else ()
        self.slow_production = version >= (8,)

    def seconds(self, path: str, rng: random.Random) -> float:
        name = path_to_fixture_name(path)
        if name in self.recorded:
            return self.recorded[name]
        if name == "production.json_details_1" and "production.json" in self.recorded:
            return self.recorded["production.json"]
        if self.slow_production and path.startswith("/production.json"):
            return rng.uniform(5.0, 11.0)
        return rng.uniform(0.25, 0.35)


class _Renamed:
    """A recorded set answering under another serial (``/info`` rewritten)."""

    def __init__(self, fixture: FixtureGateway, serial: str) -> None:
        self.fixture = fixture
        info = fixture.recorded.get("info")
        body = info.body if info is not None else b""
        if fixture.serial:
            body = body.replace(
                f"<sn>{fixture.serial}</sn>".encode(), f"<sn>{serial}</sn>".encode()
            )
        self._info = Answer(200, body, "text/xml")

    def answer(self, path: str, now: float, *, rebooting: bool = False) -> Answer:
        if path.split("?", 1)[0] == "/info" and self._info.body:
            return self._info
        return self.fixture.answer(path, now, rebooting=rebooting)


@dataclass(slots=True)
class FleetGateway:
    index: int
    address: str
    serial: str
    modern: bool
    set_name: str
    app: GatewayApp
    delays: _RecordedDelays
    authority: TokenAuthority | None
    requests: int = 0
    first_request: float | None = None  # time.monotonic()
    totals_answers: array[float] = field(default_factory=lambda: array("d"))
    # When it was asked for its totals (production.json, /api/v1/production), answered
    # or not: Unix seconds (the worker's schedule is on that clock).
    totals_requests: array[float] = field(default_factory=lambda: array("d"))
    by_path: dict[str, int] = field(default_factory=dict)  # requests by path (no query)

    @property
    def url(self) -> str:
        return f"{'https' if self.modern else 'http'}://{self.address}"


class FleetSimulator:
    """``count`` recorded gateways, served from a thread on two free ports."""

    def __init__(
        self,
        sets: Sequence[Path],
        count: int,
        *,
        delay_scale: float = 1.0,
        seed: int = 1,
    ) -> None:
        if count < 1:
            raise ValueError("a fleet has at least one gateway")
        if not sets:
            raise ValueError("no recorded sets to serve")
        self.delay_scale = delay_scale
        self._rng = random.Random(seed)
        clock = Clock(time.time(), 1.0)
        fixtures = [FixtureGateway(Path(d)) for d in sets]
        delays = [_RecordedDelays(f) for f in fixtures]
        self._cert = self_signed("127.0.0.1", "fleet")
        self._tls = server_context(self._cert)
        self.gateways: list[FleetGateway] = []
        for i in range(count):
            k = i % len(fixtures)
            fixture = fixtures[k]
            serial = f"9{i:011d}"
            modern = bool(fixture.modern)
            authority = TokenAuthority(serial) if modern else None
            app = GatewayApp(
                _Renamed(fixture, serial),
                modern=modern,
                serial=serial,
                clock=clock,
                authority=authority or TokenAuthority(serial),
                record=False,
            )
            self.gateways.append(
                FleetGateway(
                    i,
                    fleet_address(i),
                    serial,
                    modern,
                    fixture.directory.name,
                    app,
                    delays[k],
                    authority,
                )
            )
        self._by_address = {g.address: g for g in self.gateways}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[asyncio.Server] = []
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._connections: set[asyncio.StreamWriter] = set()
        self.http_port = 0
        self.https_port = 0

    # lifecycle ------------------------------------------------------------------------

    def start(self) -> FleetSimulator:
        self._thread = threading.Thread(target=self._run, name="fleet-simulator", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if len(self._servers) != 2:
            raise RuntimeError("the fleet simulator did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            for tls in (None, self._tls):
                server = loop.run_until_complete(
                    asyncio.start_server(
                        # Every 127.x.y.z: only loopback clients are answered (see _serve).
                        self._serve,
                        "0.0.0.0",  # noqa: S104
                        0,
                        ssl=tls,
                        ssl_handshake_timeout=10 if tls else None,
                        backlog=4096,
                        limit=65536,
                    )
                )
                self._servers.append(server)
            self.http_port, self.https_port = (
                srv.sockets[0].getsockname()[1] for srv in self._servers
            )
        finally:
            self._ready.set()
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return

        async def shutdown() -> None:
            for server in self._servers:
                server.close()
            for writer in list(self._connections):
                writer.transport.abort()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FleetSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # for the worker's settings ---------------------------------------------------------

    def host(self, gateway: FleetGateway) -> str:
        """What the worker's ``host`` setting says: the scheme forced, as a user would
        once ``discover`` showed it."""
        port = self.https_port if gateway.modern else self.http_port
        return f"{gateway.url}:{port}"

    def issue_token(self, gateway: FleetGateway, lifetime: float = OWNER_LIFETIME) -> str | None:
        """An owner token for a firmware >= 7 gateway (None below 7)."""
        return gateway.authority.issue(lifetime) if gateway.authority else None

    # serving -------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("socket")
        gateway = self._by_address.get(sock.getsockname()[0]) if sock is not None else None
        tls = writer.get_extra_info("sslcontext") is not None
        if gateway is None or gateway.modern != tls or not str(peer[0]).startswith("127."):
            writer.transport.abort()  # not a gateway, or the wrong port for it
            return
        self._connections.add(writer)
        try:
            while await self._one_request(gateway, reader, writer):
                pass
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except Exception:  # noqa: S110 - a client that hangs up mid-TLS is not our error
            pass
        except asyncio.CancelledError:
            return  # the simulator stops
        finally:
            self._connections.discard(writer)
            writer.transport.abort()

    async def _one_request(
        self, gateway: FleetGateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), KEEPALIVE_SECONDS)
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = [*lines[0].split(" "), "", ""][:3]
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        body = await reader.readexactly(length) if length > 0 else b""
        now = time.monotonic()
        gateway.requests += 1
        key = path.split("?", 1)[0]
        gateway.by_path[key] = gateway.by_path.get(key, 0) + 1
        totals = key in _TOTALS
        if totals:
            gateway.totals_requests.append(time.time())
        if gateway.first_request is None:
            gateway.first_request = now
        answer = gateway.app.handle(Request(method, path, headers, body))
        delay = gateway.delays.seconds(path, self._rng) * self.delay_scale
        if delay > 0:
            await asyncio.sleep(delay)
        if answer is None:
            return False
        keep = gateway.app.keep_alive
        out = [
            f"HTTP/1.1 {answer.status} {_reason(answer.status)}",
            f"Server: {gateway.app.server_header}",
            f"Content-Length: {len(answer.body)}",
        ]
        if answer.content_type is not None:
            out.append(f"Content-Type: {answer.content_type}")
        out += [f"{name}: {value}" for name, value in answer.headers]
        if not keep:
            out.append("Connection: close")
        writer.write("\r\n".join(out).encode("latin-1") + b"\r\n\r\n")
        if method != "HEAD":
            writer.write(answer.body)
        await writer.drain()
        if 200 <= answer.status < 300 and totals:
            gateway.totals_answers.append(time.monotonic())
        return keep


def gateways_toml(fleet: FleetSimulator) -> str:
    """A ``[[gateways]]`` table per gateway of the fleet (with a one-year owner token
    for firmware >= 7), to put in the worker's settings."""
    lines = []
    for g in fleet.gateways:
        lines += ["[[gateways]]", f'host = "{fleet.host(g)}"']
        token = fleet.issue_token(g)
        if token:
            lines.append(f'token = "{token}"')
    return "\n".join(lines) + "\n"


def describe_fleet(fleet: FleetSimulator) -> str:
    """One line saying what the fleet serves where (no secret)."""
    sets = sorted({g.set_name for g in fleet.gateways})
    last = fleet.gateways[-1].address
    return (
        f"simulated fleet of {len(fleet.gateways)} recorded gateways ({len(sets)} sets) at "
        f"127.1.1.1 to {last}: http (firmware < 7) on port {fleet.http_port}, https "
        f"(firmware >= 7) on port {fleet.https_port}"
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
