"""The live job end to end: the worker reads a simulated metered gateway every
second into a real InfluxDB 1.x while the totals and devices jobs keep their
cadence; a full spool loses live points first; a slow gateway backs the live
interval off, and it comes back by itself."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest

from envoy_ingest import normalize
from envoy_ingest.envoy.capabilities import METERS_READINGS
from envoy_ingest.point import Point
from envoy_ingest.settings import Settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.simulator.render_totals import meters_readings
from envoy_ingest.sink import build_sink
from envoy_ingest.sink.delivery import SpooledDelivery
from envoy_ingest.sink.durable import DurableQueue
from envoy_ingest.sink.influx_v1 import InfluxV1Writer
from envoy_ingest.telemetry import metrics
from envoy_ingest.worker import Worker
from envoy_ingest.worker.live import live_offset
from envoy_ingest.worker.poller import CycleResult
from envoy_ingest.worker.spread import slot, start_offsets
from tests.lp import read_dir
from tests.support.servers import InfluxDB1

MiB = 1024 * 1024
SITE: dict[str, Any] = {"family": "legacy", "cts": "1phase", "batteries": "none", "motion": True}
TOTALS, DEVICES = 6.0, 12.0


def worker_settings(tmp: Path, sim: Simulator, live: int, **extra: Any) -> Settings:
    return Settings(
        gateways=[{"host": sim.host, "name": "home", "timezone": "UTC"}],
        file={"directory": tmp / "data"},
        state={"directory": tmp / "state"},
        schedule={
            "totals_interval": TOTALS,
            "devices_interval": DEVICES,
            "jitter": 0.0,
            "live_interval": live,
        },
        **extra,
    )


def align(sim: Simulator, live: int) -> None:
    """Move the simulated clock so that live reads land a quarter second into a
    simulated second: each read's timestamp is then one more than the last."""
    totals_offset = start_offsets(sim.host, TOTALS, DEVICES)[0]
    phase = slot(live_offset(totals_offset, live), live)[1]
    ahead = sim.now() - time.time()
    sim.advance((0.25 - phase - ahead) % 1.0)


def missed(job: str) -> float:
    value = metrics.REGISTRY.get_sample_value("envoy_ingest_missed_cycles_total", {"job": job})
    return value or 0.0


def test_live_points_every_second_into_influxdb_1_with_the_totals_cadence_untouched(
    tmp_path: Path, influxdb1: InfluxDB1
) -> None:
    influxdb1.create_database("live")
    results: list[CycleResult] = []
    skips_at: list[int] = []  # skips and failed reads so far, at each live read

    with Simulator(SimulatorConfig(**SITE)) as sim:
        align(sim, 1)
        settings = worker_settings(
            tmp_path, sim, 1, influxdb=influxdb1.influxdb_settings(live_database="live")
        )
        worker = Worker(settings, on_result=results.append)

        def seen(result: CycleResult) -> None:
            results.append(result)
            if result.job == "live":
                failed = sum(1 for r in results if r.job == "live" and not r.ok)
                skips_at.append(sum(worker.live.skipped.values()) + failed)

        worker.on_result = seen
        missed_before = missed("totals"), missed("devices")

        async def run() -> None:
            asyncio.get_running_loop().call_later(26, worker.stop)
            await worker.run_forever()
            sink = build_sink(settings)  # deliver what the stop left in the spool
            await sink.start()
            await sink.drain(15)
            await sink.close()

        asyncio.run(run())
        caps = worker.pollers[0].caps
        production_requests = sim.request_count("/production.json")
    assert caps is not None

    # Live: every read's points, in the live database, exactly as the gateway served them.
    live = [r for r in results if r.job == "live"]
    assert len(live) >= 10 and all(r.ok for r in live)
    stored = influxdb1.lines("live")
    times = sorted({ln.time for ln in stored})
    assert len(stored) == 3 * len(times)  # production, net, consumption: one phase
    assert times == sorted({p.time for r in live for p in r.points})
    tags = {"gateway": sim.serial, "site": "home"}
    assert sim.model is not None
    for t in times:
        served = normalize.live({METERS_READINGS: meters_readings(sim.model, t)}, caps, t)
        want = {(p.tags["flow"], t): dict(p.fields) for p in served}
        got = {(ln.tags["flow"], ln.time): ln.fields for ln in stored if ln.time == t}
        assert got == want
        assert {frozenset(ln.tags.items()) for ln in stored if ln.time == t} == {
            frozenset({**tags, "flow": f}.items()) for f in ("production", "net", "consumption")
        }
    # Every second between the first and the last read, but for the reads skipped
    # (or failed) in between: none is lost, none repeated.
    assert len(times) == len(live)
    assert times[-1] - times[0] + 1 - len(times) == skips_at[-1] - skips_at[0]
    assert worker.live.state("home") is not None
    assert worker.live.state("home").factor == 1  # type: ignore[union-attr]
    # The readings moved: a stepping load, passing clouds, a flicker every second.
    net = [ln.fields["power_w"] for ln in stored if ln.tags["flow"] == "net"]
    assert len(set(net)) == len(net)

    # Totals and devices: every cycle ran, at its interval, none missed, in the totals database.
    totals = [r for r in results if r.job == "totals"]
    devices = [r for r in results if r.job == "devices"]
    assert all(r.ok for r in totals + devices)
    assert (missed("totals"), missed("devices")) == missed_before
    # and the probe's; and perhaps one cycle cut short by the stop (no result)
    assert production_requests - 1 - len(totals) in (0, 1)
    system_times = sorted(ln.time for ln in influxdb1.lines("solar", "enphase_system"))
    totals_times = sorted(
        {p.time for r in totals for p in r.points if p.measurement == "enphase_system"}
    )
    assert [b - a for a, b in itertools.pairwise(totals_times)] == [6] * (len(totals_times) - 1)
    assert set(totals_times) <= set(system_times)
    assert len(totals) >= 3 and len(devices) >= 1
    assert not influxdb1.lines("solar", "enphase_live")  # live data only in its database


def test_a_full_spool_loses_live_points_first_and_influxdb_gets_every_totals_point(
    tmp_path: Path, influxdb1: InfluxDB1
) -> None:
    """InfluxDB is down while a 1 MiB spool takes three times what it holds, live
    and totals points mixed; when it is back, it gets every totals point and the
    newest live points, and the lost live points are counted."""
    influx = Settings(
        gateways=[{"host": "10.0.0.2"}], influxdb=influxdb1.influxdb_settings()
    ).influxdb
    assert influx is not None
    dead = tmp_path / "dead-letter.lp"
    label = {"reason": "live_spool_max_bytes"}
    live_lost_before = (
        metrics.REGISTRY.get_sample_value("envoy_ingest_dropped_points_total", label) or 0
    )
    totals_lost_before = (
        metrics.REGISTRY.get_sample_value(
            "envoy_ingest_dropped_points_total", {"reason": "spool_max_bytes"}
        )
        or 0
    )
    t0 = int(time.time()) - 86400
    pad = "x" * 2000  # a site name long enough to fill the spool quickly

    def batch(i: int) -> list[Point]:
        tags = {"gateway": "g1", "site": pad}
        points = [
            Point(
                "enphase_live",
                {"power_w": float(i), "voltage_v": 230.0},
                t0 + i,
                {**tags, "flow": f},
            )
            for f in ("production", "net", "consumption")
        ]
        if i % 20 == 0:
            points.append(Point("enphase_system", {"production_w": float(i)}, t0 + i, tags))
        return points

    influxdb1.stop()

    async def outage() -> tuple[int, int]:
        sink = SpooledDelivery(
            InfluxV1Writer(influx), DurableQueue(tmp_path / "spool.sqlite", MiB, 0, 1000), dead
        )
        n = 0
        while n * 3 * len(pad) < 3 * MiB:
            sink.submit(batch(n))
            n += 1
        held = sink.spool.pending_points
        await sink.close()
        return n, held

    n, held = asyncio.run(outage())
    influxdb1.start()

    async def deliver() -> None:
        sink = SpooledDelivery(
            InfluxV1Writer(influx), DurableQueue(tmp_path / "spool.sqlite", MiB, 0, 1000), dead
        )
        report = await sink.drain(30)
        assert report.pending == 0
        await sink.close()

    asyncio.run(deliver())
    totals_sent = [i for i in range(n) if i % 20 == 0]
    system = influxdb1.lines("solar", "enphase_system")
    assert sorted(ln.time - t0 for ln in system) == totals_sent  # not one lost
    live = influxdb1.lines("solar", "enphase_live")
    kept = sorted({ln.time - t0 for ln in live})
    assert len(live) == held - len(totals_sent) == 3 * len(kept)
    assert kept == list(range(n - len(kept), n))  # the newest live points
    lost = 3 * n - len(live)
    after = metrics.REGISTRY.get_sample_value("envoy_ingest_dropped_points_total", label)
    assert after == live_lost_before + lost
    assert (
        metrics.REGISTRY.get_sample_value(
            "envoy_ingest_dropped_points_total", {"reason": "spool_max_bytes"}
        )
        or 0
    ) == totals_lost_before


def test_a_slow_gateway_backs_the_live_interval_off_and_it_comes_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Answers of 1.5 s at a 1 s live interval: the first read runs out of time
    (an error), the next takes longer than half of 2 s: 4 s, where 1.5 s is fast
    enough to stay. Answers at once again: 4 s -> 2 s -> 1 s, three fast reads
    each step."""
    with Simulator(SimulatorConfig(**SITE)) as sim:
        settings = worker_settings(tmp_path, sim, 1)
        worker = Worker(settings)

        async def run() -> None:
            task = asyncio.create_task(worker.run_forever())
            while worker.pollers[0].caps is None:
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)
            sim.slow(METERS_READINGS, 1.5)
            await asyncio.sleep(9)
            state = worker.live.state("home")
            assert state is not None
            slow = (state.factor, worker.live.skipped["gateway_slow"])
            sim.slow(METERS_READINGS, 0.0)
            await asyncio.sleep(26)
            worker.stop()
            await task
            assert slow[0] == 4
            assert slow[1] >= 1  # a read still waiting for the gateway when the next was due

        with caplog.at_level(logging.INFO, logger="envoy_ingest.worker.live"):
            asyncio.run(run())
    changes = [
        (m.group(1), m.group(2))
        for r in caplog.records
        if (m := re.match(r"home: live reads every (\d+) s (now|again)", r.getMessage()))
    ]
    assert changes == [("2", "now"), ("4", "now"), ("2", "again"), ("1", "again")]
    assert "failed: " in caplog.text  # the first slow read ran out of its 0.9 s
    state = worker.live.state("home")
    assert state is not None and state.factor == 1
    # The file holds the cadence: 4 s apart while backed off, 1 s apart at the end.
    times = sorted(
        {ln.time for ln in read_dir(tmp_path / "data") if ln.measurement == "enphase_live"}
    )
    steps = [b - a for a, b in itertools.pairwise(times)]
    assert 4 in steps and steps[-3:] == [1, 1, 1]


def test_the_documented_influxdb_1_retention_and_downsampling_commands_work(
    influxdb1: InfluxDB1,
) -> None:
    """docs/sinks.md's InfluxDB 1.x block, run as written on a real InfluxDB 1.x."""
    docs = (Path(__file__).resolve().parent.parent / "docs" / "sinks.md").read_text()
    block = docs.split("InfluxDB 1.x (`live_database", 1)[1].split("```sql\n", 1)[1]
    block = block.split("```", 1)[0]
    statements = [
        s.strip()
        for s in re.split(
            r"\n(?=CREATE )", "\n".join(ln for ln in block.splitlines() if not ln.startswith("--"))
        )
        if s.strip()
    ]
    assert len(statements) == 2
    for statement in statements:
        result = influxdb1.query(statement)
        assert "error" not in str(result), (statement, result)
    policies = influxdb1.query('SHOW RETENTION POLICIES ON "solar_live"')
    values = policies["results"][0]["series"][0]["values"]
    assert [(v[0], v[1], v[-1]) for v in values] == [("week", "168h0m0s", True)]
    cqs = str(influxdb1.query("SHOW CONTINUOUS QUERIES"))
    assert (
        "INTO solar.autogen.enphase_live_1m FROM solar_live.week.enphase_live "
        "GROUP BY time(1m), * END"
    ) in cqs
