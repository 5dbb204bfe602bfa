"""Per-poll CPU of what the worker does with a gateway's answers once it has
them: normalize, the time check, the energy stage, the gateway/site tags and
the file sink's submit (one fsynced append per batch), for each recorded set of
``../shared/fixtures/envoy``. HTTP and JSON parsing are left out (parsed once).

Every set is polled as one gateway of a worker: a totals poll every minute and
a devices poll every fifth, the points' times moved on by 60 s each poll (the
recorded answers never change, so the counters stand still: the common case),
the energy state flushed every 300 s of that simulated time, as the worker
does. Reported: the median over the repeats of the mean CPU time
(``time.process_time``, user + system) per totals poll and per devices poll,
for each set and over all sets.

    .venv/bin/python bench/bench_pipeline.py [--polls 200] [--repeat 5] [--sets A,B]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.fixtures_io: the recorded sets as the client reads them

from envoy_ingest import normalize  # noqa: E402
from envoy_ingest.energy.stage import EnergyStage  # noqa: E402
from envoy_ingest.energy.store import EnergyStore, state_path  # noqa: E402
from envoy_ingest.envoy.capabilities import Capabilities  # noqa: E402
from envoy_ingest.gateway import GatewaySettings  # noqa: E402
from envoy_ingest.point import Kind  # noqa: E402
from envoy_ingest.sink.file import FileSink  # noqa: E402
from envoy_ingest.worker.poller import GatewayPoller  # noqa: E402
from tests import fixtures_io  # noqa: E402
from tests.conftest import FIXTURES_ROOT, fixture_sets  # noqa: E402

T0 = 1_764_456_600  # 2025-11-29 22:50 UTC: the polls cross local (Berlin) and UTC midnight


class _Client:
    """What the poller's time check and tags read from its client."""

    gateway_now: float | None = None


@dataclasses.dataclass
class Recorded:
    name: str
    caps: Capabilities
    serial: str
    snaps: dict[Kind, dict[str, Any]]
    first: dict[Kind, int]  # the latest report time in the recorded answer


def load(name: str) -> Recorded | None:
    directory = FIXTURES_ROOT / name
    if not (directory / "info").is_file():
        return None
    caps = fixtures_io.capabilities(directory)
    snaps: dict[Kind, dict[str, Any]] = {
        "totals": fixtures_io.totals_snapshot(directory, caps),
        "devices": fixtures_io.devices_snapshot(directory, caps),
    }
    first: dict[Kind, int] = {}
    for job in ("totals", "devices"):
        points = _normalizer(job)(snaps[job], caps, T0)
        first[job] = max((p.time for p in points if p.time != T0), default=T0)
    return Recorded(name, caps, fixtures_io.info(directory).serial, snaps, first)


def _normalizer(job: Kind) -> Any:
    return normalize.totals if job == "totals" else normalize.devices


def gateway(
    rec: Recorded, serial: str, name: str, directory: Path, sink: FileSink, now: list[float]
) -> GatewayPoller:
    """A poller of the recorded set ``rec`` (as ``serial``), its clock ``now[0]``."""
    settings = GatewaySettings(host="127.0.0.1", name=name, serial=serial, timezone="Europe/Berlin")
    poller = GatewayPoller(
        settings,
        _Client(),  # type: ignore[arg-type]
        sink,
        clock=lambda: now[0],
        state_dir=directory,
    )
    store = EnergyStore(state_path(directory, serial), flush_interval=300.0, clock=lambda: now[0])
    poller.energy = EnergyStage(store, settings.zone, label=settings.label)
    return poller


def poll(rec: Recorded, poller: GatewayPoller, job: Kind, k: int) -> float:
    """One poll of minute ``k`` after the fetch; its CPU seconds."""
    now = T0 + 60 * k
    shift = now - rec.first[job]
    t0 = time.process_time()
    points = _normalizer(job)(rec.snaps[job], rec.caps, now)
    t1 = time.process_time()
    # Not measured: the recorded answer made into this minute's answer.
    # Points at ``now`` (no report time in the answer) stay there.
    points = [p if p.time == now else dataclasses.replace(p, time=p.time + shift) for p in points]
    t2 = time.process_time()
    # GatewayPoller.poll from here on: time check, energy stage, tags, sink.
    kept = poller._plausible(job, points)
    if hasattr(poller, "_gateway_tags"):
        tagged = poller._energy(kept, poller._gateway_tags())  # tagged there
    else:  # before the energy stage tagged the points (to measure older trees the same way)
        tagged = poller._tag(poller._energy(kept))  # type: ignore[call-arg]
    if tagged:
        poller.sink.submit(tagged)
    return (t1 - t0) + (time.process_time() - t2)


def run(rec: Recorded, polls: int, directory: Path) -> dict[Kind, list[float]]:
    """CPU seconds of each totals and devices poll of ``polls`` simulated minutes."""
    now = [float(T0)]
    poller = gateway(rec, rec.serial, "bench", directory, FileSink(directory / "data"), now)
    cpu: dict[Kind, list[float]] = {"totals": [], "devices": []}
    for k in range(polls):
        now[0] = T0 + 60.0 * k
        for job in ("totals", "devices") if k % 5 == 0 else ("totals",):
            cpu[job].append(poll(rec, poller, job, k))
    return cpu


async def run_fleet(
    recorded: list[Recorded], gateways: int, minutes: int, directory: Path
) -> float:
    """CPU seconds per gateway-minute of ``gateways`` gateways (the recorded sets
    in turn) polled round robin, as a worker's fleet is: every gateway's totals
    each minute, its devices every fifth (spread over the minutes), one file
    sink for all, in an event loop (so the sink fsyncs as the worker's does).
    Between two polls of a gateway every other gateway is polled: its state and
    its strings are no longer in the CPU's caches."""
    now = [float(T0)]
    sink = FileSink(directory / "data")
    fleet = [
        (rec, gateway(rec, f"{rec.serial}{i:05d}", f"site {i}", directory, sink, now))
        for i in range(gateways)
        for rec in [recorded[i % len(recorded)]]
    ]
    cpu = 0.0
    for k in range(minutes):
        now[0] = T0 + 60.0 * k
        for i, (rec, poller) in enumerate(fleet):
            for job in ("totals", "devices") if (k + i) % 5 == 0 else ("totals",):
                cpu += poll(rec, poller, job, k)
        await asyncio.sleep(0)  # the sink's deferred fsync runs when due
    await sink.close()
    return cpu / (gateways * minutes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--polls", type=int, default=200, help="simulated minutes per set")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sets", default="", help="comma-separated set names (default: all)")
    parser.add_argument(
        "--fleet", type=int, default=0, help="also: this many gateways polled round robin"
    )
    parser.add_argument("--fleet-minutes", type=int, default=20)
    args = parser.parse_args()
    names = args.sets.split(",") if args.sets else fixture_sets()
    recorded = [r for n in names if (r := load(n)) is not None]
    if not recorded:
        sys.exit(f"no recorded gateway sets under {FIXTURES_ROOT}")
    # per set and job: one mean per repeat (microseconds per poll)
    means: dict[tuple[str, Kind], list[float]] = {}
    for _ in range(args.repeat):
        for rec in recorded:
            with tempfile.TemporaryDirectory() as tmp:
                cpu = run(rec, args.polls, Path(tmp))
            for job, values in cpu.items():
                means.setdefault((rec.name, job), []).append(statistics.fmean(values) * 1e6)
    print(
        f"CPU per poll (normalize + time check + energy + tags + file sink), microseconds, "
        f"median of {args.repeat} repeats of {args.polls} simulated minutes:"
    )
    print(f"  {'set':40} {'totals':>8} {'devices':>8}")
    for rec in recorded:
        t = statistics.median(means[(rec.name, "totals")])
        d = statistics.median(means[(rec.name, "devices")])
        print(f"  {rec.name:40} {t:8.0f} {d:8.0f}")
    overall = {
        job: statistics.median(
            statistics.fmean(means[(rec.name, job)][i] for rec in recorded)
            for i in range(args.repeat)
        )
        for job in ("totals", "devices")
    }
    print(f"  {'all sets (mean per poll)':40} {overall['totals']:8.0f} {overall['devices']:8.0f}")
    per_minute = overall["totals"] + overall["devices"] / 5
    print(f"  per gateway-minute (a totals poll + a fifth of a devices poll): {per_minute:.0f} us")
    if args.fleet:
        fleet = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                fleet.append(
                    asyncio.run(run_fleet(recorded, args.fleet, args.fleet_minutes, Path(tmp)))
                )
        print(
            f"  cold caches: {args.fleet} gateways polled round robin for {args.fleet_minutes} "
            f"minutes: {statistics.median(fleet) * 1e6:.0f} us per gateway-minute "
            f"(median of {args.repeat})"
        )


if __name__ == "__main__":
    main()
