"""Client CPU per request to a gateway: EnvoyClient.fetch, as the worker polls.

The simulator's fleet mode serves three recorded gateways in another process
(answer times divided by 100,000: this measures the client, not the waiting);
this process drives ``EnvoyClient.fetch`` for each gateway's totals paths and
devices paths (as detected by the worker's probe), ``--polls`` polls of each
kind per repeat. Reported per gateway: the median over ``--repeat`` repeats of
this process's CPU (``time.process_time``: user + system) per request, per totals poll and per
devices poll. The simulator's CPU is not counted.

    .venv/bin/python bench/bench_requests.py [--polls 200] [--repeat 5] [--loop auto]

The event loop is the worker's (``event_loop = "auto"``: uvloop where installed).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from envoy_ingest.envoy.capabilities import detect, probe_paths
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.eventloop import loop_factory
from envoy_ingest.settings import GatewaySettings, Settings

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "envoy"
SETS = ("5.0.62", "7.6.175_with_cts", "8.2.4345_with_device_data")


def _serve(sets_dir: Path, out: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "envoy-ingest"
    command = [str(exe), "simulate", "--fleet", str(len(SETS)), "--fixture", str(sets_dir)]
    command += ["--gateways-out", str(out), "--speed", "100000", "--log-level", "warning"]
    sim = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
    )
    for _ in range(300):
        if out.exists() and out.stat().st_size:
            return sim
        if sim.poll() is not None:
            raise SystemExit("the simulator stopped")
        time.sleep(0.1)
    sim.terminate()
    raise SystemExit("the simulator wrote no gateways file")


async def _measure(
    gw: GatewaySettings, state: Path, polls: int, repeat: int
) -> tuple[str, dict[str, float]]:
    tokens = TokenManager(Settings(gateways=[gw], state={"directory": state}))
    loop = asyncio.get_running_loop()
    async with EnvoyClient(gw, tokens) as client:
        info = await client.connect(deadline=loop.time() + 30)
        caps = detect(info, await client.fetch(probe_paths(info), deadline=loop.time() + 30))
        result: dict[str, float] = {}
        per_request: list[float] = []
        for kind, paths in (("totals", caps.totals_paths), ("devices", caps.devices_paths)):
            per_poll: list[float] = []
            for _ in range(repeat):
                started = time.process_time()
                for _ in range(polls):
                    snap = await client.fetch(paths, deadline=loop.time() + 30)
                    if len(snap) != len(paths):
                        raise SystemExit(f"{gw.label}: {client.last_errors}")
                cpu = (time.process_time() - started) / polls
                per_poll.append(cpu)
                per_request.append(cpu / len(paths))
            result[kind] = statistics.median(per_poll)
        result["request"] = statistics.median(per_request)
    await tokens.aclose()
    counts = f"{len(caps.totals_paths)} + {len(caps.devices_paths)}"
    return f"{info.firmware} ({counts} paths)", result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=200, help="polls of each kind per repeat")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--loop", choices=("auto", "uvloop", "asyncio"), default="auto", help="as event_loop"
    )
    args = parser.parse_args()
    loop_name, factory = loop_factory(args.loop)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "sets").mkdir()
        for name in SETS:
            (tmp / "sets" / name).symlink_to(FIXTURES / name)
        sim = _serve(tmp / "sets", tmp / "gateways.toml")
        try:
            tables = tomllib.loads((tmp / "gateways.toml").read_text())["gateways"]
            print(
                f"CPU (user + system) of the client, µs, median of {args.repeat} repeats "
                f"of {args.polls} polls each, on {loop_name}"
            )
            print(
                f"{'gateway':>30}  {'per request':>11}  {'per totals poll':>15}  "
                f"{'per devices poll':>16}"
            )
            for table in tables:
                gw = GatewaySettings(**table)
                with asyncio.Runner(loop_factory=factory) as runner:
                    name, r = runner.run(_measure(gw, tmp / "state", args.polls, args.repeat))
                print(
                    f"{name:>30}  {r['request'] * 1e6:11.0f}  {r['totals'] * 1e6:15.0f}  "
                    f"{r['devices'] * 1e6:16.0f}"
                )
        finally:
            sim.terminate()
            sim.wait()


if __name__ == "__main__":
    main()
