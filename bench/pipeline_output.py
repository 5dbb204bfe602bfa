"""What the worker writes for every recorded set over many simulated minutes:
the file sink's ``.lp`` files and the energy state file, through
``GatewayPoller.poll`` with a client that answers from the recorded set. Run it
on two trees and compare the outputs byte for byte (a speed-up must not change
a byte)::

    .venv/bin/python bench/pipeline_output.py --root /work/main --out /tmp/a
    .venv/bin/python bench/pipeline_output.py --out /tmp/b
    diff -r /tmp/a /tmp/b

A totals poll every minute, a devices poll every fifth. The recorded answers'
report times move on by 60 s a minute and their energies grow, with a reboot
(every energy 0 for five minutes), a glitch (one minute at half) and a
gateway clock that jumps a year ahead for three minutes, so that counters,
days, corrections, events and the time check all do their work.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path
from typing import Any

T0 = 1_764_456_600  # 2025-11-29 22:50 UTC: the polls cross local (Berlin) and UTC midnight
_TIMES = frozenset({"readingTime", "lastReportDate", "last_rpt_date", "endDate", "timestamp"})
_ENERGIES = frozenset(
    {
        "whLifetime",
        "wattHoursLifetime",
        "joulesProduced",
        "actEnergyDlvd",
        "actEnergyRcvd",
        "whToday",
        "whLastSevenDays",
        "wattHoursToday",
        "wattHoursSevenDays",
    }
)
_REBOOT = range(700, 705)
_GLITCH = 800
_FUTURE = range(1000, 1003)
_YEAR = 365 * 86400


def _moved(value: Any, minute: int, first: int) -> Any:
    """The recorded answer as it would read ``minute`` minutes after ``T0``."""
    if isinstance(value, list):
        return [_moved(v, minute, first) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, v in value.items():
        number = isinstance(v, int | float) and not isinstance(v, bool)
        if key in _TIMES and number and v > 0:
            shift = T0 + 60 * minute - first + (_YEAR if minute in _FUTURE else 0)
            out[key] = v + shift
        elif key in _ENERGIES and number:
            grown = v + 1.5 * minute
            out[key] = 0 if minute in _REBOOT else grown / 2 if minute == _GLITCH else grown
        else:
            out[key] = _moved(v, minute, first)
    return out


def _first_time(value: Any) -> int:
    """The latest report time in a recorded answer."""
    if isinstance(value, list):
        return max((_first_time(v) for v in value), default=0)
    if not isinstance(value, dict):
        return 0
    best = 0
    for key, v in value.items():
        if key in _TIMES and isinstance(v, int | float) and not isinstance(v, bool):
            best = max(best, int(v))
        else:
            best = max(best, _first_time(v))
    return best


class _Client:
    """What the poller reads from its client, answering from the recorded set."""

    def __init__(self) -> None:
        self.gateway_now: float | None = None
        self.last_errors: dict[str, str] = {}
        self.not_found: set[str] = set()
        self.answer: dict[str, Any] = {}
        self.info: Any = None

    async def connect(self, deadline: float | None = None) -> Any:
        return self.info  # after a failed poll: the same gateway

    async def fetch(self, paths: Any, deadline: float | None = None) -> dict[str, Any]:
        return {p: self.answer[p] for p in paths if p in self.answer}


async def run_set(name: str, minutes: int, out: Path, ns: Any) -> None:
    directory = ns.FIXTURES_ROOT / name
    if not (directory / "info").is_file():
        return
    info, _, caps = ns.fixtures_io.probed(directory)
    paths = (*caps.totals_paths, *caps.totals_extra_paths)
    answers = ns.fixtures_io.snapshot(
        directory, [*paths, *caps.devices_paths, *caps.devices_extra_paths]
    )
    first = _first_time(answers) or T0
    now = [float(T0)]
    settings = ns.GatewaySettings(
        host="127.0.0.1", name="out", serial=info.serial, timezone="Europe/Berlin"
    )
    client = _Client()
    client.info = info
    target = out / name
    poller = ns.GatewayPoller(
        settings,
        client,
        ns.FileSink(target / "data"),
        clock=lambda: now[0],
        steady=lambda: 0.0,
        state_dir=target,
    )
    poller.info, poller.caps, poller._reconnect = info, caps, False
    store = ns.EnergyStore(
        ns.state_path(target, info.serial), flush_interval=300.0, clock=lambda: now[0]
    )
    poller.energy = ns.EnergyStage(store, settings.zone, label="out")
    for minute in range(minutes):
        now[0] = T0 + 60.0 * minute
        client.answer = _moved(answers, minute, first)
        for job in ("totals", "devices") if minute % 5 == 0 else ("totals",):
            await poller.poll(job)
    poller.flush_state()
    await poller.sink.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=int, default=1500)
    parser.add_argument("--sets", default="", help="comma-separated set names (default: all)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.root.resolve()))
    ns = argparse.Namespace()
    for module, names in (
        ("envoy_ingest.energy.stage", ["EnergyStage"]),
        ("envoy_ingest.energy.store", ["EnergyStore", "state_path"]),
        ("envoy_ingest.settings", ["GatewaySettings"]),
        ("envoy_ingest.sink.file", ["FileSink"]),
        ("envoy_ingest.worker.poller", ["GatewayPoller"]),
        ("tests.conftest", ["FIXTURES_ROOT", "fixture_sets"]),
    ):
        loaded = importlib.import_module(module)
        for n in names:
            setattr(ns, n, getattr(loaded, n))
    ns.fixtures_io = importlib.import_module("tests.fixtures_io")
    names = args.sets.split(",") if args.sets else ns.fixture_sets()
    for name in names:
        asyncio.run(run_set(name, args.minutes, args.out, ns))
    print(f"wrote {args.out} from {sys.modules['envoy_ingest'].__file__}")


if __name__ == "__main__":
    main()
