"""Battery energy end to end: the worker's pollers over three simulated days of
two IQ battery sites whose batteries charge by day and discharge by night,
through the energy stage and the real InfluxDB sink into a real InfluxDB 1.6.7,
read back with InfluxQL and compared with the simulator's truth.

- ``ct``: a storage CT, whose lifetime energies are the truth: each day's
  charged and discharged energy is exact (to the CT's 3 decimals);
- ``integrated``: no storage CT, the battery power integrated every minute:
  each day within 2 %.

On the way: a five-hour outage one night (the batteries and the standby
generator carry the house), two failed minutes (a gap that is bridged), a
``kill -9`` (a new poller on a state file older than the last written point)
and a clean restart. The simulated clock is stepped a minute at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envoy_ingest.energy.localday import day_of, midnight, zone
from envoy_ingest.settings import Settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.simulator.faults import true_day
from envoy_ingest.sink import build_sink
from tests.support.servers import InfluxDB1
from tests.test_energy_e2e import pollers, query, settings

TZ = "Europe/Berlin"
BERLIN = zone(TZ)
DAY0 = day_of(1_749_945_600, BERLIN)  # 2025-06-15
START = midnight(DAY0, BERLIN) + 18 * 3600  # started in the evening
DAYS = 3  # days 1 and 2 are whole
STEP = 60
DEVICES_EVERY = 5  # the devices job every 5 minutes, on the minute of a 5-minute mark
END = midnight(DAY0 + DAYS, BERLIN) + 600


def at(day: int, hour: float) -> int:
    return int(midnight(DAY0 + day, BERLIN) + hour * 3600)


OUTAGE = (at(1, 1), at(1, 6))
FAILED = {at(1, 14) + 60, at(1, 14) + 120}  # two minutes without answers: bridged
KILL_9 = at(1, 20) + 1380  # 20:23, state last flushed at the new day or the event
RESTART = at(2, 12)
FIELDS = {"charged": "battery_charged", "discharged": "battery_discharged"}
SHM = Path("/dev/shm")
pytestmark = pytest.mark.timeout(600)


def simulators() -> tuple[Simulator, Simulator]:
    def simulator(serial: str, storage_ct: bool) -> Simulator:
        cfg = SimulatorConfig(
            tz=TZ,
            time_scale=0,
            start_time=START,
            serial=serial,
            inverters=8,
            batteries="iq",
            battery_count=2,
            cts="1phase",
            storage_ct=storage_ct,
            system_controller=True,
            generator=True,
        )
        return Simulator(cfg)

    sims = simulator("122238082691", True), simulator("122238082692", False)
    for sim in sims:
        assert sim.faults is not None
        sim.faults.outage(*OUTAGE)
    return sims


async def run_days(sims: tuple[Simulator, ...], cfg: Settings) -> int:
    sink = build_sink(cfg)
    active = pollers(cfg, sink, sims)
    restarts = 0
    try:
        for t in range(START, END, STEP):
            if t in (KILL_9, RESTART):
                for p in active:
                    if t == RESTART:  # clean: the state is written and read back
                        p.flush_state()
                    await p.aclose()
                active = pollers(cfg, sink, sims)
                restarts += 1
            for p, sim in zip(active, sims, strict=True):
                if t in FAILED:
                    sim.fail_next("/production.json", 500)
                    sim.fail_next("/ivp/ensemble/power", 500)
                    assert not (await p.poll("totals")).ok
                    continue
                assert (await p.poll("totals")).ok
                if (t - START) // STEP % DEVICES_EVERY == 0:
                    assert (await p.poll("devices")).ok
            for sim in sims:
                sim.advance(STEP)
        for p in active:
            p.flush_state()
    finally:
        for p in active:
            await p.aclose()
        report = await sink.drain(120)
        await sink.close()
    assert report.pending == 0
    return restarts


@contextlib.contextmanager
def influx_and_state(root: Path) -> Iterator[tuple[InfluxDB1, Path]]:
    """A real InfluxDB 1.x, and a state directory (the spool's too) in memory where
    the host has one: thousands of polls, each a spool commit with its fsync."""
    state = Path(tempfile.mkdtemp(dir=SHM if SHM.is_dir() else root))
    server = InfluxDB1(root / "db")
    server.first_start()
    try:
        yield server, state
    finally:
        server.kill()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InfluxDB1, Any]]:
    sims = simulators()
    with influx_and_state(tmp_path_factory.mktemp("battery")) as (server, state):
        try:
            for sim in sims:
                sim.start()
            assert asyncio.run(run_days(sims, settings(sims, state, server))) == 2
            yield server, sims
        finally:
            for sim in sims:
                sim.stop()


def rows(server: InfluxDB1, sim: Simulator, field: str) -> list[tuple[int, float]]:
    found = query(
        server,
        f'SELECT "{field}" FROM "enphase_system" WHERE "gateway" = \'{sim.serial}\' '
        f'AND "{field}" >= 0',
    )
    return [(t, v) for t, v in found]


def truth(sim: Simulator, t: int, kind: str) -> float:
    assert sim.model is not None
    return float(getattr(sim.model.reading(t), f"{kind}_lifetime"))


def test_the_batteries_charge_by_day_and_discharge_by_night(written: Any) -> None:
    """The simulated site is what the test says it is (the truth is not trivial)."""
    _, sims = written
    model = sims[0].model
    assert model is not None
    for day in (1, 2):
        assert all(model.reading(at(day, h)).battery_w < -500 for h in (10, 11, 12))
        assert all(model.reading(at(day, h)).battery_w > 500 for h in (19, 20, 21))
    outage = [model.reading(t) for t in range(*OUTAGE, 600)]
    assert not any(r.grid_connected for r in outage) and any(r.generator_w > 0 for r in outage)
    energy = true_day(model, DAY0 + 1)
    assert energy.battery_charged > 4000 and energy.battery_discharged > 3000


def test_the_storage_ct_path_is_exact(written: Any) -> None:
    """Each whole day's charged / discharged energy, and today's value at every
    reading, is the storage CT's: exactly the simulator's truth."""
    server, (ct, _) = written
    assert ct.model is not None
    for kind, name in FIELDS.items():
        lifetime = dict(rows(server, ct, f"{name}_lifetime_wh"))
        assert len(lifetime) == len(range(START, END, STEP * DEVICES_EVERY))
        for t, v in lifetime.items():
            assert v == pytest.approx(truth(ct, t, kind), abs=0.0011)
        for day in (1, 2):
            got = lifetime[at(day + 1, 0)] - lifetime[at(day, 0)]
            want = getattr(true_day(ct.model, DAY0 + day), name)
            assert got == pytest.approx(want, abs=0.002), (kind, day)
        today = rows(server, ct, f"{name}_today_wh")
        assert [t for t, _ in today] == [t for t in lifetime if t >= at(1, 0)]
        for t, v in today:
            since = truth(ct, t, kind) - getattr(
                ct.model.day_start(day_of(t, BERLIN)), f"{kind}_wh"
            )
            assert v == pytest.approx(since, abs=0.002), (kind, t)


def test_the_integrated_path_is_within_two_percent(written: Any) -> None:
    """Each whole day's energy from the integrated battery power: the day field's
    last value of the day, and the documented query over the lifetime counter."""
    server, (_, site) = written
    assert site.model is not None
    for kind, name in FIELDS.items():
        today = rows(server, site, f"{name}_today_wh")
        last = {day_of(t, BERLIN): (t, v) for t, v in today}
        assert sorted(last) == [DAY0 + 1, DAY0 + 2, DAY0 + 3]
        for day in (DAY0 + 1, DAY0 + 2):
            t, got = last[day]
            want = getattr(true_day(site.model, day), name)
            assert got == pytest.approx(want, rel=0.02), (kind, day, got, want)
            since = truth(site, t, kind) - getattr(site.model.day_start(day), f"{kind}_wh")
            assert got == pytest.approx(since, rel=0.02), (kind, day)
        inner = (
            f'SELECT non_negative_difference(last("{name}_lifetime_wh")) AS "wh" '
            f'FROM "enphase_system" WHERE "gateway" = \'{site.serial}\' '
            f"AND time >= {START}s GROUP BY time(1m) fill(none)"
        )
        days = query(
            server,
            f'SELECT sum("wh") FROM ({inner}) WHERE time >= {at(1, 0)}s AND time < {at(3, 0)}s '
            f"GROUP BY time(1d) fill(none) tz('{TZ}')",
        )
        assert len(days) == 2
        for t, got in days:
            want = getattr(true_day(site.model, day_of(t, BERLIN)), name)
            assert got == pytest.approx(want, rel=0.02), (kind, t)


def test_no_battery_counter_ever_decreases(written: Any) -> None:
    """Through the outage, the failed minutes, the kill -9 and the restart."""
    server, sims = written
    for sim in sims:
        for name in FIELDS.values():
            values = [v for _, v in rows(server, sim, f"{name}_lifetime_wh")]
            assert len(values) > 100
            assert [b - a for a, b in itertools.pairwise(values) if b < a] == []
