"""Worker benchmark: per kind of site, requests per hour per gateway, CPU time per
gateway-minute, and resident memory of the worker process with one gateway.

The simulator runs in this process; the worker runs as a real `envoy-ingest run`
subprocess with time compressed 60x (totals every 1 s stand for every 60 s,
devices every 5 s for every 300 s), so T seconds of wall time are T gateway-
minutes. Its CPU time (utime + stime) and peak RSS (VmHWM) come from /proc.

    .venv/bin/python bench/bench_worker.py [--seconds 40] [--repeat 3]

With ``--live N`` it measures instead one metered gateway (8.x, 1-phase CTs, 16
inverters, readings that move every second) with ``live_interval = N``, in real
time (live reads cannot be compressed): totals every 60 s, devices every 300 s
(``--speed S`` divides those two), after a warm-up that covers the first probe.
It prints CPU per gateway-minute, peak RSS, and the requests an hour the
gateway received, by job (totals, devices, live)::

    .venv/bin/python bench/bench_worker.py --live 2 --seconds 600 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from envoy_ingest.simulator import Simulator, SimulatorConfig

SITES: dict[str, SimulatorConfig] = {
    "legacy 5.x, no CTs, 12 inverters": SimulatorConfig(family="legacy", cts="none", inverters=12),
    "modern 8.x, 1-phase CTs, 16 inverters": SimulatorConfig(
        family="modern", cts="1phase", inverters=16
    ),
    "modern 8.x, 3-phase CTs, 24 inverters, 2 IQ batteries": SimulatorConfig(
        family="modern", cts="3phase", inverters=24, batteries="iq", battery_count=2
    ),
    "modern 8.x, 1-phase CTs, 16 inverters, 2 ACB": SimulatorConfig(
        family="modern", cts="1phase", inverters=16, batteries="acb", battery_count=2
    ),
}

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    requests_per_hour: float
    cpu_ms_per_gateway_minute: float
    rss_mb: float


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(cfg: SimulatorConfig, seconds: float, warmup: float = 5.0) -> Result:
    with tempfile.TemporaryDirectory() as tmp, Simulator(cfg) as sim:
        settings = Path(tmp) / "settings.toml"
        gw = [f'host = "{sim.host}"']
        if sim.url.startswith("https://"):
            gw.append(f'token = "{sim.issue_token(lifetime=365 * 86400)}"')
        settings.write_text(
            "[[gateways]]\n" + "\n".join(gw) + "\n"
            f'[file]\ndirectory = "{tmp}/data"\n[state]\ndirectory = "{tmp}/state"\n'
            "[schedule]\ntotals_interval = 1\ndevices_interval = 5\njitter = 0\n"
            '[log]\nlevel = "warning"\n'
        )
        exe = Path(sys.executable).parent / "envoy-ingest"
        proc = subprocess.Popen([str(exe), "run", "-c", str(settings)])
        try:
            time.sleep(warmup)
            cpu0, req0 = _cpu_seconds(proc.pid), sim.request_count()
            time.sleep(seconds)
            cpu1, req1 = _cpu_seconds(proc.pid), sim.request_count()
            rss = _peak_rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        # `seconds` of wall time at 60x compression are `seconds` gateway-minutes.
        return Result(
            requests_per_hour=(req1 - req0) / seconds * 60,
            cpu_ms_per_gateway_minute=(cpu1 - cpu0) / seconds * 1000,
            rss_mb=rss,
        )


LIVE_SITE = SimulatorConfig(family="modern", cts="1phase", inverters=16, motion=True)
LIVE_PATH = "/ivp/meters/readings"
TOTALS_PATHS = ("/production.json", "/api/v1/production")


@dataclass
class LiveResult:
    cpu_ms_per_gateway_minute: float
    rss_mb: float
    per_hour: dict[str, float]  # totals, devices, live requests an hour


def job_of(path: str, live_paths: int) -> str:
    if path.split("?", 1)[0] in TOTALS_PATHS:
        return "totals"
    return "live" if path == LIVE_PATH and live_paths else "devices"


def measure_live(live: int, seconds: float, speed: float, warmup: float) -> LiveResult:
    """One metered gateway at ``live_interval = live``, in real time."""
    totals, devices = 60 / speed, 300 / speed
    with tempfile.TemporaryDirectory() as tmp, Simulator(LIVE_SITE) as sim:
        settings = Path(tmp) / "settings.toml"
        token = sim.issue_token(lifetime=365 * 86400)
        settings.write_text(
            f'[[gateways]]\nhost = "{sim.host}"\ntoken = "{token}"\n'
            f'[file]\ndirectory = "{tmp}/data"\n[state]\ndirectory = "{tmp}/state"\n'
            f"[schedule]\ntotals_interval = {totals:g}\ndevices_interval = {devices:g}\n"
            f"live_interval = {live}\n"
            '[log]\nlevel = "warning"\n'
        )
        exe = Path(sys.executable).parent / "envoy-ingest"
        proc = subprocess.Popen([str(exe), "run", "-c", str(settings)])
        try:
            time.sleep(warmup)
            cpu0, seen0 = _cpu_seconds(proc.pid), len(sim.requests)
            time.sleep(seconds)
            cpu1, requests = _cpu_seconds(proc.pid), sim.requests
            rss = _peak_rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
    # The devices job reads the readings too (every 300 s): the readings requests
    # beyond one per devices cycle are the live job's.
    counts = {"totals": 0, "devices": 0, "live": 0}
    for _, path in requests[seen0:]:
        counts[job_of(path, live)] += 1
    devices_cycles = seconds / devices
    moved = min(counts["live"], round(devices_cycles))
    counts["live"] -= moved
    counts["devices"] += moved
    minutes = seconds / 60 * speed  # gateway-minutes of the schedule
    return LiveResult(
        cpu_ms_per_gateway_minute=(cpu1 - cpu0) * 1000 / (seconds / 60),
        rss_mb=rss,
        # totals and devices an hour of the schedule; live reads an hour of real time
        per_hour={
            job: n / seconds * 3600 if job == "live" else n / minutes * 60
            for job, n in counts.items()
        },
    )


def main_live(args: argparse.Namespace) -> None:
    print(
        f"| live_interval | CPU ms per gateway-minute | peak RSS MB | requests/hour "
        f"(totals, devices per schedule hour at speed {args.speed:g}; live per hour) |"
    )
    print("|---|---|---|---|")
    runs = [
        measure_live(args.live, args.seconds, args.speed, args.warmup) for _ in range(args.repeat)
    ]
    cpu = statistics.median(r.cpu_ms_per_gateway_minute for r in runs)
    rss = statistics.median(r.rss_mb for r in runs)
    hours = {job: statistics.median(r.per_hour[job] for r in runs) for job in runs[0].per_hour}
    print(
        f"| {args.live} s | {cpu:.1f} | {rss:.1f} | {hours['totals']:.0f}, "
        f"{hours['devices']:.0f}, {hours['live']:.0f} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--live", type=int, default=0, help="measure live reads every N s")
    parser.add_argument("--speed", type=float, default=1.0, help="with --live: divide intervals")
    parser.add_argument(
        "--warmup", type=float, default=130.0, help="with --live: seconds before measuring"
    )
    args = parser.parse_args()
    if args.live:
        main_live(args)
        return
    print("| kind of site | requests/hour | CPU ms per gateway-minute | peak RSS MB |")
    print("|---|---|---|---|")
    for name, cfg in SITES.items():
        runs = [measure(cfg, args.seconds) for _ in range(args.repeat)]
        rph = statistics.median(r.requests_per_hour for r in runs)
        cpu = statistics.median(r.cpu_ms_per_gateway_minute for r in runs)
        rss = statistics.median(r.rss_mb for r in runs)
        print(f"| {name} | {rph:.0f} | {cpu:.1f} | {rss:.1f} |", flush=True)


if __name__ == "__main__":
    main()
