"""Reading a spool file without taking it over.

- :func:`inspect_spool`: its depth and counters, read-only (``envoy-ingest check``);
- :func:`salvage`: the rows SQLite can still read from a damaged (quarantined)
  spool, for ``envoy-ingest replay``. This is a plain read of the intact rows
  through Python's ``sqlite3``: the sqlite3 shell's ``.recover`` (which also
  digs through damaged pages) is a feature of the CLI tool, not of the library,
  so rows on a damaged page are lost here; the count of what could not be
  read is reported.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from envoy_ingest.point import KINDS


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    else:
        conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


@dataclass(frozen=True, slots=True)
class SpoolStats:
    points: int
    batches: int
    bytes: int
    max_bytes: int
    oldest: float | None
    dropped_points: int
    dropped_batches: int

    def describe(self) -> str:
        if not self.batches:
            text = "spool empty"
        else:
            age = max(0.0, time.time() - (self.oldest or time.time()))
            text = (
                f"{self.points} points waiting in the spool "
                f"({_mib(self.bytes)} of {_mib(self.max_bytes)}, oldest {_age(age)} old)"
            )
        if self.dropped_points:
            text += f"; {self.dropped_points} points dropped so far because the spool was full"
        return text


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def inspect_spool(path: Path, max_bytes: int) -> SpoolStats | None:
    """A spool's state, or None when there is no file (never takes the lock)."""
    if not Path(path).exists():
        return None
    db = connect(Path(path), readonly=True)
    try:
        n, points, size = db.execute(
            "SELECT count(*), coalesce(sum(points), 0), coalesce(sum(bytes), 0) FROM batch"
        ).fetchone()
        oldest = db.execute("SELECT created FROM batch ORDER BY id LIMIT 1").fetchone()
        counters = dict(db.execute("SELECT name, value FROM counter").fetchall())
    finally:
        db.close()
    return SpoolStats(
        int(points),
        int(n),
        int(size),
        max_bytes,
        oldest[0] if oldest else None,
        int(counters.get("dropped_points", 0)),
        int(counters.get("dropped_batches", 0)),
    )


@dataclass(slots=True)
class Salvage:
    """What :func:`salvage` found: rows read, and rows (or the listing) it could not."""

    rows: list[tuple[str, bytes, int]]
    unreadable_rows: int = 0
    error: str | None = None  # the first read error met, if any

    @property
    def points(self) -> int:
        return sum(n for _, _, n in self.rows)


def _ids(db: sqlite3.Connection, found: Salvage) -> Iterator[int]:
    """Every row id SQLite can reach; past a damaged page, seek on id by id."""
    try:
        last = db.execute("SELECT max(id) FROM batch").fetchone()[0]
    except sqlite3.Error:
        last = None
    start = 0
    while True:
        try:
            for (row_id,) in db.execute("SELECT id FROM batch WHERE id >= ? ORDER BY id", (start,)):
                start = int(row_id) + 1
                yield int(row_id)
            return
        except sqlite3.Error as exc:
            found.error = found.error or str(exc)
            if last is None or start > last:
                return
            found.unreadable_rows += 1  # at most: ids on a damaged page
            start += 1


def salvage(path: Path) -> Salvage:
    """Read every intact ``(target, body, points)`` row of a (damaged) spool file."""
    found = Salvage([])
    try:
        db = connect(Path(path), readonly=True)
    except sqlite3.Error as exc:
        found.error = str(exc)
        return found
    try:
        for row_id in list(_ids(db, found)):
            try:
                row = db.execute(
                    "SELECT target, body FROM batch WHERE id = ?", (row_id,)
                ).fetchone()
            except sqlite3.Error:
                found.unreadable_rows += 1
                continue
            if row is None:
                continue
            target, body = row
            if target in KINDS and isinstance(body, bytes) and body:
                if not body.endswith(b"\n"):
                    body = body[: body.rfind(b"\n") + 1]  # keep whole lines only
                if body:
                    found.rows.append((str(target), bytes(body), body.count(b"\n")))
                    continue
            found.unreadable_rows += 1
    finally:
        with contextlib.suppress(sqlite3.Error):
            db.close()
    return found
