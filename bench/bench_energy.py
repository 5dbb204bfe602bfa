"""Energy stage benchmark: CPU time of the stage per gateway-minute, and the
size and write time of one gateway's state file, for a large site (3-phase
CTs, grid counters, 24 microinverters with device data).

Points are built here (the stage's input), one totals job a minute and one
devices job every 5 minutes, over a simulated day; the state is flushed every
300 s of that day as the worker would.

    .venv/bin/python bench/bench_energy.py [--repeat 5]

With ``--stop N``: the time to write N gateways' dirty states at a worker's
stop, one by one with an fsync each (before) and the way the worker does it
now (no fsync per file, then one sync: ``Worker.flush_states``).

    .venv/bin/python bench/bench_energy.py --stop 5000 --repeat 3

With ``--battery``: the site also has IQ batteries without a storage CT, so the
stage integrates their power every minute (and rewrites the integrator's
progress file: one small write a minute).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from envoy_ingest.energy.localday import zone
from envoy_ingest.energy.stage import EnergyStage
from envoy_ingest.energy.store import EnergyStore, GatewayEnergy, state_path
from envoy_ingest.point import Point
from envoy_ingest.statefile import sync_all

T0 = 1_749_945_600
INVERTERS = 24


def totals(t: int, k: int, battery: bool = False) -> list[Point]:
    system = Point(
        "enphase_system",
        {
            "production_w": 4000.0,
            "production_today_wh": 10.0 * k,
            "production_7d_wh": 50_000.0 + 10 * k,
            "production_lifetime_wh": 9_000_000.0 + 10 * k,
            "consumption_w": 800.0,
            "consumption_today_wh": 5.0 * k,
            "consumption_7d_wh": 30_000.0 + 5 * k,
            "consumption_lifetime_wh": 7_000_000.0 + 5 * k,
            "net_w": -3200.0,
            "net_today_wh": 0.0,
            "net_7d_wh": 0.0,
            "net_lifetime_wh": -2_000_000.0 - 5 * k,
        }
        | ({"battery_w": 1500.0 if k % 720 < 360 else -1500.0} if battery else {}),
        t,
    )
    meters = [
        Point(
            "enphase_meter",
            {"power_w": 1000.0, "today_wh": 3.0 * k, "lifetime_wh": 3e6 + 3 * k},
            t,
            {"flow": flow, "phase": phase},
        )
        for flow in ("production", "consumption", "net")
        for phase in ("l1", "l2", "l3")
    ]
    return [system, *meters]


def devices(t: int, k: int) -> list[Point]:
    grid = Point(
        "enphase_system",
        {"grid_import_lifetime_wh": 4e6 + k, "grid_export_lifetime_wh": 2e6 + 8 * k},
        t,
    )
    inverters = [
        Point(
            "enphase_inverter",
            {"power_w": 200.0, "max_power_w": 290.0, "lifetime_wh": 900_000.0 + 0.4 * k},
            t,
            {"serial": f"4822{i:08d}"},
        )
        for i in range(INVERTERS)
    ]
    return [grid, *inverters]


def one_day(directory: Path, battery: bool = False) -> tuple[float, int, float]:
    """(CPU ms per gateway-minute, state bytes, ms per state write)."""
    sim_now = [0.0]
    store = EnergyStore(
        state_path(directory, "122238082690"), flush_interval=300, clock=lambda: sim_now[0]
    )
    stage = EnergyStage(store, zone("Europe/Berlin"), label="bench")
    writes = 0
    started = time.process_time()
    for k in range(1440):
        t = T0 + 60 * k
        sim_now[0] = 60.0 * k
        before = store._flushed_at
        stage.apply(totals(t, k, battery))
        if k % 5 == 0:
            stage.apply(devices(t, k))
        writes += store._flushed_at != before
    cpu = time.process_time() - started
    size = store.path.stat().st_size
    t0 = time.perf_counter()
    for _ in range(20):
        store.changed(urgent=True)
    write_ms = (time.perf_counter() - t0) / 20 * 1000
    return cpu / 1440 * 1000, size, write_ms


def dirty_fleet(directory: Path, template: GatewayEnergy, n: int) -> list[EnergyStore]:
    stores = []
    for i in range(n):
        store = EnergyStore(state_path(directory, f"1222{i:08d}"), flush_interval=1e9)
        store.state = GatewayEnergy.from_json(template.to_json())
        store.changed()
        stores.append(store)
    return stores


def stop_flush(n: int) -> tuple[float, float]:
    """(seconds one by one with an fsync each, seconds without, then one sync)."""
    with tempfile.TemporaryDirectory() as tmp:
        template = EnergyStore(Path(tmp) / "template.json")
        stage = EnergyStage(template, zone("Europe/Berlin"), label="bench")
        for k in range(10):
            stage.apply(totals(T0 + 60 * k, k) + devices(T0 + 60 * k, k))
        stores = dirty_fleet(Path(tmp) / "before", template.state, n)
        sync_all()
        t0 = time.perf_counter()
        assert all(store.flush() for store in stores)
        before = time.perf_counter() - t0
        stores = dirty_fleet(Path(tmp) / "after", template.state, n)
        sync_all()
        t0 = time.perf_counter()
        assert all(store.flush(durable=False) for store in stores)
        sync_all()
        after = time.perf_counter() - t0
    return before, after


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stop", type=int, default=0, metavar="N")
    parser.add_argument("--battery", action="store_true", help="IQ batteries, no storage CT")
    args = parser.parse_args()
    if args.stop:
        times = [stop_flush(args.stop) for _ in range(args.repeat)]
        print(f"stop flush of {args.stop} dirty energy states, medians of {args.repeat}:")
        print(f"  one by one, fsync each: {statistics.median(t[0] for t in times):.2f} s")
        print(f"  no fsync each, one sync: {statistics.median(t[1] for t in times):.2f} s")
        return
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(one_day(Path(tmp), args.battery))
    cpu = statistics.median(r[0] for r in runs)
    write = statistics.median(r[2] for r in runs)
    site = " + IQ batteries (integrated)" if args.battery else ""
    print(
        f"energy stage, 3-phase CTs + grid + {INVERTERS} inverters{site}, medians of {args.repeat}:"
    )
    print(f"  CPU per gateway-minute: {cpu:.3f} ms (state writes included, every 300 s)")
    print(f"  state file: {runs[-1][1]} bytes; one write (fsync): {write:.2f} ms")


if __name__ == "__main__":
    main()
