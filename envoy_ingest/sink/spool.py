"""The durable spool in front of InfluxDB: SQLite from the standard library.

Every batch the worker submits is committed here before anything is sent, and
deleted only after the server acknowledged it, so an outage, a restart or a
``kill -9`` loses nothing the spool accepted. Why SQLite rather than a
hand-written log: its commit is atomic and crash-safe (proven, and tested far
beyond anything we would write), so a batch is either wholly in the spool or
not at all, and nothing half-written is ever replayed.

- **WAL mode**: an append is one sequential write to the ``-wal`` file;
  readers never block the writer.
- **synchronous = FULL**: the WAL is fsynced at every commit, so a batch that
  :meth:`Spool.append` accepted survives a power cut or kernel panic, not only
  a process crash (NORMAL would survive ``kill -9`` but may lose the last
  commits on power loss). The cost is one fsync per batch: a few per minute
  per gateway, well within any disk; deletes are batched per delivery.
- **One transaction per batch**: the points of one submit (split by target
  bucket into up to two rows) commit together; dropping the oldest rows to stay
  under ``max_bytes`` happens in the same transaction.
- **Order**: rows are read back by their increasing ``rowid``, i.e. in the
  order they were accepted.
- **Bounded**: the database file is kept under ``[spool] max_bytes`` by deleting
  the oldest rows (the payload is scaled by the measured pages-per-payload
  ratio), with a WARNING and a persistent count of what was dropped. The
  ``-wal`` file adds at most a few MiB (checkpointed every ~4 MiB, truncated).
- **One process**: an exclusive ``flock`` on ``<path>.lock`` stops two workers
  from delivering the same rows twice; the kernel releases it on any exit.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from envoy_ingest.errors import SinkError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# Bytes charged per row on top of its body, for SQLite's row and page overhead.
ROW_OVERHEAD = 64
# Log at most one "dropped" warning per this many seconds (the counts add up).
DROP_LOG_INTERVAL = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch (
    id INTEGER PRIMARY KEY,      -- rowid: the order batches were accepted in
    target TEXT NOT NULL,        -- 'totals' or 'devices': which bucket/database
    points INTEGER NOT NULL,     -- lines in body
    bytes INTEGER NOT NULL,      -- charged size: len(body) + ROW_OVERHEAD
    created REAL NOT NULL,       -- unix time it was accepted
    body BLOB NOT NULL           -- line protocol, complete lines
);
CREATE TABLE IF NOT EXISTS counter (
    name TEXT PRIMARY KEY,       -- dropped_points, dropped_batches
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    id: int
    target: str
    points: int
    body: bytes
    created: float


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


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    else:
        conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class Spool:
    """A bounded FIFO of line-protocol batches on disk. Use from one thread."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock_fd: int | None = None
        self._last_drop_log = 0.0
        self._unlogged_drop = (0, 0)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock()
            self._db = _connect(self.path)
            self._setup()
            row = self._db.execute(
                "SELECT count(*), coalesce(sum(points), 0), coalesce(sum(bytes), 0) FROM batch"
            ).fetchone()
        except (OSError, sqlite3.Error) as exc:
            if hasattr(self, "_db"):
                self._db.close()
            self._unlock()
            raise SinkError(f"cannot open the spool {self.path} (spool.path): {exc}") from None
        self._batches, self._points, self._bytes = (int(v) for v in row)
        self._dropped = self._counters()

    # --- opening --------------------------------------------------------------

    def _lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SinkError(
                f"the spool {self.path} is in use by another envoy-ingest process "
                "(give each worker its own state.directory or spool.path)"
            ) from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _setup(self) -> None:
        db = self._db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"written by a newer envoy-ingest (schema {version}, "
                f"this one reads {SCHEMA_VERSION})"
            )
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA journal_size_limit = 8388608")
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _counters(self) -> tuple[int, int]:
        values = dict(self._db.execute("SELECT name, value FROM counter").fetchall())
        return int(values.get("dropped_points", 0)), int(values.get("dropped_batches", 0))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- the FIFO -------------------------------------------------------------

    def append(self, entries: Sequence[tuple[str, bytes, int]]) -> int:
        """Commit ``(target, body, points)`` rows in one transaction.

        Returns the number of old points dropped to make room. Raises
        :class:`SinkError` when the spool cannot store them (disk full, ...).
        """
        entries = [e for e in entries if e[1]]
        if not entries:
            return 0
        now = time.time()
        need = sum(len(body) + ROW_OVERHEAD for _, body, _ in entries)
        try:
            with self._transaction():
                dropped = self._make_room(need)
                self._db.executemany(
                    "INSERT INTO batch (target, points, bytes, created, body) VALUES (?,?,?,?,?)",
                    [(t, n, len(b) + ROW_OVERHEAD, now, b) for t, b, n in entries],
                )
        except sqlite3.Error as exc:
            raise SinkError(f"cannot write to the spool {self.path} (spool.path): {exc}") from None
        # Only now that the transaction committed do the in-memory totals move.
        if dropped:
            d_batches, d_points, d_bytes = dropped
            self._batches -= d_batches
            self._points -= d_points
            self._bytes -= d_bytes
            self._dropped = (self._dropped[0] + d_points, self._dropped[1] + d_batches)
            self._log_drop(d_points, d_batches)
        self._batches += len(entries)
        self._points += sum(n for _, _, n in entries)
        self._bytes += need
        return dropped[1] if dropped else 0

    def _used_bytes(self) -> int:
        """Bytes of the database file in use (pages not on the free list)."""
        page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * page_size)

    def _make_room(self, need: int) -> tuple[int, int, int] | None:
        # Rows do not fill SQLite's pages exactly (up to ~1.35x for 1-3 kB rows):
        # scale the payload by the measured ratio so the file, not just the
        # payload, stays under max_bytes.
        if self._bytes + need <= self.max_bytes / 4:
            return None
        ratio = max(1.0, self._used_bytes() / self._bytes) if self._bytes else 1.0
        excess = (self._bytes + need) * ratio - self.max_bytes
        if excess <= 0:
            return None
        batches = points = freed = 0
        last_id = None
        for row_id, n, size in self._db.execute("SELECT id, points, bytes FROM batch ORDER BY id"):
            last_id = row_id
            batches += 1
            points += n
            freed += size
            if freed * ratio >= excess:
                break
        if last_id is None:
            return None
        self._db.execute("DELETE FROM batch WHERE id <= ?", (last_id,))
        self._db.executemany(
            "INSERT INTO counter (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            [("dropped_points", points), ("dropped_batches", batches)],
        )
        return batches, points, freed

    def _log_drop(self, points: int, batches: int) -> None:
        p, b = self._unlogged_drop
        self._unlogged_drop = (p + points, b + batches)
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL:
            self._flush_drop_log()
            self._last_drop_log = now

    def _flush_drop_log(self) -> None:
        points, batches = self._unlogged_drop
        if not points and not batches:
            return
        self._unlogged_drop = (0, 0)
        log.warning(
            "SPOOL FULL: dropped the oldest %d points (%d batches) to stay under "
            "spool.max_bytes = %d; %d points dropped in total. InfluxDB has not accepted "
            "data for a long time: check the errors above, or raise spool.max_bytes",
            points,
            batches,
            self.max_bytes,
            self._dropped[0],
        )

    def peek(self, max_points: int) -> list[SpoolEntry]:
        """The oldest rows, up to ``max_points`` points (at least one row if any)."""
        out: list[SpoolEntry] = []
        total = 0
        cur = self._db.execute(
            "SELECT id, target, points, body, created FROM batch ORDER BY id LIMIT ?",
            (max(1, max_points),),
        )
        try:
            for row_id, target, n, body, created in cur:
                if out and total + n > max_points:
                    break
                out.append(SpoolEntry(row_id, target, n, bytes(body), created))
                total += n
        finally:
            cur.close()
        return out

    def delete(self, entries: Sequence[SpoolEntry]) -> None:
        """Remove rows the server acknowledged (or that went to the dead-letter file)."""
        if not entries:
            return
        ids = [(e.id,) for e in entries]
        with self._transaction():
            cur = self._db.executemany("DELETE FROM batch WHERE id = ?", ids)
        if cur.rowcount == len(ids):
            self._batches -= len(entries)
            self._points -= sum(e.points for e in entries)
            self._bytes -= sum(len(e.body) + ROW_OVERHEAD for e in entries)
        else:  # rows dropped meanwhile for room: recount
            self._recount()

    def replace(self, entry: SpoolEntry, body: bytes, points: int) -> SpoolEntry:
        """Shrink a row to its part not yet delivered (after a split send)."""
        with self._transaction():
            self._db.execute(
                "UPDATE batch SET body = ?, points = ?, bytes = ? WHERE id = ?",
                (body, points, len(body) + ROW_OVERHEAD, entry.id),
            )
        self._recount()
        return SpoolEntry(entry.id, entry.target, points, body, entry.created)

    def _recount(self) -> None:
        row = self._db.execute(
            "SELECT count(*), coalesce(sum(points), 0), coalesce(sum(bytes), 0) FROM batch"
        ).fetchone()
        self._batches, self._points, self._bytes = (int(v) for v in row)

    # --- state ----------------------------------------------------------------

    @property
    def pending_points(self) -> int:
        return self._points

    @property
    def pending_batches(self) -> int:
        return self._batches

    @property
    def dropped_points(self) -> int:
        """Points dropped because the spool was full, over the spool's whole life."""
        return self._dropped[0]

    def disk_bytes(self) -> int:
        """The spool's files on disk: the database and its WAL."""
        total = 0
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        return total

    def stats(self) -> SpoolStats:
        oldest = self._db.execute("SELECT created FROM batch ORDER BY id LIMIT 1").fetchone()
        return SpoolStats(
            self._points,
            self._batches,
            self._bytes,
            self.max_bytes,
            oldest[0] if oldest else None,
            *self._dropped,
        )

    def close(self) -> None:
        self._flush_drop_log()
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._unlock()

    @staticmethod
    def inspect(path: Path, max_bytes: int) -> SpoolStats | None:
        """Read a spool's state without taking it over (for ``envoy-ingest check``)."""
        if not Path(path).exists():
            return None
        db = _connect(Path(path), readonly=True)
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
