"""What each CLI command does, once its arguments and settings are read."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from envoy_ingest import normalize
from envoy_ingest.envoy.capabilities import Capabilities, detect, probe_paths, requests_per_hour
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.firmware import GatewayInfo
from envoy_ingest.envoy.token_command import token_command
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.errors import EnvoyIngestError, SettingsError
from envoy_ingest.point import Point
from envoy_ingest.settings import GatewaySettings, Settings
from envoy_ingest.sink import check_sink
from envoy_ingest.worker import CycleResult, Worker
from envoy_ingest.worker.scheduler import SettingsLoader
from envoy_ingest.worker.summary import summarize

Out = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


async def run(
    settings: Settings,
    *,
    once: bool,
    summary: bool,
    drain_timeout: float = 30.0,
    out: Out = _print,
    reload: SettingsLoader | None = None,
) -> int:
    on_result: Callable[[CycleResult], None] | None = None
    if summary:

        def on_result(result: CycleResult) -> None:
            out(summarize(result))

    worker = Worker(settings, on_result=on_result, reload=reload)
    if once:
        return await worker.run_once(drain_timeout)
    await worker.run_forever()
    return 0


def _start_time(at: str | None) -> float | None:
    """``"11:00"`` -> today's 11:00 local time as a Unix time; ``None`` -> now."""
    if at is None:
        return None
    try:
        clock = datetime.strptime(at, "%H:%M").time()
    except ValueError:
        raise SettingsError(f"--at: {at!r} is not a time of day like 11:00") from None
    return datetime.combine(datetime.now().date(), clock).timestamp()


def _sim_config(args: argparse.Namespace, **extra: Any) -> Any:
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
        _sim_config(args, host=args.host, port=args.port, serial=args.serial, fixture=args.fixture)
    )
    return 0


async def demo(args: argparse.Namespace, out: Out = _print) -> int:
    """The quick start: simulator + worker + file sink, with a live summary."""
    from envoy_ingest.simulator import Simulator

    if args.speed <= 0:
        raise SettingsError("--speed must be positive")
    sim = Simulator(_sim_config(args))
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
            },
        )
        out(
            f"simulated {args.family} gateway {sim.serial} at {sim.url}; "
            f"writing line protocol to {data_dir}/YYYY-MM-DD.lp"
        )
        out(
            f"totals every {settings.schedule.totals_interval:g} s, devices every "
            f"{settings.schedule.devices_interval:g} s"
            + (f" (time compressed {args.speed:g}x)" if args.speed != 1 else "")
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


@contextlib.asynccontextmanager
async def _probed(
    gw: GatewaySettings, tokens: TokenManager
) -> AsyncIterator[tuple[EnvoyClient, GatewayInfo, Capabilities]]:
    """A connected client with the gateway's identity and capabilities; closed after."""
    client = EnvoyClient(gw, tokens)
    try:
        info = await client.connect()
        caps = detect(info, await client.fetch(probe_paths(info)))
        yield client, info, caps
    finally:
        await client.aclose()


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


async def discover(settings: Settings, out: Out = _print) -> int:
    """Probe each gateway and print what it is and every device on it."""
    status = 0
    tokens = TokenManager(settings)
    await tokens.start()
    try:
        for gw in settings.gateways:
            try:
                async with _probed(gw, tokens) as (client, info, caps):
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
            out(f"  requests per hour with the current schedule: {rph:.0f}")
            for line in _device_table(points):
                out(line)
    finally:
        await tokens.aclose()
    return status


async def check(settings: Settings, out: Out = _print) -> int:
    """Settings are valid (we got here); reach every gateway and the sink."""
    status = 0
    out("settings: ok")
    tokens = TokenManager(settings)
    await tokens.start()
    try:
        for gw in settings.gateways:
            try:
                async with _probed(gw, tokens) as (client, info, caps):
                    path = caps.totals_paths[0]
                    await client.get(path)
                    out(
                        f"gateway {gw.label}: ok: {info.serial}, firmware {info.firmware}, "
                        f"{client.scheme}, {client.auth_description}; {path} answered"
                    )
            except EnvoyIngestError as exc:
                out(f"gateway {gw.label}: FAILED: {exc}")
                status = 1
    finally:
        await tokens.aclose()
    for ok, line in await check_sink(settings):
        out(("sink: ok: " if ok else "sink: FAILED: ") + line)
        if not ok:
            status = 1
    return status


async def token(settings: Settings, *, gateway: str | None, show: bool, out: Out = _print) -> int:
    return await token_command(settings, gateway, show, out=out)
