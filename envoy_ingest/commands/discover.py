"""``envoy-ingest discover``: probe each gateway; print what it is, its request
plan, and a table of every microinverter and battery."""

from __future__ import annotations

from typing import Any

from envoy_ingest import normalize
from envoy_ingest.commands import Out, print_line
from envoy_ingest.commands.probe import probed, started_tokens
from envoy_ingest.envoy.capabilities import requests_per_hour
from envoy_ingest.errors import EnvoyIngestError
from envoy_ingest.point import Point
from envoy_ingest.settings import Settings
from envoy_ingest.worker.live import live_interval, live_requests_per_hour, plan


def _device_table(points: list[Point]) -> list[str]:
    rows = []
    for p in sorted(points, key=lambda p: (p.measurement, p.tags.get("serial", ""))):
        if p.measurement == "enphase_battery":
            kind = f"battery ({p.tags.get('type', '?')})"
        else:
            kind = "microinverter"
        f = p.fields

        def flag(name: str, f: Any = f) -> str:
            v = f.get(name)
            return "-" if v is None else ("yes" if v else "no")

        power = f.get("power_w")
        soc = f.get("soc_pct")
        rows.append(
            f"  {p.tags.get('serial', '?'):<14} {kind:<18} "
            f"{flag('provisioned'):<5} {flag('communicating'):<5} {flag('producing'):<5} "
            f"{(f'{power:.0f} W' if isinstance(power, float) else '-'):>8} "
            f"{(f'{soc:.0f}%' if isinstance(soc, float) else ''):>5}"
        )
    header = (
        f"  {'serial':<14} {'kind':<18} {'prov':<5} {'comm':<5} {'prod':<5} {'power':>8} {'soc':>5}"
    )
    return [header, *rows]


async def discover(settings: Settings, out: Out = print_line) -> int:
    """Probe each gateway and print what it is and every device on it."""
    status = 0
    async with started_tokens(settings) as tokens:
        for gw in settings.gateways:
            try:
                async with probed(gw, tokens) as (client, info, caps):
                    snap = await client.fetch(caps.devices_paths)
            except EnvoyIngestError as exc:
                out(f"{gw.label}: FAILED: {exc}")
                status = 1
                continue
            points = normalize.devices(snap, caps, 0)
            out(f"{gw.label}: gateway {info.serial}, firmware {info.firmware} at {client.base_url}")
            out(f"  {caps.describe()}")
            rph = requests_per_hour(
                caps, settings.schedule.totals_interval, settings.schedule.devices_interval
            )
            interval = live_interval(gw, settings.schedule) if caps.cts else 0
            out(f"  {plan(caps, live_interval(gw, settings.schedule))}")
            live = live_requests_per_hour(interval)
            of_them = f", {live:.0f} of them live" if live else ""
            out(f"  requests per hour with the current schedule: {rph + live:.0f}{of_them}")
            for line in _device_table(points):
                out(line)
    return status
