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
  live rows first (oldest first; then the new batch's own live rows), and
  only then the oldest others (the payload is scaled by the measured pages-per-payload
  ratio), with a WARNING and a persistent count of what was dropped. The
  ``-wal`` file adds at most a few MiB (checkpointed every ~4 MiB, truncated).
  With ``min_free_bytes``, the file also stops growing before its filesystem
  has less than that free (plus room for the WAL): the oldest rows go the same
  way. When not even the new batch fits, :meth:`Spool.append` raises and
  :class:`envoy_ingest.sink.durable.DurableQueue` holds points in memory.
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

from envoy_ingest.errors import SinkError, SpoolCorrupt, SpoolInUse
from envoy_ingest.sink.queue import Row, SpoolEntry, oldest
from envoy_ingest.sink.spool_read import SpoolStats, connect, inspect_spool
from envoy_ingest.sink.spool_space import DropLog, no_room_message, space_limit
from envoy_ingest.telemetry import metrics

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# Bytes charged per row on top of its body, for SQLite's row and page overhead.
ROW_OVERHEAD = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch (
    id INTEGER PRIMARY KEY,      -- rowid: the order batches were accepted in
    target TEXT NOT NULL,        -- 'totals', 'devices' or 'live': which bucket/database
    points INTEGER NOT NULL,     -- lines in body
    bytes INTEGER NOT NULL,      -- charged size: len(body) + ROW_OVERHEAD
    created REAL NOT NULL,       -- unix time it was accepted
    body BLOB NOT NULL           -- line protocol, complete lines
);
-- The live rows, the first to go when the spool is full (a partial index: the
-- others cost nothing).
CREATE INDEX IF NOT EXISTS batch_live ON batch (id) WHERE target = 'live';
CREATE TABLE IF NOT EXISTS counter (
    name TEXT PRIMARY KEY,       -- dropped_points, dropped_batches
    value INTEGER NOT NULL
);
"""


@dataclass(slots=True)
class _Room:
    """What :meth:`Spool._make_room` dropped for a batch to fit."""

    setting: str  # the bound: spool.max_bytes or spool.min_free_bytes
    kept: list[Row]  # the batch's rows still to store
    rows: int = 0  # stored rows deleted
    points: int = 0  # their points
    freed: int = 0  # their charged bytes
    live_points: int = 0  # of those points, live ones
    refused_points: int = 0  # the batch's own live points, not stored
    refused_rows: int = 0


def _size(entries: Sequence[Row]) -> int:
    """Charged bytes of ``(target, body, points)`` rows."""
    return sum(len(body) + ROW_OVERHEAD for _, body, _ in entries)


# SQLite's primary result codes for a damaged file: SQLITE_CORRUPT, SQLITE_NOTADB.
_CORRUPT_CODES = (11, 26)


def is_corruption(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _CORRUPT_CODES


def _error(what: str, exc: BaseException) -> SinkError:
    """``exc`` as a :class:`SinkError` (:class:`SpoolCorrupt` for a damaged file)."""
    cls = SpoolCorrupt if is_corruption(exc) else SinkError
    return cls(f"{what}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")


class Spool:
    """A bounded FIFO of line-protocol batches on disk, a
    :class:`~envoy_ingest.sink.queue.PointQueue`. Use from one thread."""

    def __init__(self, path: Path, max_bytes: int, min_free_bytes: int = 0) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self._lock_fd: int | None = None
        self._drop_log = DropLog(self.path, max_bytes, min_free_bytes)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock()
            self._db = connect(self.path)
            self._setup()
            row = self._db.execute(
                "SELECT count(*), coalesce(sum(points), 0), coalesce(sum(bytes), 0) FROM batch"
            ).fetchone()
            self._inode = os.stat(self.path).st_ino
        except (OSError, sqlite3.Error) as exc:
            if hasattr(self, "_db"):
                self._db.close()
            self._unlock()
            raise _error(f"cannot open the spool {self.path} (spool.path)", exc) from None
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
            raise SpoolInUse(
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

    def append(self, entries: Sequence[Row]) -> int:
        """Commit ``(target, body, points)`` rows in one transaction.

        Returns the number of old points dropped to make room (under
        ``max_bytes``, and leaving ``min_free_bytes`` free on the filesystem).
        Raises :class:`SinkError` when the spool cannot store them (disk full,
        not even room for this batch, ...; :class:`SpoolCorrupt` if damaged).
        """
        entries = [e for e in entries if e[1]]
        if not entries:
            return 0
        self._check_file()
        now = time.time()
        try:
            with self._transaction():
                room = self._make_room(entries)
                kept = room.kept if room is not None else entries
                self._db.executemany(
                    "INSERT INTO batch (target, points, bytes, created, body) VALUES (?,?,?,?,?)",
                    [(t, n, len(b) + ROW_OVERHEAD, now, b) for t, b, n in kept],
                )
        except (OSError, sqlite3.Error) as exc:
            raise _error(f"cannot write to the spool {self.path} (spool.path)", exc) from None
        # Only now that the transaction committed do the in-memory totals move.
        dropped = 0
        if room is not None:
            self._batches -= room.rows
            self._points -= room.points
            self._bytes -= room.freed
            dropped = room.points + room.refused_points
            batches = room.rows + room.refused_rows
            self._dropped = (self._dropped[0] + dropped, self._dropped[1] + batches)
            reason = room.setting.replace(".", "_")
            live = room.live_points + room.refused_points
            if live:
                metrics.record_dropped(live, "live_" + reason)
            if dropped - live:
                metrics.record_dropped(dropped - live, reason)
            self._drop_log.add(room.setting, dropped, batches, self._dropped[0])
        self._batches += len(kept)
        self._points += sum(n for _, _, n in kept)
        self._bytes += _size(kept)
        return dropped

    def detached(self) -> bool:
        """The file was deleted or replaced under the open connection."""
        try:
            return os.stat(self.path).st_ino != self._inode
        except OSError:
            return True

    def _check_file(self) -> None:
        """A spool file deleted (or replaced) under us: stop writing into the void."""
        if self.detached():
            raise SinkError(f"the spool {self.path} (spool.path) vanished or was replaced")

    def _pragma(self, name: str) -> int:
        return int(self._db.execute(f"PRAGMA {name}").fetchone()[0])

    def _used_bytes(self) -> int:
        """Bytes of the database file in use (pages not on the free list)."""
        return (self._pragma("page_count") - self._pragma("freelist_count")) * self._pragma(
            "page_size"
        )

    def _make_room(self, entries: Sequence[tuple[str, bytes, int]]) -> _Room | None:
        """Delete rows so that ``entries`` fit, in one order: live rows (the oldest
        first), then this batch's own live rows (not stored), and only then the
        oldest others. Live data never costs a totals or devices point."""
        limit, setting = space_limit(self.path, self.max_bytes, self.min_free_bytes)
        if self._bytes + _size(entries) <= limit / 4:
            return None
        # Rows do not fill SQLite's pages exactly (up to ~1.35x for 1-3 kB rows):
        # scale the payload by the measured ratio so the file, not just the
        # payload, stays under the limit.
        ratio = max(1.0, self._used_bytes() / self._bytes) if self._bytes else 1.0
        room = _Room(setting, list(entries))

        def excess() -> float:
            return (self._bytes - room.freed + _size(room.kept)) * ratio - limit

        if excess() <= 0:
            return None
        self._drop_rows(room, excess() / ratio, live=True)
        for entry in [e for e in room.kept if e[0] == "live"]:
            if excess() <= 0:
                break
            room.kept.remove(entry)
            room.refused_points += entry[2]
            room.refused_rows += 1
        if excess() > 0:
            if _size(room.kept) * ratio > limit:
                raise SinkError(
                    no_room_message(
                        self.path, _size(room.kept), setting, self.max_bytes, self.min_free_bytes
                    )
                )
            self._drop_rows(room, excess() / ratio, live=False)
        self._db.executemany(
            "INSERT INTO counter (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            [
                ("dropped_points", room.points + room.refused_points),
                ("dropped_batches", room.rows + room.refused_rows),
            ],
        )
        return room

    def _drop_rows(self, room: _Room, payload: float, *, live: bool) -> None:
        """Delete the oldest rows (``live``: of the live rows) until ``payload``
        bytes are freed."""
        where = "WHERE target = 'live' " if live else ""
        freed = rows = points = 0
        last_id = None
        query = f"SELECT id, points, bytes FROM batch {where}ORDER BY id"  # noqa: S608
        for row_id, n, size in self._db.execute(query):
            if freed >= payload:
                break
            last_id = row_id
            rows += 1
            points += n
            freed += size
        if last_id is None:
            return
        and_or_where = "AND" if live else "WHERE"
        self._db.execute(f"DELETE FROM batch {where}{and_or_where} id <= ?", (last_id,))  # noqa: S608
        room.freed += freed
        room.rows += rows
        room.points += points
        if live:
            room.live_points += points

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except (OSError, sqlite3.Error) as exc:
            raise _error(f"cannot {what} the spool {self.path} (spool.path)", exc) from None

    def peek(self, max_points: int) -> list[SpoolEntry]:
        """The oldest rows, up to ``max_points`` points (at least one row if any)."""
        with self._guard("read"):
            return self._peek(max_points)

    def _peek(self, max_points: int) -> list[SpoolEntry]:
        cur = self._db.execute(
            "SELECT id, target, points, body, created FROM batch ORDER BY id LIMIT ?",
            (max(1, max_points),),
        )
        try:
            return oldest(
                (SpoolEntry(i, target, n, bytes(body), at) for i, target, n, body, at in cur),
                max_points,
            )
        finally:
            cur.close()

    def delete(self, entries: Sequence[SpoolEntry]) -> None:
        """Remove rows the server acknowledged (or that went to the dead-letter file)."""
        if not entries:
            return
        ids = [(e.id,) for e in entries]
        with self._guard("delete from"), self._transaction():
            cur = self._db.executemany("DELETE FROM batch WHERE id = ?", ids)
        if cur.rowcount == len(ids):
            self._batches -= len(entries)
            self._points -= sum(e.points for e in entries)
            self._bytes -= sum(len(e.body) + ROW_OVERHEAD for e in entries)
        else:  # rows dropped meanwhile for room: recount
            self._recount()

    def replace(self, entry: SpoolEntry, body: bytes, points: int) -> SpoolEntry:
        """Shrink a row to its part not yet delivered (after a split send)."""
        with self._guard("write to"), self._transaction():
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
        self._drop_log.flush(self._dropped[0])
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._unlock()

    @staticmethod
    def inspect(path: Path, max_bytes: int) -> SpoolStats | None:
        """Read a spool's state without taking it over (for ``envoy-ingest check``)."""
        return inspect_spool(path, max_bytes)
