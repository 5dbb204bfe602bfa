"""Choosing the sink from the settings, and checking it for ``envoy-ingest check``."""

from __future__ import annotations

import os
from pathlib import Path

from envoy_ingest.errors import SinkError
from envoy_ingest.settings import InfluxDBSettings, Settings
from envoy_ingest.sink.answers import Writer
from envoy_ingest.sink.base import FanoutSink, Sink, StatusBoard
from envoy_ingest.sink.file import FileSink
from envoy_ingest.sink.stdout import StdoutSink


def build_writer(influx: InfluxDBSettings) -> Writer:
    if influx.api == "v1":
        from envoy_ingest.sink.influx_v1 import InfluxV1Writer

        return InfluxV1Writer(influx)
    from envoy_ingest.sink.influx_v2 import InfluxV2Writer

    return InfluxV2Writer(influx)


def build_sink(settings: Settings, status: StatusBoard | None = None) -> Sink:
    """The file sink without ``[influxdb]``, else InfluxDB behind the spool; plus stdout.

    A spool that cannot be opened only puts the sink in its degraded mode
    (reported to ``status``); raises :class:`SinkError` when another process
    holds the spool.
    """
    main: Sink
    if settings.influxdb is None:
        main = FileSink(
            settings.file.directory,
            settings.spool.memory_max_points,
            fsync_interval=settings.file.fsync_interval,
            status=status,
        )
    else:
        # Only here: the file sink's worker never loads sqlite3 (about 1 MB).
        from envoy_ingest.sink.delivery import SpooledDelivery
        from envoy_ingest.sink.durable import DurableQueue

        spool = DurableQueue(
            settings.spool_path,
            settings.spool.max_bytes,
            settings.spool.min_free_bytes,
            settings.spool.memory_max_points,
            status=status,
        )
        try:
            writer = build_writer(settings.influxdb)
        except BaseException:
            spool.close()
            raise
        main = SpooledDelivery(
            writer,
            spool,
            settings.dead_letter_path,
            batch_size=settings.influxdb.batch_size,
        )
    if settings.stdout.enabled:
        return FanoutSink([main, StdoutSink()])
    return main


def _check_directory(directory: Path, key: str) -> tuple[bool, str]:
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if os.access(probe, os.W_OK | os.X_OK):
        return True, f"writing to {directory}"
    return False, f"cannot write to {directory} ({key}): permission denied"


async def check_sink(settings: Settings) -> list[tuple[bool, str]]:
    """One ``(ok, line)`` per thing checked: destination reachable, authenticated,
    bucket or database present; the spool's depth. Never raises."""
    lines: list[tuple[bool, str]] = []
    if settings.stdout.enabled:
        lines.append((True, "stdout: printing every point as line protocol"))
    if settings.influxdb is None:
        ok, text = _check_directory(settings.file.directory, "file.directory")
        return [(ok, f"file: {text} (no [influxdb] table)"), *lines]
    try:
        writer = build_writer(settings.influxdb)
    except Exception as exc:  # a bad URL the client library refuses
        return [(False, f"influxdb: {exc}"), *lines]
    try:
        lines.extend(await writer.check())
    finally:
        await writer.aclose()
    from envoy_ingest.sink.spool import Spool

    try:
        stats = Spool.inspect(settings.spool_path, settings.spool.max_bytes)
    except (OSError, SinkError, Exception) as exc:
        lines.append((False, f"cannot read the spool {settings.spool_path} (spool.path): {exc}"))
    else:
        if stats is None:
            lines.append((True, f"spool empty (no file yet at {settings.spool_path})"))
        else:
            lines.append((True, f"{stats.describe()} ({settings.spool_path})"))
    dead = settings.dead_letter_path
    if dead.exists() and dead.stat().st_size:
        lines.append(
            (True, f"{dead} holds points the server rejected; see the reasons in the file")
        )
    return lines
