"""Scheduler benchmark: the worker's CPU per gateway job run, the poll itself left out.

A real :class:`Worker` (``run_forever``: APScheduler, the gateways' jobs, the
heartbeat, health and metrics) with N gateways whose poll does nothing but
return a successful result (each gateway known by its serial and firmware and
holding a pasted token, as a polled gateway does, so ``_record`` does its full
work). Time is compressed: totals every 1 s, devices every 5 s, no jitter. After
a warm-up (every gateway's first run falls within two totals intervals), the
process CPU time over a window is divided by the job runs in it. Several runs,
median reported. The event loop is the worker's (``--loop``, as ``event_loop``).

    .venv/bin/python bench/bench_scheduler.py [--gateways 2000] [--seconds 8] [--repeat 3]
        [--loop auto|uvloop|asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

import jwt

from envoy_ingest.envoy.firmware import GatewayInfo
from envoy_ingest.eventloop import run
from envoy_ingest.point import Kind
from envoy_ingest.settings import Settings
from envoy_ingest.sink.file import FileSink
from envoy_ingest.worker import Worker
from envoy_ingest.worker.poller import CycleResult, GatewayPoller

WARMUP = 3.0  # seconds: every first run has happened (two totals intervals of 1 s)


def settings_for(n: int, directory: Path) -> Settings:
    now = int(time.time())
    gateways = []
    for i in range(n):
        serial = f"9{i:011d}"
        claims = {"exp": now + 86_400 * 300, "iat": now, "enphaseUser": "owner", "aud": serial}
        token = jwt.encode(claims, "bench-key-that-is-long-enough-for-hs256", algorithm="HS256")
        host = f"127.{1 + i // 65_000}.{i // 250 % 260 % 256}.{1 + i % 250}"
        gateways.append({"host": host, "serial": serial, "token": token})
    return Settings(
        gateways=gateways,
        file={"directory": directory / "data"},
        state={"directory": directory / "state"},
        schedule={"totals_interval": 1, "devices_interval": 5, "jitter": 0},
        health={"enabled": False},
    )


def stub(poller: GatewayPoller) -> None:
    """The poller answers at once, as a gateway that was probed and is polled."""
    serial = poller.settings.serial or "unknown"
    poller.info = GatewayInfo(serial=serial, software="D8.2.4264", version=(8, 2, 4264))

    async def poll(job: Kind, deadline: float | None = None) -> CycleResult:
        return CycleResult(poller.label, job, ok=True)

    poller.poll = poll  # type: ignore[method-assign]


async def one_run(n: int, seconds: float) -> tuple[float, int, int]:
    """(CPU seconds, job runs, runs expected) over ``seconds`` after the warm-up."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(n, Path(tmp))
        runs = 0

        def count(_: CycleResult) -> None:
            nonlocal runs
            runs += 1

        worker = Worker(settings, sink=FileSink(Path(tmp) / "data"), on_result=count)
        for poller in worker.pollers:
            stub(poller)
        task = asyncio.create_task(worker.run_forever())
        await asyncio.sleep(WARMUP)
        cpu0, runs0 = time.process_time(), runs
        await asyncio.sleep(seconds)
        cpu, done = time.process_time() - cpu0, runs - runs0
        worker.stop()
        await task
    return cpu, done, round(n * seconds * (1 + 1 / 5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    per_run = []
    for _ in range(args.repeat):
        cpu, runs, expected = run(one_run(args.gateways, args.seconds), args.loop)
        per_run.append(cpu / runs * 1e6)
        print(f"  {runs} job runs ({expected} expected), {cpu:.2f} s CPU: {per_run[-1]:.1f} us/run")
    print(
        f"{args.gateways} gateways, totals 1 s, devices 5 s, {args.loop} loop: "
        f"median {statistics.median(per_run):.1f} us CPU per gateway job run"
    )


if __name__ == "__main__":
    main()
