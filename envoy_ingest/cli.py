"""The command line: ``envoy-ingest run | demo | discover | check | token | simulate``.

Exit codes: 0 success; 1 a gateway or sink failed (``run --once``, ``check``);
2 a bad setting or bad arguments (one clear line, no traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from envoy_ingest import __version__, eventloop
from envoy_ingest.errors import EnvoyIngestError, SettingsError
from envoy_ingest.settings import Settings, load_settings
from envoy_ingest.shard import parse_shard

log = logging.getLogger("envoy_ingest")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _common(parser: argparse.ArgumentParser, *, config: bool = True) -> None:
    if config:
        parser.add_argument(
            "-c",
            "--config",
            type=Path,
            metavar="FILE",
            help="settings file (default: ./settings.toml, then /etc/envoy-ingest/settings.toml)",
        )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: [log].level, info)",
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="log line format (default: [log].format, text)",
    )


def _sim_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--site",
        choices=["default", "battery"],
        default="default",
        help="battery: IQ batteries with an IQ System Controller and a standby generator, "
        "and a grid outage from 15 to 45 simulated minutes after start",
    )
    parser.add_argument(
        "--family",
        choices=["legacy", "modern"],
        default="modern",
        help="legacy: firmware < 7, http + digest auth; modern: firmware >= 7, https + JWT",
    )
    parser.add_argument("--inverters", type=int, default=16, help="number of microinverters")
    parser.add_argument(
        "--batteries", choices=["none", "acb", "iq"], default="iq", help="kind of battery"
    )
    parser.add_argument("--battery-count", type=int, default=2, help="number of batteries")
    parser.add_argument(
        "--cts", choices=["none", "1phase", "3phase"], default="1phase", help="current transformers"
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every response"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="compress time: the simulated clock runs this many times faster",
    )
    parser.add_argument(
        "--motion",
        action="store_true",
        help="readings move every second (clouds pass, a load steps), as live data shows",
    )
    parser.add_argument(
        "--at",
        metavar="HH:MM",
        help="start the simulated clock at this local time today (default: now; "
        "at night the panels produce nothing, try --at 11:00)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="envoy-ingest",
        description="Poll Enphase Envoy / IQ Gateways and write their data to InfluxDB.",
    )
    parser.add_argument("--version", action="version", version=f"envoy-ingest {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="poll the configured gateways on schedule")
    _common(p)
    p.add_argument(
        "--once",
        action="store_true",
        help="run every job once, deliver, and exit (0 ok, 1 if any gateway or delivery failed)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="with --once: how long to wait for InfluxDB to take what is spooled (default 30)",
    )
    p.add_argument(
        "--summary", action="store_true", help="print one line per cycle with the main values"
    )
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="poll only shard I of N (from 0) of the gateways; auto/N takes I from the host "
        "name's trailing number (a StatefulSet pod's); default: ENVOY_INGEST_SHARD, else all",
    )

    p = sub.add_parser(
        "demo",
        help="run the built-in simulator and the worker together, writing to local files",
        description="The quick start: a simulated gateway, the worker polling it, and "
        "line-protocol files under --data. Ctrl-C stops both.",
    )
    _common(p, config=False)
    _sim_options(p)
    p.add_argument("--data", type=Path, default=Path("./data"), help="directory for the .lp files")
    p.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds (default: never)"
    )
    p.add_argument(
        "--live",
        type=int,
        default=0,
        metavar="SECONDS",
        help="also read live power every SECONDS (1 to 59; the simulator's readings then "
        "move every second)",
    )

    p = sub.add_parser(
        "discover",
        help="probe each gateway: firmware, serial, metering, CTs, every device and its status",
    )
    _common(p)

    p = sub.add_parser(
        "check",
        help="validate settings, reach each gateway and the sink; non-zero exit on any failure",
    )
    _common(p)

    p = sub.add_parser(
        "token",
        help="fetch or refresh the JWT of firmware >= 7 gateways now and show its expiry",
    )
    _common(p)
    p.add_argument("--gateway", help="only this gateway (its name, serial or host)")
    p.add_argument("--show", action="store_true", help="also print the token itself")

    p = sub.add_parser(
        "replay",
        help="deliver what a damaged spool file (moved aside as *.corrupt-*) still holds",
        description="Reads the intact rows of a spool file that was moved aside because it "
        "was damaged, and delivers them to the [influxdb] of the settings. Safe to run "
        "beside the worker and to run again.",
    )
    _common(p)
    p.add_argument("file", type=Path, help="the spool file, e.g. spool.sqlite.corrupt-...")
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to keep trying to deliver (default 60); run again to go on",
    )

    p = sub.add_parser("simulate", help="serve a simulated gateway (and Enphase cloud)")
    _common(p, config=False)
    _sim_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    p.add_argument("--serial", default="122238082690", help="the gateway's serial number")
    p.add_argument(
        "--fixture",
        type=Path,
        help="serve a recorded gateway directory (layout of shared/fixtures/envoy) instead",
    )
    p.add_argument(
        "--fleet",
        type=int,
        metavar="N",
        help="serve N gateways, the recorded sets under --fixture in turn, at 127.1.1.1, "
        "127.1.1.2, ... (one http and one https port for all; --speed divides answer times)",
    )
    p.add_argument(
        "--gateways-out",
        type=Path,
        metavar="FILE",
        help="with --fleet: write a [[gateways]] table per gateway (mode 0600: tokens) here",
    )
    return parser


def _setup_logging(args: argparse.Namespace, settings: Settings | None) -> None:
    from envoy_ingest.telemetry.logging import setup_logging

    level = args.log_level or (settings.log.level if settings else "info")
    fmt = args.log_format or (settings.log.format if settings else "text")
    setup_logging(level, fmt)
    if settings is not None:
        register_settings_secrets(settings)


def register_settings_secrets(settings: Settings) -> None:
    """Tell the log redactor every secret the settings hold."""
    from envoy_ingest.telemetry.logging import register_secret

    for gw in settings.gateways:
        for secret in (gw.password, gw.token, gw.enlighten_password):
            if secret is not None:
                register_secret(secret.get_secret_value())
    if settings.influxdb is not None:
        for secret in (settings.influxdb.token, settings.influxdb.password):
            if secret is not None:
                register_secret(secret.get_secret_value())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except SettingsError as exc:
        for line in str(exc).splitlines():
            print(f"envoy-ingest: settings error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except EnvoyIngestError as exc:
        print(f"envoy-ingest: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command's module (imported only when used: a fast start)."""
    if args.command == "simulate":
        from envoy_ingest.commands.simulate import simulate

        _setup_logging(args, None)
        return simulate(args)
    if args.command == "demo":
        from envoy_ingest.commands.demo import demo

        _setup_logging(args, None)
        args.data = args.data.resolve()
        return eventloop.run(demo(args))
    shard = getattr(args, "shard", None)

    def load() -> Settings:
        settings = load_settings(args.config)
        if shard is not None:  # the command line wins over ENVOY_INGEST_SHARD
            try:
                parse_shard(shard)
            except ValueError as exc:
                raise SettingsError(f"--shard: {exc}") from None
            settings = settings.model_copy(update={"shard": shard})
        register_settings_secrets(settings)  # (again on a reload: new secrets)
        return settings

    settings = load()
    _setup_logging(args, settings)
    if args.command == "run":
        from envoy_ingest.commands.run import run

        return eventloop.run(
            run(
                settings,
                once=args.once,
                summary=args.summary,
                drain_timeout=args.drain_timeout,
                reload=load,
            ),
            settings.event_loop,
        )
    if args.command == "discover":
        from envoy_ingest.commands.discover import discover

        return eventloop.run(discover(settings), settings.event_loop)
    if args.command == "check":
        from envoy_ingest.commands.check import check

        return eventloop.run(check(settings), settings.event_loop)
    if args.command == "token":
        from envoy_ingest.commands.token import token_command

        return eventloop.run(token_command(settings, args.gateway, args.show), settings.event_loop)
    if args.command == "replay":
        from envoy_ingest.commands.replay import replay

        return eventloop.run(replay(settings, args.file, args.timeout), settings.event_loop)
    raise AssertionError(args.command)  # argparse rejects unknown commands
