"""A grid outage end to end: the simulator cuts the grid for two and a half hours
one night (the fault plan); the worker's poller reads the IQ System
Controller's relay, the generator and the storage settings through the real
normalizers, and the energy stage writes the grid, generator and storage mode
events into a real InfluxDB 1.6.7, read back with InfluxQL. A ``kill -9`` in
the middle of the outage: the state file remembers it, so the outage still
ends with "grid back" and its whole duration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from envoy_ingest.energy.events import duration_text
from envoy_ingest.energy.localday import day_of, midnight, zone
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.settings import Settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.sink import build_sink
from envoy_ingest.worker.poller import GatewayPoller
from tests.support.servers import InfluxDB1
from tests.test_battery_e2e import influx_and_state
from tests.test_energy_e2e import query

TZ = "Europe/Berlin"
BERLIN = zone(TZ)
DAY0 = day_of(1_749_945_600, BERLIN)  # 2025-06-15
STEP = 60
DEVICES_EVERY = 5


def at(day: int, hour: float) -> int:
    return int(midnight(DAY0 + day, BERLIN) + hour * 3600)


START, END = at(0, 22), at(1, 9)
OUTAGE = (at(1, 1), at(1, 3.5))
KILL_9 = at(1, 2) + 120  # inside the outage, between two devices cycles
MODE_CHANGE = at(1, 4)  # the cloud puts the batteries in backup mode
pytestmark = pytest.mark.timeout(300)


def simulator() -> Simulator:
    cfg = SimulatorConfig(
        tz=TZ,
        time_scale=0,
        start_time=START,
        inverters=8,
        batteries="iq",
        battery_count=2,
        cts="1phase",
        system_controller=True,
        generator=True,
    )
    sim = Simulator(cfg)
    assert sim.faults is not None
    sim.faults.outage(*OUTAGE)
    sim.faults.storage_mode(MODE_CHANGE, "backup", 100.0)
    return sim


def poller(cfg: Settings, sink: Any, sim: Simulator) -> GatewayPoller:
    gw = cfg.gateways[0]
    return GatewayPoller(
        gw,
        EnvoyClient(gw, TokenManager(cfg)),
        sink,
        clock=sim.now,
        steady=sim.now,  # the hourly settings read follows the simulated hours
        state_dir=cfg.state.directory,
        energy=cfg.energy,
    )


async def run(sim: Simulator, cfg: Settings) -> None:
    sink = build_sink(cfg)
    active = poller(cfg, sink, sim)
    try:
        for t in range(START, END, STEP):
            if t == KILL_9:  # nothing flushed but what an event wrote at once
                await active.aclose()
                active = poller(cfg, sink, sim)
            assert (await active.poll("totals")).ok
            if (t - START) // STEP % DEVICES_EVERY == 0:
                assert (await active.poll("devices")).ok
            sim.advance(STEP)
        active.flush_state()
    finally:
        await active.aclose()
        report = await sink.drain(60)
        await sink.close()
    assert report.pending == 0


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InfluxDB1, Simulator]]:
    sim = simulator()
    with influx_and_state(tmp_path_factory.mktemp("grid")) as (server, state):
        try:
            sim.start()
            gateway = {"host": sim.host, "name": "home", "timezone": TZ}
            gateway["token"] = sim.issue_token(lifetime=10 * 86400)
            cfg = Settings(
                gateways=[gateway],
                state={"directory": state},
                influxdb=server.influxdb_settings(),
                energy={"state_flush_interval": 3600},
            )
            asyncio.run(run(sim, cfg))
            yield server, sim
        finally:
            sim.stop()


def events(server: InfluxDB1, kind: str) -> list[tuple[int, str, float | None]]:
    rows = query(
        server,
        f'SELECT "text", "duration_s" FROM "enphase_event" WHERE "kind" = \'{kind}\'',
    )
    return [(t, text, duration) for t, text, duration in rows]


def test_the_outage_is_two_events_with_its_duration(written: tuple[InfluxDB1, Simulator]) -> None:
    server, _ = written
    # The relay is read every 5 minutes, on the outage's start and end here.
    assert events(server, "grid") == [
        (OUTAGE[0], "grid lost", None),
        (OUTAGE[1], "grid back after 2 h 30 min", 9000.0),
    ]


def test_grid_connected_is_false_exactly_during_the_outage(
    written: tuple[InfluxDB1, Simulator],
) -> None:
    server, _ = written
    rows = query(server, 'SELECT "grid_connected" FROM "enphase_system" WHERE "site" = \'home\'')
    seen = {t: v for t, v in rows if v is not None}
    assert len(seen) >= len(range(START, END, STEP * DEVICES_EVERY))
    assert all(v is (not OUTAGE[0] <= t < OUTAGE[1]) for t, v in seen.items())


def test_the_generator_ran_during_the_outage(written: tuple[InfluxDB1, Simulator]) -> None:
    server, sim = written
    assert sim.model is not None
    polls = range(START, END, STEP * DEVICES_EVERY)
    running = [t for t in polls if sim.model.reading(t).generator_w > 0]
    started, stopped = running[0], next(t for t in polls if t > running[-1])
    assert OUTAGE[0] <= started < stopped <= OUTAGE[1]
    text = f"generator stopped after {duration_text(stopped - started)}"
    assert events(server, "generator") == [
        (started, "generator started", None),
        (stopped, text, float(stopped - started)),
    ]


def test_the_storage_mode_change_is_an_event(written: tuple[InfluxDB1, Simulator]) -> None:
    server, _ = written
    ((t, text, _),) = events(server, "storage_mode")
    assert MODE_CHANGE <= t <= MODE_CHANGE + 3600 + STEP * DEVICES_EVERY
    assert text == (
        "storage mode changed from self-consumption to backup; "
        "battery reserve changed from 15 % to 100 %"
    )
