"""The gateways' jobs in slots (worker/slots.py): one APScheduler job per occupied
slot starts the cycles of its gateways, each once per interval at its phase; a
gateway still busy misses exactly that cycle; a misfired slot counts a missed
cycle for each of its started gateways; reloads move gateways in and out."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from envoy_ingest.envoy.firmware import GatewayInfo
from envoy_ingest.point import Kind
from envoy_ingest.settings import Settings
from envoy_ingest.sink.file import FileSink
from envoy_ingest.telemetry import metrics
from envoy_ingest.worker.poller import CycleResult, GatewayPoller
from envoy_ingest.worker.scheduler import Worker
from envoy_ingest.worker.slots import Slots
from envoy_ingest.worker.spread import first_run, slot, start_offsets

NOW = 1_800_000_000.0  # a multiple of 1 s and 2 s
LOGGER = "envoy_ingest.worker.scheduler"


def missed(job: str) -> float:
    return metrics.REGISTRY.get_sample_value("envoy_ingest_missed_cycles_total", {"job": job}) or 0


class Harness:
    """A :class:`Slots` with totals every second (two slots) on a paused scheduler,
    a settable clock, and a stand-in cycle that records (label, kind, time) and
    can be held."""

    def __init__(self, pollers: list[GatewayPoller], scheduler: AsyncIOScheduler) -> None:
        self.t = NOW
        self.runs: list[tuple[str, Kind, float]] = []
        self.hold: dict[str, asyncio.Event] = {}
        self.running: set[asyncio.Task[object]] = set()
        self.slots = Slots(self.run_job, self.running, clock=lambda: self.t)
        self.scheduler = scheduler
        self.pollers = pollers
        self.due = {
            p.label: self.slots.add(
                scheduler, p, "totals", start_offsets(p.settings.identity, 1.0, 2.0)[0], 1.0,
                now=NOW, ramp=2, jitter=0,
            )
            for p in pollers
        }  # fmt: skip

    async def run_job(self, poller: GatewayPoller, kind: Kind) -> CycleResult:
        self.runs.append((poller.label, kind, self.t))
        if poller.label in self.hold:
            await self.hold[poller.label].wait()
        return CycleResult(poller.label, kind, ok=True)

    async def fire(self, job_id: str, at: float) -> None:
        """What APScheduler does when the slot's job is due at ``at``."""
        self.t = at
        job = self.scheduler.get_job(job_id)
        await job.func(*job.args)
        await asyncio.sleep(0)  # the cycles start

    def phase(self, poller: GatewayPoller) -> float:
        return slot(start_offsets(poller.settings.identity, 1.0, 2.0)[0], 1.0)[1]


@pytest.fixture
def pollers(tmp_path: Path) -> Iterator[list[GatewayPoller]]:
    settings = Settings(
        gateways=[{"host": f"10.0.0.{i}"} for i in range(1, 13)],
        file={"directory": tmp_path / "data"},
        state={"directory": tmp_path / "state"},
    )
    yield Worker(settings, sink=FileSink(tmp_path / "data")).pollers


@pytest.fixture
async def scheduler() -> AsyncIOScheduler:
    s = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
    s.start(paused=True)
    yield s
    s.shutdown(wait=False)


async def test_each_gateway_runs_once_per_interval_at_its_slot_from_its_first_run(
    pollers: list[GatewayPoller], scheduler: AsyncIOScheduler
) -> None:
    h = Harness(pollers, scheduler)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert jobs.keys() == {"slot:totals:0", "slot:totals:1"}  # 12 gateways, 2 slots
    for job in jobs.values():
        phase = 0.5 * int(job.id[-1])
        assert job.next_run_time.timestamp() == NOW + phase  # 1_800_000_000 % 1 == 0
    for p in pollers:
        assert h.due[p.label] == first_run(p.settings.identity, NOW, h.phase(p), 1.0, 2)
    assert {h.due[p.label] - NOW - h.phase(p) for p in pollers} == {0.0, 1.0}  # both start
    for second in range(4):
        for index in (0, 1):
            await h.fire(f"slot:totals:{index}", NOW + second + 0.5 * index)
    for p in pollers:
        got = [t for label, kind, t in h.runs if label == p.label and kind == "totals"]
        first = h.due[p.label]
        late = round(first - NOW - h.phase(p))  # 0 or 1: which second it starts in
        assert got == [first + k for k in range(4 - late)], p.label
        assert {t % 1 for t in got} == {h.phase(p)}
    assert not h.running  # every cycle ended and left the running set
    assert h.slots.first_runs() == {(p.label, "totals"): 0.0 for p in pollers}


async def test_a_gateway_still_busy_misses_exactly_that_cycle(
    pollers: list[GatewayPoller], scheduler: AsyncIOScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(pollers, scheduler)
    h.slots.all_due()  # every gateway starts at its slot's next run
    slow = pollers[0]
    key = f"slot:totals:{slot(start_offsets(slow.settings.identity, 1.0, 2.0)[0], 1.0)[0]}"
    mates = {p.label for p in pollers[1:] if h.phase(p) == h.phase(slow)}
    assert mates  # 12 gateways in 2 slots
    held = h.hold[slow.label] = asyncio.Event()
    before = missed("totals")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await h.fire(key, NOW + h.phase(slow))
        await h.fire(key, NOW + 1 + h.phase(slow))  # still held: missed
        held.set()
        await asyncio.sleep(0)
        await h.fire(key, NOW + 2 + h.phase(slow))
    assert missed("totals") == before + 1
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        f"{slow.label}:totals: cycle missed (still running)"
    ]
    at = [NOW + second + h.phase(slow) for second in range(3)]
    assert [t for label, _, t in h.runs if label == slow.label] == [at[0], at[2]]
    for label in mates:  # its slot mates were not held up: three runs each
        assert [t for other, _, t in h.runs if other == label] == at
    assert {label for label, _, _ in h.runs} == mates | {slow.label}


async def test_a_misfired_slot_counts_a_missed_cycle_for_each_started_gateway(
    pollers: list[GatewayPoller], scheduler: AsyncIOScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(pollers, scheduler)
    scheduler.add_listener(h.slots.on_missed, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
    at = NOW + 0.5  # the first run of slot 1: its second-interval gateways are not due
    members = [p for p in pollers if h.phase(p) == 0.5]
    started = sorted(p.label for p in members if h.due[p.label] <= at)
    assert 0 < len(started) < len(members)  # the check below tells them apart
    before = missed("totals")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        when = datetime.fromtimestamp(at, UTC)
        scheduler._dispatch_event(
            JobExecutionEvent(EVENT_JOB_MISSED, "slot:totals:1", "default", when)
        )
        scheduler._dispatch_event(JobExecutionEvent(EVENT_JOB_MISSED, "heartbeat", "default", when))
    assert missed("totals") == before + len(started)
    assert sorted(r.getMessage() for r in caplog.records if r.name == LOGGER) == [
        f"{label}:totals: cycle missed (started too late)" for label in started
    ]
    assert h.runs == []


async def test_gateways_move_in_and_out_of_slots_and_empty_slots_lose_their_job(
    pollers: list[GatewayPoller], scheduler: AsyncIOScheduler
) -> None:
    h = Harness(pollers[:1], scheduler)
    only = pollers[0]
    own = f"slot:totals:{slot(start_offsets(only.settings.identity, 1.0, 2.0)[0], 1.0)[0]}"
    assert [job.id for job in scheduler.get_jobs()] == [own]
    h.slots.remove(scheduler, only.label)
    assert scheduler.get_jobs() == [] and h.slots.first_runs() == {}
    h.slots.add(scheduler, only, "devices", 1.7, 2.0, now=NOW, ramp=1, jitter=0)
    h.slots.add(scheduler, only, "devices", 0.2, 2.0, now=NOW, ramp=1, jitter=0)  # moved
    assert [job.id for job in scheduler.get_jobs()] == ["slot:devices:0"]
    assert h.slots.first_runs() == {(only.label, "devices"): NOW}
    h.slots.clear(scheduler)
    assert scheduler.get_jobs() == [] and h.slots.first_runs() == {}


async def test_after_the_clock_went_back_first_runs_are_not_waited_for(
    pollers: list[GatewayPoller], scheduler: AsyncIOScheduler
) -> None:
    h = Harness(pollers, scheduler)
    late = [p for p in pollers if h.due[p.label] - NOW - h.phase(p) == 1.0]
    h.t = NOW - 86_400  # a day back: first runs stay a day and a second away
    h.slots.all_due()
    for index in (0, 1):
        await h.fire(f"slot:totals:{index}", NOW - 86_400 + 0.5 * index)
    assert sorted(label for label, _, _ in h.runs) == sorted(p.label for p in pollers)
    assert late


async def test_reload_moves_gateways_and_a_new_schedule_rebuilds_the_slots(
    tmp_path: Path,
) -> None:
    def settings(hosts: list[str], totals: float) -> Settings:
        return Settings(
            gateways=[{"host": h} for h in hosts],
            file={"directory": tmp_path / "data"},
            state={"directory": tmp_path / "state"},
            schedule={"totals_interval": totals, "devices_interval": 300, "jitter": 0},
        )

    current = [settings(["10.0.0.1", "10.0.0.2"], 60)]
    worker = Worker(current[0], sink=FileSink(tmp_path / "data"), reload=lambda: current[0])
    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
    scheduler.start(paused=True)
    worker._scheduler = scheduler
    try:
        for poller in worker.pollers:
            worker.add_gateway_jobs(scheduler, poller, time.time())

        def slots_of() -> dict[str, set[str]]:
            out: dict[str, set[str]] = {}
            for label, kind in worker.slots.first_runs():
                out.setdefault(label, set()).add(kind)
            return out

        def expected_jobs(hosts: list[str], totals: float) -> set[str]:
            ids = set()
            for host in hosts:
                t, d = start_offsets(f"host:{host}", totals, 300.0)
                ids |= {f"slot:totals:{slot(t, totals)[0]}", f"slot:devices:{slot(d, 300.0)[0]}"}
            return ids

        assert slots_of() == {"10.0.0.1": {"totals", "devices"}, "10.0.0.2": {"totals", "devices"}}
        current[0] = settings(["10.0.0.2", "10.0.0.3"], 60)
        assert await worker.reload()
        assert slots_of().keys() == {"10.0.0.2", "10.0.0.3"}
        assert {j.id for j in scheduler.get_jobs()} == expected_jobs(["10.0.0.2", "10.0.0.3"], 60)
        current[0] = settings(["10.0.0.2", "10.0.0.3"], 30)
        assert await worker.reload()
        assert {j.id for j in scheduler.get_jobs()} == expected_jobs(["10.0.0.2", "10.0.0.3"], 30)
        intervals = {j.trigger.interval_length for j in scheduler.get_jobs()}
        assert intervals == {30.0, 300.0}
    finally:
        scheduler.shutdown(wait=False)
        await worker._close()


def test_a_real_run_polls_each_gateway_once_per_interval_at_its_slot(tmp_path: Path) -> None:
    """The real scheduler, totals every second: after its first run (within two
    intervals), each gateway runs once a second at its slot's phase, none missed."""
    settings = Settings(
        gateways=[{"host": f"10.0.0.{i}", "serial": f"12223808{i:04d}"} for i in range(1, 9)],
        file={"directory": tmp_path / "data"},
        state={"directory": tmp_path / "state"},
        schedule={"totals_interval": 1, "devices_interval": 2, "jitter": 0},
        health={"enabled": False},
    )
    runs: list[tuple[str, Kind, float]] = []
    worker = Worker(settings, sink=FileSink(tmp_path / "data"))
    for poller in worker.pollers:
        poller.info = GatewayInfo(poller.label, "D8.2.4264", (8, 2, 4264))

        async def poll(
            job: Kind, deadline: float | None = None, p: GatewayPoller = poller
        ) -> CycleResult:
            runs.append((p.label, job, time.time()))
            return CycleResult(p.label, job, ok=True)

        poller.poll = poll  # type: ignore[method-assign]
    before = missed("totals"), missed("devices")

    async def go() -> float:
        start = time.time()
        asyncio.get_running_loop().call_later(4.2, worker.stop)
        await worker.run_forever()
        return start

    start = asyncio.run(go())
    end = time.time()
    assert (missed("totals"), missed("devices")) == before
    for poller in worker.pollers:
        totals, devices = start_offsets(poller.settings.identity, 1.0, 2.0)
        jobs: list[tuple[Kind, float, float, int]] = [
            ("totals", totals, 1.0, 2),
            ("devices", devices, 2.0, 1),
        ]
        for kind, offset, interval, ramp in jobs:
            phase = slot(offset, interval)[1]
            got = [t for label, k, t in runs if label == poller.label and k == kind]
            assert got[0] < start + ramp * interval + 0.3  # its first run in its window
            gaps = [b - a for a, b in itertools.pairwise(got)]
            assert all(interval - 0.3 < g < interval + 0.3 for g in gaps), (kind, gaps)
            assert end - got[-1] < interval + 0.3  # none skipped at the end either
            assert all((t - phase) % interval < 0.3 for t in got)  # at its slot, never early


async def test_an_interval_without_a_cycle_counts_once_whoever_saw_it(
    pollers: list[GatewayPoller], scheduler: AsyncIOScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    """Intervals at the gateway's phase: APScheduler reports interval 1 missed, the
    slot then runs in interval 2 (nothing more is missed), skips 3 and 4 (two missed,
    as the gateway saw it), runs in 5 and again, late, in 5 (a second cycle in an
    interval is no miss)."""
    h = Harness(pollers, scheduler)
    h.slots.all_due()
    one = pollers[0]
    phase = h.phase(one)
    key = f"slot:totals:{int(phase * 2)}"
    mates = {p.label for p in pollers if h.phase(p) == phase}
    before = missed("totals")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await h.fire(key, NOW + phase)
        when = datetime.fromtimestamp(NOW + 1 + phase, UTC)
        h.slots.on_missed(JobExecutionEvent(EVENT_JOB_MISSED, key, "default", when))
        await h.fire(key, NOW + 2 + phase)
        assert missed("totals") == before + len(mates)
        await h.fire(key, NOW + 5 + phase)
        await h.fire(key, NOW + 5.9 + phase)
    assert missed("totals") == before + 3 * len(mates)
    assert sorted(r.getMessage() for r in caplog.records if r.name == LOGGER) == sorted(
        [f"{g}:totals: cycle missed (started too late)" for g in mates]
        + [f"{g}:totals: 2 cycles missed (no poll started)" for g in mates]
    )


async def test_intervals_a_clock_jump_passed_over_are_no_missed_cycles(
    pollers: list[GatewayPoller], scheduler: AsyncIOScheduler
) -> None:
    h = Harness(pollers, scheduler)
    h.slots.all_due()
    mates = {p.label for p in pollers if h.phase(p) == 0}
    assert mates
    before = missed("totals")
    await h.fire("slot:totals:0", NOW)
    h.slots.clock_jumped()  # forward by an hour
    await h.fire("slot:totals:0", NOW + 3600)
    await h.fire("slot:totals:0", NOW + 3603)  # two seconds without a cycle after it
    assert missed("totals") == before + 2 * len(mates)
