"""``envoy-ingest replay FILE``: deliver what a damaged (quarantined) spool still holds.

The intact rows (:func:`envoy_ingest.sink.spool_read.salvage`, a plain read
through Python's ``sqlite3``) are copied into a fresh spool beside the file
(``FILE.replay.sqlite``) and delivered from there by the same
:class:`SpooledDelivery` as the worker uses, to the sink of the current
settings: rejected lines go to the dead-letter file, nothing is lost on a
network error, and running the command again carries on where it stopped.
Resending a point InfluxDB already has is harmless (same series, same time).
It never takes the worker's own spool, so it runs beside a running worker.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from envoy_ingest.commands import Out, print_line
from envoy_ingest.errors import SettingsError
from envoy_ingest.settings import Settings
from envoy_ingest.sink.build import build_writer
from envoy_ingest.sink.delivery import SpooledDelivery
from envoy_ingest.sink.spool import Spool
from envoy_ingest.sink.spool_read import salvage


def _prepare(settings: Settings, path: Path, out: Out) -> Spool:
    """The replay spool beside ``path``: what a previous replay left, else the salvage."""
    if settings.influxdb is None:
        raise SettingsError("replay: needs an [influxdb] table to deliver the points to")
    if not path.is_file():
        raise SettingsError(f"replay: {path} is not a file")
    work = path.with_name(path.name + ".replay.sqlite")
    spool = Spool(work, max(settings.spool.max_bytes, 2 * path.stat().st_size))
    if spool.pending_points:
        out(f"{work}: carrying on with the {spool.pending_points} points not delivered yet")
    else:
        found = salvage(path)
        text = f"{path}: {found.points} points in {len(found.rows)} intact rows"
        if found.unreadable_rows:
            text += f"; up to {found.unreadable_rows} rows on damaged pages are lost"
        if found.error:
            text += f" (SQLite: {found.error})"
        out(text)
        spool.append(found.rows)
    return spool


async def replay(settings: Settings, path: Path, timeout: float, out: Out = print_line) -> int:  # noqa: ASYNC109
    """Deliver the intact rows of the spool file ``path``; 0 when all are delivered."""
    spool = _prepare(settings, path, out)
    assert settings.influxdb is not None
    sink = SpooledDelivery(
        build_writer(settings.influxdb),
        spool,
        settings.dead_letter_path,
        batch_size=settings.influxdb.batch_size,
    )
    report = await sink.drain(timeout)
    await sink.close()
    out(f"delivered {report.delivered} points, {report.dead_lettered} rejected (dead letters)")
    if report.pending:
        out(f"{report.pending} points not delivered yet: run the same command again")
        return 1
    for suffix in ("", "-wal", "-shm", ".lock"):
        with contextlib.suppress(OSError):
            os.unlink(f"{spool.path}{suffix}")
    return 0
