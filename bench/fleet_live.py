"""``bench_fleet.py --live N``: a fleet of metered recorded gateways with and
without live reads (see bench_fleet.py's docstring)."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from bench_fleet import cpu_seconds, status_kb, write_settings

from envoy_ingest.simulator.fleet import FleetSimulator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metered(sets: list[Path]) -> list[Path]:
    """The recorded sets with an enabled CT and an /ivp/meters/readings answer."""
    out = []
    for d in sets:
        try:
            meters = json.loads((d / "ivp_meters").read_text())
        except (OSError, ValueError):
            continue
        enabled = isinstance(meters, list) and any(
            isinstance(m, dict) and m.get("state") == "enabled" for m in meters
        )
        if enabled and (d / "ivp_meters_readings").is_file():
            out.append(d)
    return out


def scrape(url: str) -> dict[str, float]:
    """The worker's live counters: ``skipped:<reason>`` and ``reads:<outcome>``."""
    text = httpx.get(url, timeout=30).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        for name, key in (("live_skipped_total", "skipped"), ("live_reads_total", "reads")):
            if line.startswith(f"envoy_ingest_{name}{{"):
                label = line.split('"')[1]
                out[f"{key}:{label}"] = float(line.rsplit(" ", 1)[1])
    return out


@dataclass
class LiveResult:
    cpu_s: float
    gateway_hours: float
    peak_rss_mb: float
    per_gateway_hour: dict[str, float]  # totals, devices, live, as the gateways saw them
    counters: dict[str, float]  # the worker's live counters over the window


def run_live_fleet(
    sets: list[Path], n: int, minutes: float, live: int, warmup: float
) -> LiveResult:
    """``n`` metered gateways at the default schedule and ``live_interval = live``."""
    with (
        tempfile.TemporaryDirectory() as tmpdir,
        FleetSimulator(sets, n) as fleet,
    ):
        tmp = Path(tmpdir)
        settings = tmp / "settings.toml"
        port = free_port()
        write_settings(settings, fleet, tmp, 1.0, live, f"127.0.0.1:{port}")
        exe = Path(sys.executable).parent / "envoy-ingest"
        proc = subprocess.Popen([str(exe), "run", "-c", str(settings)])
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        try:
            time.sleep(warmup)
            counts0 = [dict(g.by_path) for g in fleet.gateways]
            t0, cpu0, m0 = time.monotonic(), cpu_seconds(proc.pid), scrape(metrics_url)
            time.sleep(minutes * 60)
            t1, cpu1, m1 = time.monotonic(), cpu_seconds(proc.pid), scrape(metrics_url)
            counts1 = [dict(g.by_path) for g in fleet.gateways]
            peak = status_kb(proc.pid, "VmHWM")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    hours = n * (t1 - t0) / 3600

    def delta(path: str) -> int:
        return sum(
            c1.get(path, 0) - c0.get(path, 0) for c0, c1 in zip(counts0, counts1, strict=True)
        )

    totals = delta("/production.json") + delta("/api/v1/production")
    devices = delta("/inventory.json")  # every devices cycle reads it
    readings = delta("/ivp/meters/readings") - devices  # the devices cycle's own readings
    return LiveResult(
        cpu_s=cpu1 - cpu0,
        gateway_hours=hours,
        peak_rss_mb=peak / 1024,
        per_gateway_hour={
            "totals": totals / hours,
            "devices": devices / hours,
            "live": max(readings, 0) / hours,
        },
        counters={k: m1.get(k, 0.0) - m0.get(k, 0.0) for k in m1.keys() | m0.keys()},
    )


def main_live(args: argparse.Namespace, sets: list[Path]) -> None:
    sets = metered(sets)
    if not sets:
        sys.exit(f"no recorded metered gateway sets under {args.fixtures}")
    warmup = args.warmup if args.warmup is not None else 300 + 2 * 60
    print(
        "| gateways | live s | skipped: worker_late / gateway_slow / gateway_busy "
        "| live reads ok / error | per gateway-hour: totals, devices, live "
        "| CPU ms per gateway-minute (off -> live) | CPU ms per live read "
        "| peak RSS MB (off -> live) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in (int(x) for x in args.gateways.split(",")):
        base = run_live_fleet(sets, n, args.minutes, 0, warmup)
        run = run_live_fleet(sets, n, args.minutes, args.live, warmup)
        c = run.counters
        ok, err = c.get("reads:ok", 0), c.get("reads:error", 0)
        added = run.cpu_s - base.cpu_s * run.gateway_hours / base.gateway_hours
        per_read = added * 1000 / ok if ok else float("nan")
        h = run.per_gateway_hour
        print(
            f"| {n:,} | {args.live} | {c.get('skipped:worker_late', 0):.0f} / "
            f"{c.get('skipped:gateway_slow', 0):.0f} / {c.get('skipped:gateway_busy', 0):.0f} "
            f"| {ok:.0f} / {err:.0f} | {h['totals']:.1f}, {h['devices']:.1f}, {h['live']:.0f} "
            f"| {base.cpu_s * 1000 / (base.gateway_hours * 60):.2f} -> "
            f"{run.cpu_s * 1000 / (run.gateway_hours * 60):.2f} | {per_read:.3f} "
            f"| {base.peak_rss_mb:.0f} -> {run.peak_rss_mb:.0f} |",
            flush=True,
        )
