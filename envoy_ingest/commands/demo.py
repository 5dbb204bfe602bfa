"""``envoy-ingest demo``: the quick start: simulator + worker + file sink, with a
live summary."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from envoy_ingest.commands import Out, print_line
from envoy_ingest.commands.simulate import plan_site, sim_config
from envoy_ingest.commands.summary import summarize
from envoy_ingest.errors import SettingsError
from envoy_ingest.settings import Settings
from envoy_ingest.worker import Worker


async def demo(args: argparse.Namespace, out: Out = print_line) -> int:
    """The quick start: simulator + worker + file sink, with a live summary."""
    from envoy_ingest.simulator import Simulator

    if args.speed <= 0:
        raise SettingsError("--speed must be positive")
    if not 0 <= args.live <= 59:
        raise SettingsError("--live must be between 1 and 59 seconds (0: off)")
    sim = Simulator(sim_config(args))
    site = plan_site(sim, args)
    sim.start()
    try:
        gateway: dict[str, Any] = {"host": sim.host, "name": "demo"}
        if args.family == "modern":
            gateway["token"] = sim.issue_token(lifetime=365 * 86400, user="owner")
        data_dir: Path = args.data  # made absolute by the CLI
        settings = Settings(
            gateways=[gateway],
            file={"directory": data_dir},
            state={"directory": data_dir / ".state"},
            schedule={
                "totals_interval": max(60.0 / args.speed, 1.0),
                "devices_interval": max(300.0 / args.speed, 1.0),
                "jitter": 0.0,
                "live_interval": args.live,
            },
        )
        out(
            f"simulated {args.family} gateway {sim.serial} at {sim.url}; "
            f"writing line protocol to {data_dir}/YYYY-MM-DD.lp"
        )
        if site is not None:
            out(site)
        out(
            f"totals every {settings.schedule.totals_interval:g} s, devices every "
            f"{settings.schedule.devices_interval:g} s"
            + (f" (time compressed {args.speed:g}x)" if args.speed != 1 else "")
            + (f", live power every {args.live} s" if args.live else "")
            + "; Ctrl-C stops"
        )
        worker = Worker(settings, on_result=lambda r: out(summarize(r)))
        if args.duration is not None:
            asyncio.get_running_loop().call_later(args.duration, worker.stop)
        await worker.run_forever()
    finally:
        sim.stop()
    out("stopped")
    return 0
