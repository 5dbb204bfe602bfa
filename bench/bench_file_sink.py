"""The file sink at fleet rate: CPU and event-loop time per submit, and fsyncs.

A fleet of 5,000 gateways submits about 100 batches a second (one per poll).
This submits a totals batch (7 points, as from a CT site) every ``1/rate``
seconds for ``--seconds`` on a running event loop, as the worker does, and
reports per submit the time the loop was blocked (wall) and the CPU spent
(median and mean), plus the number of fsyncs. Run from the project root::

    .venv/bin/python bench/bench_file_sink.py --rate 100 --seconds 10 --repeat 3

``--dir`` puts the files on the disk to measure (default: a temporary
directory). ``--fsync-interval`` is ``[file] fsync_interval`` (ignored by code
that does not have it).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from envoy_ingest.point import Point
from envoy_ingest.sink.file import FileSink

T0 = 1_795_478_340  # 2026-11-23 (UTC): one day file


def batch(t: int, gateway: int) -> list[Point]:
    tags = {"gateway": f"gw{gateway:04d}", "site": "bench"}
    points = [Point("enphase_system", {"production_w": 1234.5, "consumption_w": 456.0}, t, tags)]
    for flow in ("production", "total-consumption", "net-consumption"):
        for phase in ("l1", "l2"):
            fields = {"power_w": 411.5, "voltage_v": 230.1, "lifetime_wh": 12345678.0}
            points.append(Point("enphase_meter", fields, t, {**tags, "flow": flow, "phase": phase}))
    return points


async def run(directory: Path, rate: float, seconds: float, interval: float) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if "fsync_interval" in inspect.signature(FileSink).parameters:
        kwargs["fsync_interval"] = interval
    sink = FileSink(directory, **kwargs)
    fsyncs = 0
    real_fsync = os.fsync

    def counting_fsync(fd: Any) -> None:
        nonlocal fsyncs
        fsyncs += 1
        real_fsync(fd)

    os.fsync = counting_fsync
    wall: list[float] = []
    cpu: list[float] = []
    n = int(rate * seconds)
    loop = asyncio.get_running_loop()
    start = loop.time()
    cpu0 = time.process_time()
    try:
        for k in range(n):
            delay = start + k / rate - loop.time()
            await asyncio.sleep(max(0.0, delay))  # the loop runs (deferred syncs) here
            points = batch(T0 + 60 * (k // 5000), k % 5000)
            w0, c0 = time.perf_counter(), time.thread_time()
            sink.submit(points)
            c1, w1 = time.thread_time(), time.perf_counter()
            wall.append(w1 - w0)
            cpu.append(c1 - c0)
        await sink.close()
    finally:
        os.fsync = real_fsync
    return {
        "wall_med": statistics.median(wall),
        "wall_mean": statistics.fmean(wall),
        "cpu_med": statistics.median(cpu),
        "cpu_mean": statistics.fmean(cpu),
        "process_cpu_per_submit": (time.process_time() - cpu0) / n,
        "fsyncs": fsyncs,
        "submits": n,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100.0, help="submits per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fsync-interval", type=float, default=1.0)
    parser.add_argument("--dir", type=Path, default=None, help="where the day files go")
    args = parser.parse_args()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    results = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            r = asyncio.run(run(Path(tmp), args.rate, args.seconds, args.fsync_interval))
        results.append(r)
        print(
            f"{r['submits']} submits, {r['fsyncs']} fsyncs; per submit: loop blocked "
            f"median {r['wall_med'] * 1e6:.0f} µs mean {r['wall_mean'] * 1e6:.0f} µs, "
            f"CPU median {r['cpu_med'] * 1e6:.0f} µs mean {r['cpu_mean'] * 1e6:.0f} µs; "
            f"process CPU per submit {r['process_cpu_per_submit'] * 1e6:.0f} µs"
        )

    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in results)) * 1e6

    print(
        f"medians of {args.repeat} runs: loop blocked per submit {med('wall_med'):.0f} µs "
        f"(mean {med('wall_mean'):.0f} µs), CPU per submit {med('cpu_med'):.0f} µs "
        f"(mean {med('cpu_mean'):.0f} µs), process CPU per submit "
        f"{med('process_cpu_per_submit'):.0f} µs, fsyncs {med('fsyncs') / 1e6:.0f}"
    )


if __name__ == "__main__":
    main()
