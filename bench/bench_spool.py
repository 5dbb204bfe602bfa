"""Spool benchmark: append and replay throughput, and the time to drain a
24-hour outage of 100 gateways into a real server.

- **append**: what :meth:`SpooledDelivery.submit` costs: one SQLite transaction
  (WAL, synchronous=FULL, so one fsync) per batch, for the worker's two batch
  shapes: a totals cycle (1 system + 6 meter points) and a devices cycle
  (24 inverters + 2 batteries).
- **replay**: reading the oldest rows and deleting them after "delivery"
  (5000 points per step, one delete transaction per step), without a server:
  the spool's own ceiling.
- **drain**: a spool holding 24 hours of 100 gateways (totals every minute,
  devices every 5 minutes: 1,756,800 points) delivered by
  :meth:`SpooledDelivery.drain` into a real VictoriaMetrics (v2 writer,
  influxdb-client) and InfluxDB 1.6.7 (v1 writer, httpx), gzip on, 5000 points
  per request, as configured by default.

Throughputs are medians over ``--runs`` runs (drains over ``--drain-runs``).

    .venv/bin/python bench/bench_spool.py [--runs 5] [--drain-runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from envoy_ingest.backoff import Backoff  # noqa: E402
from envoy_ingest.point import Point  # noqa: E402
from envoy_ingest.settings import InfluxDBSettings  # noqa: E402
from envoy_ingest.sink import Spool, SpooledDelivery, build_writer  # noqa: E402
from envoy_ingest.sink.lineprotocol import encode  # noqa: E402
from tests.support.builders import device_points, totals_points  # noqa: E402
from tests.support.servers import InfluxDB1, VictoriaMetrics  # noqa: E402

GiB = 1024**3


def row(points: list[Point]) -> tuple[str, bytes, int]:
    target = points[0].kind
    return (target, encode(points).encode(), len(points))


def outage_rows(gateways: int, hours: int, end: int) -> Iterator[list[tuple[str, bytes, int]]]:
    """Minute by minute, what ``gateways`` gateways submitted: one row per gateway
    and job, exactly as the worker submits them."""
    start = end - hours * 3600
    for t in range(start, end, 60):
        rows = []
        for g in range(gateways):
            serial = f"1222380{g:05d}"
            site = f"site-{g}"
            rows.append(row(totals_points(t, serial, site)))
            if (t // 60) % 5 == 0:
                rows.append(row(device_points(t, serial, site)))
        yield rows


def median_rate(runs: int, once: Callable[[Path], tuple[int, float]]) -> tuple[float, float]:
    """Median points/s and median seconds of ``once(dir) -> (points, seconds)``."""
    rates, secs = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="bench-spool-", dir=BENCH_DIR) as d:
            points, seconds = once(Path(d))
        rates.append(points / seconds)
        secs.append(seconds)
    return statistics.median(rates), statistics.median(secs)


def bench_append(batch: list[Point], batches: int) -> Callable[[Path], tuple[int, float]]:
    entry = row(batch)

    def once(d: Path) -> tuple[int, float]:
        spool = Spool(d / "spool.sqlite", GiB)
        started = time.perf_counter()
        for _ in range(batches):
            spool.append([entry])
        seconds = time.perf_counter() - started
        spool.close()
        return batches * entry[2], seconds

    return once


def bench_replay(gateways: int, hours: int) -> Callable[[Path], tuple[int, float]]:
    def once(d: Path) -> tuple[int, float]:
        spool = Spool(d / "spool.sqlite", 4 * GiB)
        for rows in outage_rows(gateways, hours, 1_748_995_200):
            spool.append(rows)
        total = spool.pending_points
        started = time.perf_counter()
        while entries := spool.peek(5000):
            _ = b"".join(e.body for e in entries)
            spool.delete(entries)
        seconds = time.perf_counter() - started
        spool.close()
        return total, seconds

    return once


def fill(spool: Spool, gateways: int, hours: int, end: int) -> float:
    started = time.perf_counter()
    for rows in outage_rows(gateways, hours, end):
        spool.append(rows)  # one transaction per minute of all gateways (setup)
    return time.perf_counter() - started


async def drain_once(kind: str, gateways: int, hours: int) -> tuple[int, float, float, int]:
    """-> (points, seconds, spool MiB, points the server holds for enphase_system)."""
    end = int(time.time()) // 300 * 300  # the last 24 h, like a real outage
    with tempfile.TemporaryDirectory(prefix="bench-drain-", dir=BENCH_DIR) as d:
        root = Path(d)
        server: VictoriaMetrics | InfluxDB1 = (
            VictoriaMetrics(root / "server")
            if kind == "victoria-metrics"
            else InfluxDB1(root / "server")
        )
        spool = Spool(root / "spool.sqlite", 4 * GiB)
        fill(spool, gateways, hours, end)
        points = spool.pending_points
        size = (root / "spool.sqlite").stat().st_size / 2**20
        server.first_start()
        try:
            settings = InfluxDBSettings(**server.influxdb_settings())
            sink = SpooledDelivery(
                build_writer(settings),
                spool,
                root / "dead-letter.lp",
                batch_size=settings.batch_size,
                backoff=Backoff(0.1, 1.0),
            )
            started = time.perf_counter()
            report = await sink.drain(3600)
            seconds = time.perf_counter() - started
            await sink.close()
            assert report.complete and report.delivered == points, report
            assert report.dead_lettered == 0
            stored = stored_system_points(server)
        finally:
            server.kill()
    return points, seconds, size, stored


def stored_system_points(server: VictoriaMetrics | InfluxDB1) -> int:
    if isinstance(server, InfluxDB1):
        result = server.query("SELECT count(production_w) FROM enphase_system", "solar")
        return int(result["results"][0]["series"][0]["values"][0][1])
    return len(server.samples('{__name__="enphase_system_production_w"}'))


BENCH_DIR: str | None = None


def fsync_ms(samples: int = 200) -> float:
    """Median time of one small write + fsync in the spool's directory."""
    with tempfile.TemporaryDirectory(prefix="bench-fsync-", dir=BENCH_DIR) as d:
        fd = os.open(Path(d) / "f", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            os.write(fd, b"x" * 512)
            os.fsync(fd)
            times.append(time.perf_counter() - started)
        os.close(fd)
    return statistics.median(times) * 1000


def main() -> None:
    global BENCH_DIR
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per throughput figure")
    parser.add_argument("--drain-runs", type=int, default=3, help="runs per drain figure")
    parser.add_argument("--gateways", type=int, default=100)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--append-batches", type=int, default=2000)
    parser.add_argument(
        "--servers",
        default="victoria-metrics,influxdb1",
        help="comma-separated: victoria-metrics, influxdb1",
    )
    parser.add_argument("--dir", default=None, help="where the spools go (default: $TMPDIR)")
    args = parser.parse_args()
    BENCH_DIR = args.dir

    where = args.dir or tempfile.gettempdir()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, spool in {where}, "
        f"fsync of 512 bytes there: {fsync_ms():.2f} ms (median)"
    )
    totals = totals_points(1_748_995_140)
    devices = device_points(1_748_995_140)

    rows: list[tuple[str, str, str]] = []
    for name, batch in (("totals (7 points)", totals), ("devices (26 points)", devices)):
        rate, secs = median_rate(args.runs, bench_append(batch, args.append_batches))
        per_batch = secs / args.append_batches * 1000
        rows.append(
            (
                f"append, 1 transaction per {name} batch",
                f"{rate:,.0f} points/s",
                f"{per_batch:.2f} ms/batch",
            )
        )
    rate, secs = median_rate(args.runs, bench_replay(10, 24))
    rows.append(
        (
            "replay from the spool (no server), 5000/step",
            f"{rate:,.0f} points/s",
            f"{secs:.2f} s for 10 gw x 24 h",
        )
    )

    per_gw_day = 1440 * len(totals) + 288 * len(devices)
    total = args.gateways * args.hours * per_gw_day // 24
    for kind in [k.strip() for k in args.servers.split(",") if k.strip()]:
        if not shutil.which("influxd" if kind == "influxdb1" else "victoria-metrics"):
            rows.append((f"drain into {kind}", "binary not installed", ""))
            continue
        results = [
            asyncio.run(drain_once(kind, args.gateways, args.hours)) for _ in range(args.drain_runs)
        ]
        points = results[0][0]
        assert points == total, (points, total)
        seconds = statistics.median(r[1] for r in results)
        assert all(r[3] == args.gateways * args.hours * 60 for r in results), results
        label = (
            "VictoriaMetrics 1.79 (v2 API)"
            if kind == "victoria-metrics"
            else "InfluxDB 1.6.7 (v1 API)"
        )
        rows.append(
            (
                f"drain {args.hours} h x {args.gateways} gw ({points:,} points, "
                f"{results[0][2]:.0f} MiB spool) into {label}",
                f"{points / seconds:,.0f} points/s",
                f"{seconds:.1f} s",
            )
        )

    width = max(len(r[0]) for r in rows)
    print(f"\n{'what':<{width}}  {'throughput':>18}  {'time':>22}")
    for what, rate_text, time_text in rows:
        print(f"{what:<{width}}  {rate_text:>18}  {time_text:>22}")


if __name__ == "__main__":
    main()
