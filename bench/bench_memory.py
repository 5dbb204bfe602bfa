"""Memory benchmark: where a worker's memory goes, per gateway and at its base.

Builds the real worker for N gateways of the recorded fleet (the sets of
../shared/fixtures/envoy taken in turn, as ``bench_fleet.py`` serves them):
settings read from a TOML file by ``load_settings``, the ``Worker`` with its
token manager, file sink, pollers, health state and metrics, both jobs of
every gateway in their slots of a (paused) scheduler, then runs two totals cycles and
one devices cycle of every gateway (probe, normalize, energy stage, sink,
metrics, health). No network: each gateway's client is a stand-in that answers
from its recorded set (parsed anew for every request, as a real answer is), so
the HTTP layer is not counted here (``bench_fleet.py`` measures the whole
process). Each measurement runs in a fresh process:

- RSS (VmRSS) after the imports, after the worker is built and after the
  cycles, for 1 gateway (the base) and for N; bytes per gateway =
  (RSS(N) - RSS(1)) / (N - 1); peak RSS (VmHWM);
- with tracemalloc: what the worker and its cycles keep allocated, by source
  file (grouped by package), divided by N.

    .venv/bin/python bench/bench_memory.py --gateways 1000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FIXTURES = Path(os.environ.get("ENVOY_FIXTURES", ROOT.parent / "shared/fixtures/envoy"))


def rss_kb(key: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def fake_token(serial: str, now: float) -> str:
    """An owner JWT as Enphase issues them (not signed: the stand-in gateway accepts it)."""

    def part(obj: dict[str, Any]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    claims: dict[str, Any] = {"aud": serial, "iss": "Entrez", "enphaseUser": "owner"}
    claims |= {"exp": int(now) + 365 * 86400, "iat": int(now)}
    signature = base64.urlsafe_b64encode(os.urandom(64)).rstrip(b"=").decode()
    return f"{part({'kid': 'bench', 'typ': 'JWT', 'alg': 'ES256'})}.{part(claims)}.{signature}"


#: Every path the worker may ask a gateway for (probe and both jobs' plans).
PATHS = (
    "/info",
    "/production.json?details=1",
    "/api/v1/production",
    "/api/v1/production/inverters",
    "/inventory.json?deleted=1",
    "/ivp/meters",
    "/ivp/meters/readings",
    "/ivp/ensemble/inventory",
    "/ivp/ensemble/power",
    "/ivp/pdm/device_data",
)


def write_fleet(tmp: Path, sets: Sequence[Path], n: int) -> tuple[Path, Path]:
    """The settings of a fleet of ``n`` and every set's recorded answers (status,
    text) by path, as JSON: the measured process never imports the simulator."""
    from envoy_ingest.simulator.fixtures import FixtureGateway
    from envoy_ingest.simulator.fleet import fleet_address

    fixtures = [FixtureGateway(d) for d in sets]
    answers = []
    for fixture in fixtures:
        recorded = {}
        for path in PATHS:
            answer = fixture.answer(path)
            recorded[path] = (answer.status, answer.body.decode("utf-8", "replace"))
        answers.append(recorded)
    lines = []
    now = time.time()
    for i in range(n):
        k = i % len(sets)
        scheme = "https" if fixtures[k].modern else "http"
        lines += ["[[gateways]]", f'host = "{scheme}://{fleet_address(i)}:9"']
        if fixtures[k].modern:
            lines.append(f'token = "{fake_token(f"9{i:011d}", now)}"')
    for name in ("data", "state"):
        (tmp / name).mkdir()
    lines += [
        f'[file]\ndirectory = "{tmp}/data"',
        f'[state]\ndirectory = "{tmp}/state"',
        '[log]\nlevel = "error"',
    ]
    settings, recorded_file = tmp / "settings.toml", tmp / "answers.json"
    settings.write_text("\n".join(lines) + "\n")
    recorded_file.write_text(json.dumps(answers))
    return settings, recorded_file


class RecordedClient:
    """Stands in for ``EnvoyClient``: answers one recorded set, under its own serial."""

    def __init__(
        self, answers: dict[str, tuple[int, str]], serial: str, poller: Any, tokens: Any
    ) -> None:
        self.answers, self.serial, self.gw, self.tokens = answers, serial, poller.settings, tokens
        self.last_errors: dict[str, str] = {}
        self.not_found: set[str] = set()
        self.gateway_now: float | None = None
        self.info: Any = None

    async def connect(self, *, deadline: float | None = None, authenticate: bool = True) -> Any:
        from envoy_ingest.envoy.firmware import parse_info

        info = parse_info(self.answers["/info"][1])
        self.info = replace(info, serial=self.serial)
        if self.info.uses_jwt:

            async def accept(token: str) -> bool:
                return True

            await self.tokens.token_for(self.gw, self.serial, accept)
        return self.info

    async def fetch(self, paths: Sequence[str], *, deadline: float | None = None) -> dict[str, Any]:
        from envoy_ingest.telemetry import metrics

        self.last_errors, self.not_found = {}, set()
        snap: dict[str, Any] = {}
        for path in paths:
            status, text = self.answers.get(path, (404, ""))
            metrics.record_request(path, status, 0.3)
            if status != 200:
                self.last_errors[path] = f"HTTP {status}"
                if status == 404:
                    self.not_found.add(path)
                continue
            try:
                snap[path] = json.loads(text)
            except ValueError:
                snap[path] = text
        return snap

    async def aclose(self) -> None:
        return None


def package_of(filename: str) -> str:
    """``.../site-packages/httpx/_client.py`` -> ``httpx``; ours by module folder."""
    if "/envoy_ingest/" in filename:
        return "envoy_ingest/" + filename.split("/envoy_ingest/", 1)[1]
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    return "stdlib/" + filename.rsplit("/", 1)[-1]


async def build_and_run(
    settings_path: Path, recorded: list[dict[str, tuple[int, str]]], keep_http: bool
) -> list[Any]:
    """The worker for the settings, its jobs scheduled, every gateway's first cycles run."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from envoy_ingest.settings import load_settings
    from envoy_ingest.worker import Worker

    settings = load_settings(settings_path)
    stages = [("settings loaded", rss_kb())]
    worker = Worker(settings)
    kept = []
    for i, poller in enumerate(worker.pollers):
        if keep_http:
            kept.append(poller.client)
        poller.client = RecordedClient(  # type: ignore[assignment]
            recorded[i % len(recorded)], f"9{i:011d}", poller, worker.tokens
        )
    await worker.sink.start()
    await worker.tokens.start()
    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
    worker._scheduler = scheduler
    now = time.time()
    for poller in worker.pollers:
        worker.add_gateway_jobs(scheduler, poller, now)
    scheduler.start(paused=True)
    stages.append(("worker built, jobs scheduled", rss_kb()))
    for job in ("totals", "devices", "totals"):
        for poller in worker.pollers:
            await worker.run_job(poller, job)
    gc.collect()
    stages.append(("cycles run", rss_kb()))
    return [worker, scheduler, kept, stages]


def child(args: argparse.Namespace) -> None:
    recorded = json.loads(args.answers.read_text())  # the gateways' side: not measured
    start = rss_kb()
    import envoy_ingest.cli
    import envoy_ingest.commands.run  # noqa: F401 - what `envoy-ingest run` imports

    imported = rss_kb()
    if args.trace:
        tracemalloc.start(args.trace)
        gc.collect()
        before = tracemalloc.take_snapshot()
    kept = asyncio.run(build_and_run(args.settings, recorded, args.keep_http))
    out: dict[str, Any] = {
        "stages": [("python started", start), ("imported", imported), *kept[3]],
        "hwm": rss_kb("VmHWM"),
    }
    if args.trace:
        gc.collect()
        after = tracemalloc.take_snapshot()
        by_file: dict[str, int] = collections.Counter()
        for stat in after.compare_to(before, "filename"):
            by_file[package_of(stat.traceback[0].filename)] += stat.size_diff
        out["by_file"] = dict(by_file)
        if args.trace > 1:  # where in the code (a debugging aid: --frames 8)
            stats = after.compare_to(before, "traceback")[:40]
            out["tracebacks"] = [(s.size_diff, s.traceback.format()) for s in stats]
    print(json.dumps(out))


def measure(n: int, sets: Sequence[Path], args: argparse.Namespace, trace: int = 0) -> Any:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        settings, answers = write_fleet(tmp, sets, n)
        cmd = [sys.executable, __file__, "--child", "--settings", str(settings)]
        cmd += ["--answers", str(answers), "--trace", str(trace)]
        cmd += ["--keep-http"] * args.keep_http
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("--top", type=int, default=25, help="files listed, largest first")
    parser.add_argument(
        "--keep-http", action="store_true", help="also count the idle HTTP client objects"
    )
    parser.add_argument("--frames", type=int, default=1, help="> 1: also show where (tracebacks)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--settings", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--answers", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trace", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from envoy_ingest.simulator.fleet import fixture_sets

    sets = fixture_sets(args.fixtures)
    if not sets:
        sys.exit(f"no recorded gateway sets under {args.fixtures}")
    n = args.gateways
    one, many = (measure(k, sets, args) for k in (1, n))
    print(f"{len(sets)} recorded sets; RSS in MB (VmRSS), 1 gateway and {n:,}:")
    print(f"| stage | 1 gateway | {n:,} gateways | KB per gateway |")
    print("|---|---|---|---|")
    for (stage, a), (_, b) in zip(one["stages"], many["stages"], strict=True):
        print(f"| {stage} | {a / 1024:.1f} | {b / 1024:.1f} | {(b - a) / (n - 1):.1f} |")
    print(f"| peak (VmHWM) | {one['hwm'] / 1024:.1f} | {many['hwm'] / 1024:.1f} | |")
    result = measure(n, sets, args, trace=args.frames)
    traced = result["by_file"]
    total = sum(traced.values())
    print(f"\ntracemalloc: kept by the worker and its cycles, {total / n:,.0f} bytes per gateway")
    print("| file | bytes per gateway |")
    print("|---|---|")
    for name, size in sorted(traced.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"| {name} | {size / n:,.0f} |")
    for size, lines in result.get("tracebacks", []):
        print(f"\n{size / n:,.0f} bytes per gateway:\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
