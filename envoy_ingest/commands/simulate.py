"""``envoy-ingest simulate``: serve a simulated gateway (and its fake cloud)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
from datetime import datetime
from typing import Any

from envoy_ingest.commands import Out, print_line
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


#: ``--site battery``: the grid fails this long after start (s), for this long.
OUTAGE_AFTER, OUTAGE_FOR = 900.0, 1800.0


def sim_config(args: argparse.Namespace, **extra: Any) -> Any:
    from envoy_ingest.simulator import SimulatorConfig

    backup = getattr(args, "site", "default") == "battery"
    return SimulatorConfig(
        start_time=_start_time(args.at),
        family=args.family,
        inverters=args.inverters,
        batteries="iq" if backup else args.batteries,
        battery_count=args.battery_count,
        cts="1phase" if backup and args.cts == "none" else args.cts,
        system_controller=backup,
        generator=backup,
        latency=args.latency,
        time_scale=args.speed,
        tz="local",  # the simulated sun follows the user's clock
        motion=args.motion or bool(getattr(args, "live", 0)),
        **extra,
    )


def plan_site(sim: Any, args: argparse.Namespace) -> str | None:
    """``--site battery``: schedule its outage; a line saying when, else None."""
    if getattr(args, "site", "default") != "battery" or sim.faults is None:
        return None
    start = sim.now() + OUTAGE_AFTER
    sim.faults.outage(start, start + OUTAGE_FOR)
    when = datetime.fromtimestamp(start).strftime("%H:%M")
    return (
        f"battery site: IQ batteries, an IQ System Controller and a standby generator; "
        f"the grid fails at {when} (simulated) for {OUTAGE_FOR / 60:g} minutes"
    )


def simulate(args: argparse.Namespace) -> int:
    from envoy_ingest.simulator import serve_forever

    if args.fixture is not None and not args.fixture.is_dir():
        raise SettingsError(f"--fixture: {args.fixture} is not a directory")
    if args.fleet is not None:
        return _simulate_fleet(args)
    serve_forever(
        sim_config(args, host=args.host, port=args.port, serial=args.serial, fixture=args.fixture),
        prepare=lambda sim: plan_site(sim, args),
    )
    return 0


def _simulate_fleet(args: argparse.Namespace, out: Out = print_line) -> int:
    """``simulate --fleet N --fixture DIR``: N recorded gateways until Ctrl-C or SIGTERM."""
    from envoy_ingest.simulator.fleet import (
        FleetSimulator,
        describe_fleet,
        fixture_sets,
        gateways_toml,
    )

    if args.fixture is None:
        raise SettingsError("--fleet needs --fixture DIR (a directory of recorded gateway sets)")
    if args.fleet < 1:
        raise SettingsError("--fleet must be at least 1")
    if args.speed <= 0:
        raise SettingsError("--speed must be positive")
    sets = fixture_sets(args.fixture)
    if not sets:
        raise SettingsError(f"--fixture: no recorded gateway sets in {args.fixture}")
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        with FleetSimulator(sets, args.fleet, delay_scale=1 / args.speed) as fleet:
            line = describe_fleet(fleet)
            if args.gateways_out is not None:
                fd = os.open(args.gateways_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(gateways_toml(fleet))
                line += f"; [[gateways]] tables (with tokens) in {args.gateways_out}"
            out(line)
            with contextlib.suppress(KeyboardInterrupt):
                while not stop.wait(0.5):
                    pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
