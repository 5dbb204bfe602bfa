"""Energy end to end: the worker's pollers over three simulated days of two
gateways with every counter fault, through the energy stage and the real
InfluxDB sink (spool, v1 writer) into a real InfluxDB 1.6.7, read back with
InfluxQL.

- modern 8.x, 1-phase CTs, device data, ``whToday`` = ``whLifetime`` (8.3.5433):
  reboot zeros, a one-off dip of 1.2 MWh, a microinverter wrap at 2^32 J;
- legacy 5.x without CTs (``/api/v1/production``, the inverter total): reboot
  zeros, a lifetime that reads 0 for ten minutes, a wrap of the inverter total,
  ``whToday`` reset 20 minutes late.

On the way, two hours of failing answers (HTTP 500), a clean restart (state flushed and
reloaded) and a ``kill -9`` (a new poller on a state file older than the last
written point). The simulated clock is stepped, so three days take seconds.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envoy_ingest.energy.localday import day_of, midnight, zone
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.settings import Settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.simulator.faults import WRAP_WH, true_day
from envoy_ingest.sink import build_sink
from envoy_ingest.worker.poller import GatewayPoller
from tests.support.servers import InfluxDB1

TZ = "Europe/Berlin"
BERLIN = zone(TZ)
DAY0 = day_of(1_749_945_600, BERLIN)  # 2025-06-15
START = midnight(DAY0, BERLIN) + 18 * 3600  # started in the evening
DAYS = 3
STEP = 900
GAP = range(midnight(DAY0 + 1, BERLIN) + 18 * 3600, midnight(DAY0 + 1, BERLIN) + 20 * 3600)
RESTART = midnight(DAY0 + 1, BERLIN) + 6 * 3600
KILL_9 = midnight(DAY0 + 2, BERLIN) + 3 * 3600 + 900


def at(day: int, hour: float) -> float:
    return midnight(DAY0 + day, BERLIN) + hour * 3600


def simulators() -> tuple[Simulator, Simulator]:
    def simulator(serial: str, **cfg: Any) -> Simulator:
        return Simulator(
            SimulatorConfig(tz=TZ, time_scale=0, start_time=START, serial=serial, **cfg)
        )

    modern = simulator("122238082690", family="modern", cts="1phase", inverters=8)
    legacy = simulator("121900777001", family="legacy", inverters=6)
    for sim, hour in ((modern, 10), (legacy, 13)):
        f = sim.faults
        assert f is not None
        f.zeros(at(1, hour), at(1, hour + 0.5))  # reboot: two polls of zeros
        f.dip(at(1, hour + 2), at(1, hour + 2.1), None if sim is legacy else 1_200_000.0)
        f.wrap(0, at(2, hour + 1))
    assert modern.faults is not None and legacy.faults is not None
    modern.faults.today_is_lifetime = True
    legacy.faults.late_reset = 1200
    return modern, legacy


def settings(sims: tuple[Simulator, ...], state: Path, influx: InfluxDB1) -> Settings:
    gateways: list[dict[str, Any]] = []
    for sim in sims:
        gw: dict[str, Any] = {"host": sim.host, "name": sim.serial, "timezone": TZ}
        if sim.family == "modern":
            gw["token"] = sim.issue_token(lifetime=10 * 86400)
        gateways.append(gw)
    return Settings(
        gateways=gateways,
        state={"directory": state},
        influxdb=influx.influxdb_settings(),
        energy={"state_flush_interval": 3600},
    )


def pollers(cfg: Settings, sink: Any, sims: tuple[Simulator, ...]) -> list[GatewayPoller]:
    tokens = TokenManager(cfg)
    return [
        GatewayPoller(
            gw,
            EnvoyClient(gw, tokens),
            sink,
            clock=sim.now,
            state_dir=cfg.state.directory,
            energy=cfg.energy,
        )
        for gw, sim in zip(cfg.gateways, sims, strict=True)
    ]


async def run_days(sims: tuple[Simulator, ...], cfg: Settings) -> None:
    sink = build_sink(cfg)
    active = pollers(cfg, sink, sims)
    t = START
    restarts = 0
    try:
        while t < at(DAYS, 0):
            if t == RESTART:  # a clean restart: the state is written and read back
                for p in active:
                    p.flush_state()
                    await p.aclose()
                active = pollers(cfg, sink, sims)
                restarts += 1
            if t == KILL_9:  # kill -9: nothing flushed since the last day began
                for p in active:
                    await p.aclose()
                active = pollers(cfg, sink, sims)
                restarts += 1
            for p, sim in zip(active, sims, strict=True):
                if int(t) in GAP:  # the gateway's answers fail: nothing written
                    totals = "/production.json" if sim.family == "modern" else "/api/v1/production"
                    sim.fail_next(totals, 500)
                    assert not (await p.poll("totals")).ok
                    continue
                assert (await p.poll("totals")).ok
                assert (await p.poll("devices")).ok
            for sim in sims:
                sim.advance(STEP)
            t += STEP
        for p in active:
            p.flush_state()
    finally:
        for p in active:
            await p.aclose()
        report = await sink.drain(60)
        await sink.close()
    assert report.pending == 0
    assert restarts == 2


@pytest.fixture(scope="module")
def written(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[InfluxDB1, tuple[Simulator, ...]]]:
    root = tmp_path_factory.mktemp("energy")
    server = InfluxDB1(root / "db")
    server.first_start()
    sims = simulators()
    try:
        for sim in sims:
            sim.start()
        asyncio.run(run_days(sims, settings(sims, root / "state", server)))
        yield server, sims
    finally:
        for sim in sims:
            sim.stop()
        server.kill()


def query(server: InfluxDB1, q: str) -> list[list[Any]]:
    body = server.query(q, server.database, epoch="s")
    series = body["results"][0].get("series", [])
    return [row for s in series for row in s["values"]]


def test_no_counter_series_ever_decreases(written: tuple[InfluxDB1, tuple[Simulator, ...]]) -> None:
    server, _ = written
    counters = [
        ("enphase_system", "production_lifetime_wh"),
        ("enphase_system", "consumption_lifetime_wh"),
        ("enphase_system", "grid_import_lifetime_wh"),
        ("enphase_system", "grid_export_lifetime_wh"),
        ("enphase_inverter", "lifetime_wh"),
        ("enphase_meter", "lifetime_wh"),  # net lines aside: import minus export
        ("enphase_meter", "delivered_lifetime_wh"),
        ("enphase_meter", "received_lifetime_wh"),
    ]
    checked = 0
    for measurement, field in counters:
        body = server.query(
            f'SELECT "{field}" FROM "{measurement}" GROUP BY *',
            server.database,
            epoch="s",
        )
        for series in body["results"][0].get("series", []):
            if field == "lifetime_wh" and series["tags"].get("flow") == "net":
                continue
            values = [v for _, v in series["values"] if v is not None]
            drops = [b - a for a, b in itertools.pairwise(values) if b < a]
            assert drops == [], (measurement, field, series.get("tags"))
            checked += 1
    # modern: production, consumption, grid import and export, 8 inverters, 2 meter
    # flows, delivered and received of 2 CTs; legacy: production
    assert checked == 4 + 8 + 2 + 4 + 1


def inverter_total(sim: Simulator, t: int) -> float:
    """The true inverter total as of the latest inverter report at ``t``."""
    assert sim.model is not None
    latest = max(r.report_time for r in sim.model.inverters(t))
    return sim.model.inverter_lifetime(latest)


def test_no_phantom_energy_and_none_lost(written: tuple[InfluxDB1, tuple[Simulator, ...]]) -> None:
    """Over the whole run, through reboot zeros, a dip, failing answers, a wrap,
    a restart and a kill -9, each written counter grew by exactly what the site
    produced or consumed (glitches dropped, the wrap compensated exactly)."""
    server, (modern, legacy) = written
    assert modern.model is not None and legacy.model is not None
    for sim, field in ((modern, "production"), (modern, "consumption"), (legacy, "production")):
        rows = query(
            server,
            f'SELECT "{field}_lifetime_wh" FROM "enphase_system" '
            f"WHERE \"gateway\" = '{sim.serial}'",
        )
        (t0, first), (t1, last) = rows[0], rows[-1]
        if sim is legacy:  # the inverter total, as of the latest inverter report
            true = inverter_total(legacy, t1) - inverter_total(legacy, t0)
            tolerance = 1.0  # the gateway reports whole Wh
        else:
            a, b = modern.model.reading(t0), modern.model.reading(t1)
            true = getattr(b, f"{field[:4]}_lifetime") - getattr(a, f"{field[:4]}_lifetime")
            tolerance = 0.01
        assert last - first == pytest.approx(true, abs=tolerance), (sim.family, field)


def since_midnight(sim: Simulator, t: int, field: str) -> float:
    """What the site really did from local midnight to ``t`` (Wh)."""
    assert sim.model is not None
    r, begin = sim.model.reading(t), sim.model.day_start(day_of(t, BERLIN))
    return {
        "production": r.prod_lifetime - begin.prod_wh,
        "consumption": r.cons_lifetime - begin.cons_wh,
        "grid_import": r.import_lifetime - begin.import_wh,
        "grid_export": r.export_lifetime - begin.export_wh,
    }[field]


def test_each_day_s_energy_is_the_true_energy(
    written: tuple[InfluxDB1, tuple[Simulator, ...]],
) -> None:
    """The documented query (docs/queries.md: the sum per local day of the
    counter's non-negative differences) against what the site really did."""
    server, sims = written
    for sim in sims:
        assert sim.model is not None
        fields = ["production"]
        if sim.family == "modern":
            fields += ["consumption", "grid_import", "grid_export"]
        for field in fields:
            inner = (
                f'SELECT non_negative_difference(last("{field}_lifetime_wh")) AS "wh" '
                f'FROM "enphase_system" WHERE "gateway" = \'{sim.serial}\' '
                f"AND time >= {int(START)}s GROUP BY time(5m) fill(none)"
            )
            rows = query(
                server,
                f'SELECT sum("wh") FROM ({inner}) WHERE time >= {int(START)}s '
                f"GROUP BY time(1d) fill(none) tz('{TZ}')",
            )
            whole = [(t, got) for t, got in rows if t >= at(1, 0)]
            assert len(rows) == DAYS and len(whole) == DAYS - 1, rows
            for t, got in whole:
                want = getattr(true_day(sim.model, day_of(t, BERLIN)), field)
                assert got == pytest.approx(want, rel=0.005), (sim.family, field, t)
            # the day field's last value of each whole day: the energy since midnight
            rows = query(
                server,
                f'SELECT "{field}_today_wh" FROM "enphase_system" '
                f"WHERE \"gateway\" = '{sim.serial}' AND time >= {int(at(1, 0))}s",
            )
            last = {day_of(t, BERLIN): (t, v) for t, v in rows if v is not None}
            assert sorted(last) == [DAY0 + 1, DAY0 + 2]
            for day, (t, got) in last.items():
                want = since_midnight(sim, t, field)
                assert got == pytest.approx(want, rel=0.005), (sim.family, field, t)
                assert got == pytest.approx(getattr(true_day(sim.model, day), field), rel=0.02)


def test_nothing_guessed_before_the_first_midnight_where_the_gateway_lies(
    written: tuple[InfluxDB1, tuple[Simulator, ...]],
) -> None:
    server, (modern, legacy) = written
    first_day = f"time >= {int(START)}s AND time < {int(at(1, 0))}s"
    rows = query(
        server,
        f'SELECT "production_today_wh" FROM "enphase_system" '
        f"WHERE \"gateway\" = '{modern.serial}' AND {first_day}",
    )
    assert rows == []  # whToday = whLifetime, no midnight seen yet: left out
    rows = query(
        server,
        f'SELECT count("production_today_wh") FROM "enphase_system" '
        f"WHERE \"gateway\" = '{legacy.serial}' AND {first_day}",
    )
    # a believable gateway value is written as is, at every poll of that day
    assert rows[0][1] == len(range(int(START), int(at(1, 0)), STEP))


def test_the_wrapped_inverter_counts_exactly_what_it_produced(
    written: tuple[InfluxDB1, tuple[Simulator, ...]],
) -> None:
    server, (modern, _) = written
    assert modern.model is not None
    serial = modern.model.site.inverter_serials[0]
    rows = query(
        server,
        f'SELECT "lifetime_wh" FROM "enphase_inverter" WHERE "serial" = \'{serial}\'',
    )
    (t0, first), (t1, last) = rows[0], rows[-1]
    produced = modern.model.inverter(0, t1).lifetime_wh - modern.model.inverter(0, t0).lifetime_wh
    assert last - first == pytest.approx(produced, abs=0.01)
    assert last > WRAP_WH  # it went on past 2^32 J instead of starting again


def test_every_correction_is_an_event(written: tuple[InfluxDB1, tuple[Simulator, ...]]) -> None:
    server, (modern, legacy) = written
    # modern: the dip (one event for its 3 system and 3 meter counters), the
    # inverter wrap, the reboot (whose zeros need no event of their own). The
    # legacy gateway's one counter reading 0 for ten minutes looks like a
    # reboot, and is reported so.
    want = {
        modern.serial: ["counter_glitch", "counter_wrap", "reboot"],
        legacy.serial: ["counter_wrap", "reboot", "reboot"],
    }
    for serial, kinds in want.items():
        rows = query(
            server,
            f'SELECT "text", "kind" FROM "enphase_event" WHERE "gateway" = \'{serial}\'',
        )
        assert sorted(kind for _, _, kind in rows) == kinds, rows
    (dip,) = [
        text
        for _, text, kind in query(server, 'SELECT "text", "kind" FROM "enphase_event"')
        if kind == "counter_glitch"
    ]
    assert dip.count("came back: a glitch") == 6
