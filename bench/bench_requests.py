"""Client CPU per request to a gateway: EnvoyClient.fetch, as the worker polls.

The simulator's fleet mode serves three recorded gateways in another process
(answer times divided by 100,000: this measures the client, not the waiting);
this process drives ``EnvoyClient.fetch`` for each gateway's totals paths and
devices paths (as detected by the worker's probe), ``--polls`` polls of each
kind per repeat, the gateways taking turns. Reported per gateway: the median
over ``--repeat`` repeats of this process's CPU (``time.process_time``: user +
system) per request, per totals poll and per devices poll. The simulator's CPU
is not counted.

``--parser`` chooses what reads the answers off the sockets: ``llhttp`` (the
worker's own, :func:`envoy_ingest.envoy.wire.read_answer`), ``h11``, or
``hand`` (the hand-written reader the worker had before, the baseline); the
default, ``all``, measures the three in one run, taking turns within each
repeat (so the machine's noise hits all alike), with each one's change
against ``hand`` (the median, over the repeats, of its CPU over hand's in the
same repeat). The readers other than the worker's are in answer_readers.py.

    .venv/bin/python bench/bench_requests.py [--polls 100] [--repeat 11] [--loop auto]
        [--parser all]

The event loop is the worker's (``event_loop = "auto"``: uvloop where installed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from answer_readers import read_answer_h11, read_answer_hand

from envoy_ingest.envoy import http11, wire
from envoy_ingest.envoy.capabilities import detect, probe_paths
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.eventloop import loop_factory
from envoy_ingest.settings import GatewaySettings, Settings

FIXTURES = Path(
    os.environ.get(
        "ENVOY_FIXTURES", Path(__file__).resolve().parent.parent.parent / "shared/fixtures/envoy"
    )
)
SETS = ("5.0.62", "7.6.175_with_cts", "8.2.4345_with_device_data")
READERS = {"llhttp": wire.read_answer, "h11": read_answer_h11, "hand": read_answer_hand}


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


def _read_with(reader: Callable[..., Any]) -> None:
    """Make ``reader`` what every GatewayConnection reads its answers with."""
    http11.read_answer = reader  # type: ignore[attr-defined]


async def _measure(
    tables: list[dict[str, Any]], state: Path, polls: int, repeat: int, parsers: list[str]
) -> None:
    loop = asyncio.get_running_loop()
    gateways = []
    for table in tables:
        gw = GatewaySettings(**table)
        client = EnvoyClient(gw, TokenManager(Settings(gateways=[gw], state={"directory": state})))
        info = await client.connect(deadline=loop.time() + 30)
        caps = detect(info, await client.fetch(probe_paths(info), deadline=loop.time() + 30))
        gateways.append((client, info, caps.totals_paths, caps.devices_paths))
    # [gateway][parser][repeat] -> (CPU of the totals polls, CPU of the devices polls)
    cpu: list[dict[str, list[tuple[float, float]]]] = [{p: [] for p in parsers} for _ in gateways]
    for turn in range(repeat):  # the gateways and parsers take turns: noise hits all alike
        for i, (client, _, totals, devices) in enumerate(gateways):
            for k in range(len(parsers)):
                parser = parsers[(turn + k) % len(parsers)]  # each goes first as often
                _read_with(READERS[parser])
                spent = []
                for paths in (totals, devices):
                    started = time.process_time()
                    for _ in range(polls):
                        snap = await client.fetch(paths, deadline=loop.time() + 30)
                        if len(snap) != len(paths):
                            raise SystemExit(f"{client.label}: {client.last_errors}")
                    spent.append(time.process_time() - started)
                cpu[i][parser].append((spent[0], spent[1]))
    _read_with(wire.read_answer)
    for (client, info, totals, devices), by_parser in zip(gateways, cpu, strict=True):
        requests = polls * (len(totals) + len(devices))
        name = f"{info.firmware} ({len(totals)} + {len(devices)} paths)"
        hand = by_parser.get("hand")
        for parser, runs in by_parser.items():
            per_request = statistics.median((t + d) / requests for t, d in runs)
            per_totals = statistics.median(t / polls for t, _ in runs)
            per_devices = statistics.median(d / polls for _, d in runs)
            change = ""
            if hand is not None:  # paired: this parser's CPU over hand's in the same repeat
                ratios = [(t + d) / (th + dh) for (t, d), (th, dh) in zip(runs, hand, strict=True)]
                change = f"{(statistics.median(ratios) - 1) * 100:+8.1f} %"
            print(
                f"{name:>30}  {parser:>6}  {per_request * 1e6:11.0f}  {per_totals * 1e6:15.0f}  "
                f"{per_devices * 1e6:16.0f}  {change:>10}"
            )
            name = ""
        await client.aclose()
        await client.tokens.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=100, help="polls of each kind per repeat")
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument(
        "--loop", choices=("auto", "uvloop", "asyncio"), default="auto", help="as event_loop"
    )
    parser.add_argument(
        "--parser",
        choices=("all", *READERS),
        default="all",
        help="what reads the answers (all: the three, taking turns)",
    )
    args = parser.parse_args()
    parsers = list(READERS) if args.parser == "all" else [args.parser]
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
                f"of {args.polls} polls of each kind, on {loop_name}"
            )
            print(
                f"{'gateway':>30}  {'parser':>6}  {'per request':>11}  {'per totals poll':>15}  "
                f"{'per devices poll':>16}  {'vs hand':>10}"
            )
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(_measure(tables, tmp / "state", args.polls, args.repeat, parsers))
        finally:
            sim.terminate()
            sim.wait()


if __name__ == "__main__":
    main()
