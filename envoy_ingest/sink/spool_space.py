"""How large the spool may grow, and how its drops are reported.

Two bounds apply (docs/sinks.md): the spool's own ``[spool] max_bytes``, and,
with ``[spool] min_free_bytes``, the free space its filesystem must keep for
the rest of the host. :func:`space_limit` says which one binds now;
:class:`DropLog` turns many small drops into one warning a minute.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger("envoy_ingest.sink.spool")

# How large the -wal file may grow between checkpoints (1000 pages of 4 KiB, and a batch).
WAL_ALLOWANCE = 5 * 1024 * 1024
# Log at most one "dropped" warning per this many seconds (the counts add up).
DROP_LOG_INTERVAL = 60.0

MAX_BYTES = "spool.max_bytes"
MIN_FREE_BYTES = "spool.min_free_bytes"


def space_limit(path: Path, max_bytes: int, min_free_bytes: int) -> tuple[float, str]:
    """How large the database file at ``path`` may be now, and the setting that says so."""
    if min_free_bytes <= 0:
        return max_bytes, MAX_BYTES
    fs = os.statvfs(path.parent)
    file_bytes = path.stat().st_size  # on disk (page_count includes the WAL's)
    wal = path.with_name(path.name + "-wal")
    wal_bytes = wal.stat().st_size if wal.exists() else 0
    # The WAL may still grow to its checkpoint size: keep that room too.
    room = (
        file_bytes + fs.f_bavail * fs.f_frsize - min_free_bytes - max(0, WAL_ALLOWANCE - wal_bytes)
    )
    if room < max_bytes:
        return max(room, 0), MIN_FREE_BYTES
    return max_bytes, MAX_BYTES


def no_room_message(path: Path, need: int, setting: str, max_bytes: int, min_free: int) -> str:
    if setting == MIN_FREE_BYTES:
        return (
            f"no room for a batch of {need} bytes in the spool {path}: "
            f"{setting} = {min_free} left free on its filesystem"
        )
    return f"no room for a batch of {need} bytes in the spool {path}: {setting} = {max_bytes}"


class DropLog:
    """Points dropped for room, warned about at most once a minute per bound."""

    def __init__(self, path: Path, max_bytes: int, min_free_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self._last = 0.0
        self._unlogged: dict[str, tuple[int, int]] = {}

    def add(self, setting: str, points: int, batches: int, total_dropped: int) -> None:
        p, b = self._unlogged.get(setting, (0, 0))
        self._unlogged[setting] = (p + points, b + batches)
        now = time.monotonic()
        if now - self._last >= DROP_LOG_INTERVAL:
            self.flush(total_dropped)
            self._last = now

    def flush(self, total_dropped: int) -> None:
        unlogged, self._unlogged = self._unlogged, {}
        for setting, (points, batches) in unlogged.items():
            if setting == MAX_BYTES:
                bound = f"{MAX_BYTES} = {self.max_bytes}"
                hint = f"raise {MAX_BYTES}"
            else:
                bound = (
                    f"the reserve ({MIN_FREE_BYTES} = {self.min_free_bytes} free on "
                    f"{self.path.parent})"
                )
                hint = "free space on that filesystem"
            log.warning(
                "SPOOL FULL: dropped the oldest %d points (%d batches) to stay under %s; "
                "%d points dropped in total. InfluxDB has not accepted data for a long "
                "time: check the errors above, or %s",
                points,
                batches,
                bound,
                total_dropped,
                hint,
            )
