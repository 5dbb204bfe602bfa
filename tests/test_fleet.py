"""Fleet scale: the simulator's fleet mode, start phases, the in-flight bound, one
TLS context, and cycles from which nothing escapes (cancelled = failed poll)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from envoy_ingest.envoy import transport
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.firmware import parse_info
from envoy_ingest.envoy.passwords import envoy_password
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.gateway import GatewaySettings
from envoy_ingest.settings import Settings
from envoy_ingest.simulator.fleet import FleetSimulator, fixture_sets, fleet_address
from envoy_ingest.sink.file import FileSink
from envoy_ingest.telemetry import metrics
from envoy_ingest.worker.scheduler import Worker
from envoy_ingest.worker.spread import (
    first_run,
    next_run,
    slot,
    stable_fraction,
    start_offsets,
)
from tests.conftest import require_fixtures

# --- the fleet simulator -------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetSimulator]:
    sets = fixture_sets(require_fixtures())
    with FleetSimulator(sets, 2 * len(sets), delay_scale=0.0) as sim:
        yield sim


def test_fleet_addresses_are_distinct_loopback_addresses() -> None:
    assert [fleet_address(i) for i in (0, 1, 249, 250, 62499, 62500)] == [
        "127.1.1.1",
        "127.1.1.2",
        "127.1.1.250",
        "127.1.2.1",
        "127.1.250.250",
        "127.2.1.1",
    ]
    assert len({fleet_address(i) for i in range(5000)}) == 5000


def test_each_address_answers_as_its_own_gateway(fleet: FleetSimulator) -> None:
    sets = {g.set_name for g in fleet.gateways}
    assert len(sets) == len(fleet.gateways) // 2 and not any("bad_auth" in s for s in sets)
    for g in fleet.gateways:
        before = g.requests
        with httpx.Client(verify=False, timeout=10) as c:
            info = parse_info(c.get(f"{fleet.host(g)}/info").text)
            assert info.serial == g.serial  # /info rewritten per gateway
            assert info.uses_jwt == g.modern
            if g.modern:
                url = f"{fleet.host(g)}/api/v1/production/inverters"
                assert c.get(url).status_code == 401
                token = fleet.issue_token(g)
                ok = c.get(url, headers={"Authorization": f"Bearer {token}"})
                assert ok.status_code == 200, g.set_name
                # A token of another gateway of the fleet is refused.
                other = next(o for o in fleet.gateways if o.modern and o is not g)
                stranger = {"Authorization": f"Bearer {fleet.issue_token(other)}"}
                assert c.get(url, headers=stranger).status_code == 401
            else:
                auth = httpx.DigestAuth("envoy", envoy_password(g.serial))
                r = c.get(f"{fleet.host(g)}/api/v1/production/inverters", auth=auth)
                assert r.status_code in (200, 401), g.set_name  # 401 where recorded so
        assert g.requests > before


def test_only_the_right_port_and_address_answer(fleet: FleetSimulator) -> None:
    modern = next(g for g in fleet.gateways if g.modern)
    with httpx.Client(timeout=5) as c:
        with pytest.raises(httpx.TransportError):  # plain http on the https port
            c.get(f"http://{modern.address}:{fleet.https_port}/info")
        with pytest.raises(httpx.TransportError):  # an address that is no gateway
            c.get(f"http://{fleet_address(len(fleet.gateways))}:{fleet.http_port}/info")


def test_totals_requests_and_answers_are_recorded_per_gateway(fleet: FleetSimulator) -> None:
    g = next(g for g in fleet.gateways if not g.modern)
    before = len(g.totals_answers), len(g.totals_requests)
    start = time.time()
    with httpx.Client(timeout=5) as c:
        assert c.get(f"{fleet.host(g)}/api/v1/production").status_code == 200
        assert c.get(f"{fleet.host(g)}/inventory.json").status_code in (200, 401)
    modern = next(g for g in fleet.gateways if g.modern)
    with httpx.Client(verify=False, timeout=5) as c:  # no token: asked, not answered
        assert c.get(f"{fleet.host(modern)}/production.json?details=1").status_code == 401
    assert (len(g.totals_answers), len(g.totals_requests)) == (before[0] + 1, before[1] + 1)
    assert start <= g.totals_requests[-1] <= time.time()
    assert start <= modern.totals_requests[-1] <= time.time()


# --- start phases --------------------------------------------------------------------


def test_stable_fraction_is_the_same_everywhere() -> None:
    # blake2b-64 of the key, over 2**64: a constant, not Python's salted hash().
    assert stable_fraction("122238082690") == pytest.approx(0.9346800515433187, abs=1e-15)
    assert stable_fraction("192.168.1.50") == pytest.approx(0.5514141079089376, abs=1e-15)


def test_start_offsets_exact() -> None:
    f = stable_fraction("122238082690")
    k = int(stable_fraction("122238082690/devices") * 5)
    totals, devices = start_offsets("122238082690", 60.0, 300.0)
    assert totals == f * 60.0
    assert devices == (f * 60.0 + 30.0 + k * 60.0) % 300.0
    # Not a multiple: the devices phase is its own hash.
    assert start_offsets("x", 60.0, 90.0)[1] == stable_fraction("x/devices") * 90.0
    assert next_run(1000.0, 15.0, 60.0) == 1035.0
    assert next_run(1035.0, 15.0, 60.0) == 1035.0
    assert next_run(1035.5, 15.0, 60.0) == 1095.0
    k = int(stable_fraction("122238082690/start") * 2)
    assert first_run("122238082690", 1000.0, 15.0, 60.0, 2) == 1035.0 + 60.0 * k
    assert first_run("122238082690", 1000.0, 15.0, 60.0, 1) == 1035.0
    # A second-minute slot in the last tenth of the two minutes is taken in the first.
    late = next(f"g{i}" for i in range(100) if int(stable_fraction(f"g{i}/start") * 2) == 1)
    assert first_run(late, 1000.0, 15.0, 60.0, 2) == 1095.0  # 95 s: kept
    assert first_run(late, 1000.0, 30.0, 60.0, 2) == 1050.0  # 110 s would be past 108 s


def test_start_offsets_spread_evenly() -> None:
    offsets = [start_offsets(f"12223808{i:04d}", 60.0, 300.0) for i in range(6000)]
    per_second = [0] * 60
    per_minute = [0] * 5
    for totals, devices in offsets:
        per_second[int(totals)] += 1
        per_minute[int(devices // 60)] += 1
        # Devices run half a minute away from the gateway's own totals.
        assert (devices - totals) % 60 == pytest.approx(30.0)
    assert min(per_second) >= 60 and max(per_second) <= 140  # 100 each on average
    assert min(per_minute) >= 1080 and max(per_minute) <= 1320  # 1,200 each
    starts = [int(stable_fraction(f"12223808{i:04d}/start") * 2) for i in range(6000)]
    assert 2700 <= sum(starts) <= 3300  # half the fleet starts in the second minute


def test_slots_are_phases_rounded_down_to_half_seconds() -> None:
    assert slot(0.0, 60.0) == (0, 0.0)
    assert slot(0.49, 60.0) == (0, 0.0)
    assert slot(0.5, 60.0) == (1, 0.5)
    assert slot(59.99, 60.0) == (119, 59.5)
    assert slot(299.7, 300.0) == (599, 299.5)
    assert slot(0.7, 1.0) == (1, 0.5)
    assert slot(0.2, 0.25) == (0, 0.0)  # never narrower than its interval
    assert slot(1.2, 1.3) == (2, 1.3 / 3 * 2)  # 1.3 s: 3 slots of 0.4333 s
    phases = [slot(start_offsets(f"12223808{i:04d}", 60.0, 300.0)[0], 60.0)[0] for i in range(6000)]
    per_slot = [phases.count(i) for i in range(120)]
    assert min(per_slot) >= 25 and max(per_slot) <= 80  # 50 each on average


async def test_each_job_first_runs_at_its_phase_within_two_intervals(tmp_path: Path) -> None:
    """One APScheduler job per occupied slot, at the slot's phase; each gateway's
    first run at its slot's phase in its start window (two totals intervals)."""
    settings = Settings(
        gateways=[{"host": "10.0.0.5"}, {"host": "10.0.0.6", "serial": "122238082690"}],
        file={"directory": tmp_path / "data"},
        state={"directory": tmp_path / "state"},
        schedule={"jitter": 0},
    )
    worker = Worker(settings, sink=FileSink(tmp_path / "data"))
    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
    now = 1_800_000_000.0
    for poller in worker.pollers:
        worker.add_gateway_jobs(scheduler, poller, now)
    jobs = {job.id: job.next_run_time.timestamp() for job in scheduler.get_jobs()}
    firsts = worker.slots.first_runs()
    expected_jobs = {}
    for gw in settings.gateways:
        totals, devices = start_offsets(gw.identity, 60.0, 300.0)
        (t_slot, t_phase), (d_slot, d_phase) = slot(totals, 60.0), slot(devices, 300.0)
        assert 0 <= totals - t_phase < 0.5 and 0 <= devices - d_phase < 0.5
        # (APScheduler keeps microseconds)
        expected_jobs[f"slot:totals:{t_slot}"] = next_run(now, t_phase, 60.0)
        expected_jobs[f"slot:devices:{d_slot}"] = next_run(now, d_phase, 300.0)
        k = int(stable_fraction(gw.identity + "/start") * 2)  # first or second minute
        if next_run(now, t_phase, 60.0) + k * 60.0 > now + 108:
            k = 0  # not in the last tenth of the two minutes
        assert firsts[(gw.label, "totals")] == next_run(now, t_phase, 60.0) + k * 60.0
        assert firsts[(gw.label, "devices")] == next_run(now, d_phase, 300.0)
        assert now <= firsts[(gw.label, "totals")] < now + 120
        assert now <= firsts[(gw.label, "devices")] < now + 300
    assert jobs.keys() == expected_jobs.keys()  # two gateways, four slots
    for key, at in jobs.items():
        assert at == pytest.approx(expected_jobs[key], abs=1e-6)
    assert settings.gateways[1].identity == "serial:122238082690"
    first = datetime.fromtimestamp(firsts[("122238082690", "totals")])
    phase = stable_fraction("serial:122238082690") * 60
    assert first.timestamp() % 60 == pytest.approx(phase // 0.5 * 0.5, abs=1e-6)
    await worker.sink.close()


# --- one TLS context, bounded requests in flight -------------------------------------


def test_one_tls_context_for_every_gateway(tmp_path: Path) -> None:
    settings = Settings(
        gateways=[
            {"host": "10.0.0.5"},
            {"host": "10.0.0.6"},
            {"host": "10.0.0.7", "tls_fingerprint": "ab" * 32},
        ],
        state={"directory": tmp_path},
    )
    tokens = TokenManager(settings)
    clients = [EnvoyClient(gw, tokens) for gw in settings.gateways]
    contexts = {id(c._http.ssl_context) for c in clients}  # type: ignore[attr-defined]
    assert contexts == {id(transport.gateway_ssl_context(False))}
    assert transport.gateway_ssl_context(True) is not transport.gateway_ssl_context(False)


class _SlowServer:
    """Answers every request after ``delay`` seconds, counting how many wait at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.now = 0
        self.peak = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.now += 1
                self.peak = max(self.peak, self.now)
                try:
                    await asyncio.sleep(self.delay)
                finally:
                    self.now -= 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def test_requests_in_flight_never_exceed_the_bound() -> None:
    limit = transport.InFlightLimit(3)
    server = _SlowServer(0.1)
    async with server as base:
        gws = [GatewaySettings(host=base, name=f"g{i}") for i in range(10)]
        clients = [transport.build_client(gw) for gw in gws]
        deadline = asyncio.get_running_loop().time() + 10
        responses = await asyncio.gather(
            *(
                transport.send(c, gw, f"{base}/x", deadline=deadline, limit=limit)
                for c, gw in zip(clients, gws, strict=True)
            )
        )
        for c in clients:
            await c.aclose()
    assert [r.status_code for r in responses] == [200] * 10
    assert limit.peak == 3 and limit.in_flight == 0
    assert server.peak == 3


# --- nothing escapes a cycle -----------------------------------------------------------


async def test_a_timed_out_request_is_a_transport_failure() -> None:
    gw = GatewaySettings(host="http://127.0.0.1")
    async with _SlowServer(30) as base:
        client = transport.build_client(gw)
        deadline = asyncio.get_running_loop().time() + 0.3
        with pytest.raises(transport.TransportFailure) as err:
            await transport.send(client, gw, f"{base}/x", deadline=deadline)
        await client.aclose()
    assert err.value.reason == "no answer before the end of this cycle"


async def test_a_cancellation_leaking_out_of_a_library_is_a_failed_request() -> None:
    async def leak(request: httpx.Request) -> httpx.Response:
        raise asyncio.CancelledError  # nobody cancelled the task

    gw = GatewaySettings(host="http://10.0.0.5")
    client = transport.build_client(gw, httpx.MockTransport(leak))
    with pytest.raises(transport.TransportFailure) as err:
        await transport.send(client, gw, "http://10.0.0.5/info", deadline=None)
    assert err.value.reason == "request cancelled"
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_real_cancellation_still_cancels_the_request() -> None:
    gw = GatewaySettings(host="http://127.0.0.1")
    async with _SlowServer(30) as base:
        client = transport.build_client(gw)
        task = asyncio.create_task(transport.send(client, gw, f"{base}/x"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.aclose()


def _worker(tmp_path: Path, base: str) -> Worker:
    settings = Settings(
        gateways=[{"host": base, "name": "slow"}],
        file={"directory": tmp_path / "data"},
        state={"directory": tmp_path / "state"},
        schedule={"totals_interval": 60, "jitter": 0},
    )
    return Worker(settings, sink=FileSink(tmp_path / "data"))


async def test_a_cancelled_cycle_is_a_failed_poll_and_nothing_escapes(tmp_path: Path) -> None:
    server = _SlowServer(30)
    async with server as base:
        worker = _worker(tmp_path, base)
        poller = worker.pollers[0]
        before = (
            metrics.REGISTRY.get_sample_value(
                "envoy_ingest_polls_total", {"gateway": "slow", "job": "totals", "outcome": "error"}
            )
            or 0.0
        )
        task = asyncio.create_task(worker.run_job(poller, "totals"))
        while server.now == 0:  # the request is at the gateway
            await asyncio.sleep(0.01)
        task.cancel()
        result = await task  # returns: no CancelledError
        await worker.pollers[0].aclose()
    assert (result.ok, result.error) == (False, "cancelled")
    assert not task.cancelled()
    after = metrics.REGISTRY.get_sample_value(
        "envoy_ingest_polls_total", {"gateway": "slow", "job": "totals", "outcome": "error"}
    )
    assert after == before + 1


async def test_stopping_with_cycles_in_flight_leaves_no_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = _SlowServer(30)
    async with server as base:
        worker = _worker(tmp_path, base)
        # The job's phase is at most a minute away: start it now instead.
        run = asyncio.create_task(worker.run_forever())
        await asyncio.sleep(0.1)
        job = asyncio.create_task(worker.run_job(worker.pollers[0], "totals"))
        while server.now == 0:
            await asyncio.sleep(0.01)
        with caplog.at_level(logging.DEBUG):
            worker.stop()
            await asyncio.wait_for(run, 10)
        result = await job
    assert (result.ok, result.error) == (False, "cancelled")
    assert not [r for r in caplog.records if r.exc_info or "raised an exception" in r.message]


def test_simulate_fleet_command_serves_and_writes_the_gateways(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import tomllib

    fixtures = require_fixtures()
    out = tmp_path / "gateways.toml"
    exe = Path(sys.executable).with_name("envoy-ingest")
    proc = subprocess.Popen(
        [
            *(str(exe), "simulate", "--fleet", "25", "--fixture", str(fixtures)),
            *("--gateways-out", str(out), "--speed", "1000"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("simulated fleet of 25 recorded gateways (20 sets) at 127.1.1.1")
        gateways = tomllib.loads(out.read_text())["gateways"]
        assert len(gateways) == 25 and out.stat().st_mode & 0o777 == 0o600
        # The last gateway of a firmware >= 7 set: https, with a token.
        index = max(i for i, g in enumerate(gateways) if "token" in g)
        last = gateways[index]
        assert last["host"].startswith(f"https://127.1.1.{index + 1}:")
        assert last["token"].startswith("eyJ")
        r = httpx.get(f"{last['host']}/info", verify=False, timeout=5)
        assert r.status_code == 200 and f"<sn>9000000000{index:02d}</sn>" in r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_the_open_file_limit_is_raised_for_a_fleet() -> None:
    import resource

    from envoy_ingest.worker.host import raise_fd_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        raise_fd_limit(400, 1500)
        expected = 1500 if hard == resource.RLIM_INFINITY else min(1500, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (expected, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_the_worker_paces_the_garbage_collector_while_it_runs(tmp_path: Path) -> None:
    import gc

    from envoy_ingest.worker.host import GC_YOUNG_THRESHOLD

    before = gc.get_threshold()
    assert before[0] != GC_YOUNG_THRESHOLD
    seen: list[tuple[int, int, int]] = []
    server = _SlowServer(30)
    async with server as base:
        worker = _worker(tmp_path, base)
        run = asyncio.create_task(worker.run_forever())
        while worker._scheduler is None:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        seen.append(gc.get_threshold())
        worker.stop()
        await asyncio.wait_for(run, 10)
    assert seen == [(GC_YOUNG_THRESHOLD, *before[1:])]
    assert gc.get_threshold() == before


async def test_a_cycle_out_of_time_does_not_read_info_again(tmp_path: Path) -> None:
    from envoy_ingest.simulator import Simulator, SimulatorConfig
    from envoy_ingest.worker.poller import GatewayPoller

    with Simulator(SimulatorConfig(family="legacy", inverters=2)) as sim:
        settings = Settings(
            gateways=[{"host": f"http://{sim.host}"}], state={"directory": tmp_path}
        )
        gw = settings.gateways[0]
        client = EnvoyClient(gw, TokenManager(settings), backoff=0.01)
        poller = GatewayPoller(gw, client, FileSink(tmp_path / "data"))
        loop = asyncio.get_running_loop()
        assert (await poller.poll("totals", deadline=loop.time() + 10)).ok
        sim.latency = 1.0
        late = await poller.poll("totals", deadline=loop.time() + 0.3)
        assert not late.ok and "before the end of this cycle" in str(late.error)
        sim.latency = 0.0
        sim.clear_requests()
        assert (await poller.poll("totals", deadline=loop.time() + 10)).ok
        assert [p for _, p in sim.requests] == ["/api/v1/production"]  # no /info first
        # Any other failure reads /info again: the gateway may have new firmware.
        sim.fail_next("/api/v1/production", 404)
        assert not (await poller.poll("totals", deadline=loop.time() + 10)).ok
        sim.clear_requests()
        assert (await poller.poll("totals", deadline=loop.time() + 10)).ok
        assert sim.requests[0][1] == "/info"
        await poller.aclose()


async def test_a_request_cut_short_leaves_the_gateway_usable() -> None:
    """The deadline cancels the request mid-answer; the gateway's one pooled
    connection must be free again for the next cycle (it once leaked for good)."""
    gw = GatewaySettings(host="http://127.0.0.1")
    server = _SlowServer(30)
    async with server as base:
        client = transport.build_client(gw)
        loop = asyncio.get_running_loop()
        for _ in range(3):
            server.delay = 30
            with pytest.raises(transport.TransportFailure):
                await transport.send(client, gw, f"{base}/x", deadline=loop.time() + 0.2)
            server.delay = 0
            response = await transport.send(client, gw, f"{base}/x", deadline=loop.time() + 2)
            assert response.status_code == 200
        await client.aclose()
