"""``envoy-ingest simulate``: serve a simulated gateway (and its fake cloud)."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from envoy_ingest.errors import SettingsError


def _start_time(at: str | None) -> float | None:
    """``"11:00"`` -> today's 11:00 local time as a Unix time; ``None`` -> now."""
    if at is None:
        return None
    try:
        clock = datetime.strptime(at, "%H:%M").time()
    except ValueError:
        raise SettingsError(f"--at: {at!r} is not a time of day like 11:00") from None
    return datetime.combine(datetime.now().date(), clock).timestamp()


def sim_config(args: argparse.Namespace, **extra: Any) -> Any:
    from envoy_ingest.simulator import SimulatorConfig

    return SimulatorConfig(
        start_time=_start_time(args.at),
        family=args.family,
        inverters=args.inverters,
        batteries=args.batteries,
        battery_count=args.battery_count,
        cts=args.cts,
        latency=args.latency,
        time_scale=args.speed,
        tz="local",  # the simulated sun follows the user's clock
        **extra,
    )


def simulate(args: argparse.Namespace) -> int:
    from envoy_ingest.simulator import serve_forever

    if args.fixture is not None and not args.fixture.is_dir():
        raise SettingsError(f"--fixture: {args.fixture} is not a directory")
    serve_forever(
        sim_config(args, host=args.host, port=args.port, serial=args.serial, fixture=args.fixture)
    )
    return 0
