"""A wrong or jumping host clock does no harm (injected clocks; the real one is never changed)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from envoy_ingest.clock import JumpDetector, SteadyClock
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.envoy.tokens.claims import DAY
from envoy_ingest.point import Point
from envoy_ingest.settings import Settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.telemetry import metrics
from envoy_ingest.timecheck import FLOOR, implausible
from envoy_ingest.worker.host import after_clock_jump
from envoy_ingest.worker.poller import GatewayPoller
from envoy_ingest.worker.spread import first_run, start_offsets
from tests.support.builders import expected_lines, influx_sink
from tests.support.fakes import FakeClock, InProcessEnphase
from tests.support.servers import InfluxDB1

NOON = 1718971200  # 2024-06-21 12:00 UTC
NEVER_SET = 1_000_000.0  # 1970-01-12: a board without a real-time clock, before NTP


def dropped_for_time() -> float:
    labels = {"reason": "implausible_time"}
    return metrics.REGISTRY.get_sample_value("envoy_ingest_dropped_points_total", labels) or 0.0


def test_plausible_times() -> None:
    assert implausible(NOON, NOON, None) is None
    assert implausible(NOON + 3 * DAY, NOON, NOON + 3 * DAY) is None  # host behind the gateway
    assert implausible(NOON + 3 * DAY, NOON + 3 * DAY, NOON) is None  # gateway behind the host
    assert implausible(NOON + 3 * DAY, NOON, NOON) == (
        "more than a day ahead of both the host's and the gateway's clock"
    )
    assert implausible(NOON + 3 * DAY, NOON, None) is not None
    assert implausible(FLOOR - 1, NOON, NOON) == "before 2008, earlier than any Envoy"
    assert implausible(FLOOR, NOON, NOON) is None


def test_a_jump_is_told_from_drift() -> None:
    wall, mono = FakeClock(NOON), FakeClock(100.0)
    detector = JumpDetector(wall, mono)
    wall.t += 10.5
    mono.t += 10.0  # NTP slewing: half a second off
    assert detector.jumped() == 0.0
    wall.t -= 5 * DAY
    assert detector.jumped() == -5 * DAY
    wall.t += 3 * DAY
    assert detector.jumped() == 3 * DAY
    assert detector.jumped() == 0.0


def test_the_steady_clock_ignores_the_host_clock_until_a_trusted_time() -> None:
    wall, mono = FakeClock(NOON), FakeClock(100.0)
    steady = SteadyClock(wall, mono)
    wall.t += 10 * DAY
    mono.t += 60.0
    assert steady() == NOON + 60
    steady.trust(NOON + 61.0)  # the cloud's iat is whole seconds: not a correction
    assert steady() == NOON + 60
    steady.trust(NOON + 3600.0)
    mono.t += 1.0
    assert steady() == NOON + 3601.0


async def test_a_host_clock_jump_by_days_fetches_no_token_and_expiry_still_counts(
    tmp_path: Path,
) -> None:
    world = FakeClock()  # the Enphase cloud's (true) clock
    host, mono = FakeClock(world.t), FakeClock(0.0)
    enphase = InProcessEnphase(world, lifetime=DAY)
    settings = Settings(
        gateways=[
            {
                "host": "envoy.local",
                "enlighten_username": "owner@example.com",
                "enlighten_password": "secret-password",
            }
        ],
        state={"directory": tmp_path / "state"},
        enlighten={
            "login_url": "https://c.test/login/login.json",
            "token_url": "https://c.test/tokens",
        },
    )
    tokens = TokenManager(
        settings,
        clock=SteadyClock(host, mono),
        cloud_transport=enphase.cloud_transport(),
    )
    client = EnvoyClient(settings.gateways[0], tokens, transport=enphase.gateway_transport())
    try:
        await client.connect()
        assert enphase.cloud.token_calls == 1
        for jump in (10 * DAY, -20 * DAY, 30 * DAY):  # NTP after boot, a hand-set clock, ...
            host.t += jump
            for _ in range(3):
                await tokens.refresh_due()
        assert enphase.cloud.token_calls == 1  # no refresh storm, not even one refresh
        for clock in (world, mono):
            clock.t += 0.95 * DAY  # really near the end of its day: renewed, once
        await tokens.refresh_due()
        await tokens.refresh_due()
        assert enphase.cloud.token_calls == 2
    finally:
        await client.aclose()
        await tokens.aclose()
        enphase.close()


async def test_after_the_clock_went_back_each_job_runs_at_its_phase_within_one_interval() -> None:
    """Not every job at once (a burst at fleet scale), not days later: each at its
    own phase, within one interval of the (new) now, so the fleet stays spread."""
    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
    later = NOON + 5 * DAY  # where the clock was before it was set 5 days back
    expected: dict[str, float] = {}
    for i in range(8):
        identity = f"12223808{i:04d}"
        offsets = start_offsets(identity, 60.0, 300.0)
        jobs = zip(("totals", "devices"), offsets, (60.0, 300.0), strict=True)
        for job, offset, interval in jobs:
            first = datetime.fromtimestamp(first_run(identity, later, offset, interval, 1))
            scheduler.add_job(
                print, "interval", seconds=interval, start_date=first.astimezone(),
                next_run_time=first.astimezone(), id=f"{identity}:{job}",
            )  # fmt: skip
            expected[f"{identity}:{job}"] = NOON + offset  # NOON is a multiple of 300 s
    scheduler.start(paused=True)
    try:
        after_clock_jump(scheduler, -5 * DAY, now=NOON)
        got = {job.id: job.next_run_time.timestamp() for job in scheduler.get_jobs()}
        assert got.keys() == expected.keys()
        for key, at in got.items():
            assert at == pytest.approx(expected[key], abs=1e-5)
            assert NOON <= at < NOON + (60 if key.endswith("totals") else 300)
        totals = sorted(at for key, at in got.items() if key.endswith("totals"))
        assert len({round(t) for t in totals}) == 8  # spread, not together
        assert totals[-1] - totals[0] > 30
    finally:
        scheduler.shutdown(wait=False)


async def test_a_job_rescheduled_after_the_clock_went_back_really_runs() -> None:
    ran = asyncio.Event()
    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
    phase = datetime.now().astimezone() + timedelta(seconds=0.3) - timedelta(days=5, seconds=60)
    later = datetime.now().astimezone() + timedelta(days=5)  # what a 5-day step back leaves
    scheduler.add_job(
        ran.set, "interval", seconds=60, start_date=phase, next_run_time=later, coalesce=True
    )
    scheduler.start()
    try:
        after_clock_jump(scheduler, -5 * DAY)
        (job,) = scheduler.get_jobs()
        assert job.next_run_time < datetime.now().astimezone() + timedelta(seconds=1)
        await asyncio.wait_for(ran.wait(), 2.0)
        (job,) = scheduler.get_jobs()
        assert job.next_run_time < datetime.now().astimezone() + timedelta(seconds=61)
    finally:
        scheduler.shutdown(wait=False)


async def test_a_host_clock_never_set_drops_only_points_without_a_gateway_time(
    tmp_path: Path, influxdb1: InfluxDB1, caplog: pytest.LogCaptureFixture
) -> None:
    """A legacy gateway's totals carry no report time (the host's is used); its
    inverters carry their own. With the host at 1970, only the former are dropped,
    counted, and said once; once NTP sets the clock they are written again."""
    host = [NEVER_SET]
    sink = influx_sink(tmp_path, influxdb1.influxdb_settings())
    before = dropped_for_time()
    cfg = SimulatorConfig(start_time=NOON, time_scale=0, family="legacy", inverters=4)
    with Simulator(cfg) as sim:
        settings = Settings(gateways=[{"host": sim.host}], state={"directory": tmp_path})
        gw = settings.gateways[0]
        poller = GatewayPoller(
            gw, EnvoyClient(gw, TokenManager(settings)), sink, clock=lambda: host[0]
        )
        try:
            results = [await poller.poll(job) for job in ("totals", "devices", "totals")]
            assert all(r.ok for r in results)
            assert [len(r.points) for r in results[::2]] == [0, 0]
            host[0] = NOON + 30.0  # NTP answered
            results.append(await poller.poll("totals"))
        finally:
            await poller.aclose()
    report = await sink.drain(10)
    await sink.close()
    written: dict[tuple[str, str, int], Point] = {}
    for r in results:
        for p in r.points:
            written[(p.measurement, p.tags.get("serial", ""), p.time)] = p
    assert {p.measurement for p in written.values()} == {"enphase_inverter", "enphase_system"}
    assert influxdb1.lines() == expected_lines(list(written.values()))
    assert report.delivered == sum(len(r.points) for r in results)
    assert poller.implausible_dropped == 2  # the system point of each of the two polls
    assert dropped_for_time() == before + 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("have an impossible time" in w for w in warnings) == 1
    assert sum("report times are plausible again" in w for w in warnings) == 1


async def test_a_host_clock_days_off_keeps_the_gateways_report_times(
    tmp_path: Path, influxdb1: InfluxDB1
) -> None:
    """A metered gateway dates its totals itself: with the host clock five days
    ahead (or behind), every point keeps the gateway's time and nothing is dropped."""
    before = dropped_for_time()
    cfg = SimulatorConfig(start_time=NOON, time_scale=0, family="legacy", cts="1phase")
    written: list[Point] = []
    for offset in (5 * DAY, -5 * DAY):
        sink = influx_sink(tmp_path / str(offset), influxdb1.influxdb_settings())
        with Simulator(cfg) as sim:
            settings = Settings(gateways=[{"host": sim.host}], state={"directory": tmp_path})
            gw = settings.gateways[0]
            host = FakeClock(NOON + offset)
            poller = GatewayPoller(gw, EnvoyClient(gw, TokenManager(settings)), sink, clock=host)
            try:
                results = [await poller.poll("totals"), await poller.poll("devices")]
            finally:
                await poller.aclose()
        report = await sink.drain(10)
        await sink.close()
        assert all(r.ok for r in results)
        points = [p for r in results for p in r.points]
        assert report.delivered == len(points) and report.dropped == 0
        system = [p for p in points if p.measurement == "enphase_system"]
        assert system and all(p.time == NOON for p in system)  # the gateway's readingTime
        written = points  # the second run writes the same points again
    assert influxdb1.lines() == expected_lines(written)
    assert dropped_for_time() == before
