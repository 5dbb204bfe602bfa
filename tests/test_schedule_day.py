"""A day of a fleet's schedule, on APScheduler's own timing (tests/support/schedsim.py):
each gateway's totals job runs once in every minute at its phase (1,440 a day) and
its devices job once in every five (288), jitter on; missed cycles are counted as
the gateways see them (an interval at their phase without a cycle started), each
once."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from envoy_ingest.point import Kind
from envoy_ingest.settings import Settings
from envoy_ingest.sink.file import FileSink
from envoy_ingest.telemetry import metrics
from envoy_ingest.worker.poller import CycleResult, GatewayPoller
from envoy_ingest.worker.scheduler import Worker
from envoy_ingest.worker.slots import Slots
from envoy_ingest.worker.spread import interval_index, slot, start_offsets
from tests.support.schedsim import SimulatedScheduler

START = 1_800_000_007.25  # not on any phase
DAY = 86_400.0
LOGGER = "envoy_ingest.worker.scheduler"
JOBS: tuple[Kind, Kind] = ("totals", "devices")


def missed(job: str) -> float:
    return metrics.REGISTRY.get_sample_value("envoy_ingest_missed_cycles_total", {"job": job}) or 0


@dataclass
class Fleet:
    """A worker's gateways at the default schedule ([schedule] jitter = 5), in their
    slots on a paused scheduler run by :class:`SimulatedScheduler`; each cycle is
    recorded as (gateway, job, start time)."""

    worker: Worker
    sim: SimulatedScheduler
    runs: defaultdict[tuple[str, Kind], list[float]]  # start times by (gateway, job)
    first: dict[tuple[str, Kind], float]

    def interval(self, kind: Kind) -> float:
        s = self.worker.settings.schedule
        return s.totals_interval if kind == "totals" else s.devices_interval

    def phase(self, poller: GatewayPoller, kind: Kind) -> float:
        interval = self.interval(kind)
        offsets = start_offsets(poller.settings.identity, *(self.interval(k) for k in JOBS))
        return slot(offsets[JOBS.index(kind)], interval)[1]

    def starts(self, label: str, kind: Kind) -> list[float]:
        return self.runs[(label, kind)]

    def empty_intervals(self, poller: GatewayPoller, kind: Kind) -> int:
        """Intervals at the gateway's phase, between its first and last cycle, in
        which none of its cycles started (counted from the start times alone)."""
        phase, interval = self.phase(poller, kind), self.interval(kind)
        seen = {interval_index(t, phase, interval) for t in self.starts(poller.label, kind)}
        return max(seen) - min(seen) + 1 - len(seen)


@pytest.fixture
async def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Fleet]:
    count: int = request.param
    settings = Settings(
        gateways=[{"host": f"10.1.{i // 250}.{i % 250 + 1}"} for i in range(count)],
        file={"directory": tmp_path / "data"},
        state={"directory": tmp_path / "state"},
    )
    assert (settings.schedule.totals_interval, settings.schedule.devices_interval) == (60, 300)
    assert settings.schedule.jitter == 5  # the default schedule, jitter on
    worker = Worker(settings, sink=FileSink(tmp_path / "data"))
    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
    scheduler.start(paused=True)
    sim = SimulatedScheduler(scheduler, START)
    runs: defaultdict[tuple[str, Kind], list[float]] = defaultdict(list)

    async def run_job(poller: GatewayPoller, kind: Kind) -> CycleResult:
        runs[(poller.label, kind)].append(sim.now)
        return CycleResult(poller.label, kind, ok=True)

    worker.slots = Slots(run_job, set(), clock=sim.time)
    scheduler.add_listener(worker.slots.on_missed, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
    for poller in worker.pollers:
        worker.add_gateway_jobs(scheduler, poller, START)
    try:
        yield Fleet(worker, sim, runs, worker.slots.first_runs())
    finally:
        scheduler.shutdown(wait=False)
        await worker._close()


@pytest.mark.parametrize("fleet", [100], indirect=True)
async def test_a_day_of_100_gateways_runs_totals_1440_times_and_devices_288_jitter_on(
    fleet: Fleet,
) -> None:
    wake = random.Random(7)  # the scheduler wakes up to 50 ms late
    before = {kind: missed(kind) for kind in JOBS}
    await fleet.sim.run(START + DAY + 600, lambda due: wake.uniform(0, 0.05))
    for poller in fleet.worker.pollers:
        for kind, per_day in zip(JOBS, (1440, 288), strict=True):
            interval, phase = fleet.interval(kind), fleet.phase(poller, kind)
            first = fleet.first[(poller.label, kind)]
            got = fleet.starts(poller.label, kind)
            assert got[0] == pytest.approx(first, abs=5.1)  # its first run, jittered
            # A day from its first run: exactly one run per interval, none empty.
            day = [t for t in got if first <= t < first + DAY]
            assert len(day) == per_day, (poller.label, kind)
            k0 = interval_index(first, phase, interval)
            assert [interval_index(t, phase, interval) for t in day] == list(
                range(k0, k0 + per_day)
            ), (poller.label, kind)
            # The day from the worker's start: its first interval or two are its
            # start window (the totals job starts in the first or the second minute).
            since_start = sum(START <= t < START + DAY for t in got)
            assert per_day - 1 <= since_start <= per_day, (poller.label, kind)
            # Jitter shifts a run inside its interval, up to 5 s (and 50 ms late).
            assert all(0 <= (t - phase) % interval < 5.06 for t in got), (poller.label, kind)
    totals_day = [
        sum(START <= t < START + DAY for t in fleet.starts(p.label, "totals"))
        for p in fleet.worker.pollers
    ]
    assert set(totals_day) <= {1439, 1440} and len(totals_day) == 100
    assert {kind: missed(kind) for kind in JOBS} == before
    assert fleet.sim.missed_events == 0


@pytest.mark.parametrize("fleet", [40], indirect=True)
async def test_missed_cycles_count_every_interval_a_gateway_had_no_poll_each_once(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    """The event loop stalls (2.5 min, then 7 min): APScheduler coalesces what it fell
    behind on and reports a late run as missed only now and then; the metric counts
    every interval at a gateway's phase without a cycle started, exactly once."""
    wake = random.Random(11)
    stalls = [(START + 1800, START + 1950), (START + 5400, START + 5820)]

    def late(due: float) -> float:
        for begin, end in stalls:
            if begin <= due < end:
                return end - due
        return wake.uniform(0, 0.05)

    before = {kind: missed(kind) for kind in JOBS}
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await fleet.sim.run(START + 3 * 3600, late)
    for kind in JOBS:
        seen = sum(fleet.empty_intervals(p, kind) for p in fleet.worker.pollers)
        assert seen > 0
        assert missed(kind) - before[kind] == seen, kind
    # What a stall fell behind on starts once at its end, never in a burst.
    ends = {end for _, end in stalls}
    at_end = Counter((key, t) for key, times in fleet.runs.items() for t in times if t in ends)
    assert at_end and max(at_end.values()) == 1
    reasons = Counter(r.getMessage().rpartition("(")[2] for r in caplog.records)
    assert reasons.keys() == {"started too late)", "no poll started)"}
    assert fleet.sim.missed_events > 0  # APScheduler reported some: not counted twice
