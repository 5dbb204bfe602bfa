"""Append whole lines to a file so that a crash never leaves a torn line.

Two defences, because a single ``write(2)`` is not atomic against a power cut
or a full disk:

- each batch is written with one ``O_APPEND`` write of complete lines (looping
  only on a short write); if the write fails part-way the file is truncated
  back to where the batch began;
- the first time a process appends to a file, a trailing partial line (left by
  a crash in an earlier process) is cut off, with a warning.

So a reader (``influx write``, a test) only ever sees complete lines.

Group commit: the most recently used files (:data:`OPEN_FILES`) stay open, and
each is fsynced at most once per ``fsync_interval`` seconds. A batch that
arrives more than the interval after its file's last fsync (a home install
submits once a minute) is fsynced before :meth:`LineAppender.append` returns,
as with ``fsync_interval = 0``; one that arrives sooner (a fleet) is written
at once and fsynced by a deferred sync (``loop.call_later``; at once when no
event loop runs) no later than the interval after the file's last fsync.
Either way a returned batch is in the kernel's page cache, so ``kill -9`` of
the process loses nothing; a power cut loses at most the last
``fsync_interval`` seconds. :meth:`LineAppender.close` fsyncs what is pending.
A failed deferred fsync is logged and handed to ``on_sync_error`` (the file
sink enters its degraded mode).

A file deleted or replaced while open (``fstat`` of the descriptor no longer
matches ``stat`` of the path) is closed and opened again, so no batch goes to
an unlinked file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_APPEND = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
#: Files kept open per appender. A home install writes one or two UTC days; a
#: fleet's points can fall on many more (a dead microinverter's last report, a
#: gateway whose clock is off), and closing a file that has batches waiting for
#: their fsync fsyncs it: with too few kept open, batches round robin over the
#: days would each pay an open, a close and an fsync.
OPEN_FILES = 32


def _repair_tail(fd: int, path: Path) -> None:
    """Truncate ``fd`` after its last newline, if the file does not end in one."""
    end = os.fstat(fd).st_size
    if end == 0 or os.pread(fd, 1, end - 1) == b"\n":
        return
    pos = end
    keep = 0
    while pos > 0:
        start = max(0, pos - _CHUNK)
        chunk = os.pread(fd, pos - start, start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            keep = start + nl + 1
            break
        pos = start
    os.ftruncate(fd, keep)
    os.fsync(fd)
    log.warning(
        "%s: removed a partial last line (%d bytes) left by an interrupted write",
        path,
        end - keep,
    )


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


@dataclass(slots=True)
class _Open:
    fd: int
    dev: int
    ino: int
    synced: float  # clock time of the last fsync
    dirty: bool = False  # written since the last fsync


class LineAppender:
    """Appends complete lines to files, durably (see the module docstring)."""

    def __init__(
        self,
        fsync_interval: float = 0.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_sync_error: Callable[[Path, OSError], None] | None = None,
    ) -> None:
        self.fsync_interval = fsync_interval
        self.clock = clock
        self.on_sync_error = on_sync_error
        self._checked: set[Path] = set()
        self._open: dict[Path, _Open] = {}  # least recently used first
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0  # when it fires (clock time)
        #: The last fsync failed (cleared by the next one that succeeds).
        self.sync_failing = False

    @property
    def pending(self) -> list[Path]:
        """Files written since their last fsync."""
        return [path for path, f in self._open.items() if f.dirty]

    def append(self, path: Path, data: bytes) -> None:
        """Append ``data`` (complete lines, ending in a newline). Raises OSError."""
        if not data:
            return
        if not data.endswith(b"\n"):
            raise ValueError("data must be complete lines ending in a newline")
        f = self._file(path)
        start = os.lseek(f.fd, 0, os.SEEK_END)  # the size, as fstat would say
        now = self.clock()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(f.fd, view) :]
            if self.fsync_interval <= 0 or now - f.synced >= self.fsync_interval:
                os.fsync(f.fd)  # also makes earlier deferred batches durable
                f.synced, f.dirty = now, False
                self.sync_failing = False
                return
        except OSError as exc:
            # Never leave part of a batch behind (e.g. ENOSPC half-way).
            with contextlib.suppress(OSError):
                os.ftruncate(f.fd, start)
            if f.dirty:  # earlier, acknowledged batches were waiting for this fsync
                self._sync_failed(path, exc)
                f.dirty = False
            self._forget(path)
            raise
        f.dirty = True
        self._schedule(f.synced + self.fsync_interval)

    def sync_due(self) -> None:
        """The timer's job: when a file's interval has passed, fsync every file
        written since its last fsync (those not due yet too: the files then share
        one tick, and a fleet writing to many day files wakes once per interval,
        not once per file); otherwise wait on."""
        self._timer = None
        now = self.clock()
        dirty = [(path, f) for path, f in self._open.items() if f.dirty]
        if any(f.synced + self.fsync_interval <= now for _, f in dirty):
            for path, f in dirty:
                self._sync(path, f, now)
            return
        for _, f in dirty:
            self._schedule(f.synced + self.fsync_interval)

    def sync(self) -> None:
        """fsync every pending file now, due or not."""
        now = self.clock()
        for path, f in list(self._open.items()):
            if f.dirty:
                self._sync(path, f, now)

    def close(self) -> None:
        """fsync what is pending and close every file. Failures are reported, not raised."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for path in list(self._open):
            self._forget(path)

    # --- internals ----------------------------------------------------------

    def _file(self, path: Path) -> _Open:
        f = self._open.pop(path, None)
        if f is not None:
            st: os.stat_result | None
            try:
                st = os.stat(path)
            except OSError:
                st = None
            if st is not None and (st.st_dev, st.st_ino) == (f.dev, f.ino):
                self._open[path] = f  # now the most recently used
                return f
            log.info("%s was deleted or replaced while open; opening it again", path)
            self._close(path, f)
            self._checked.discard(path)  # a file put there by someone else
        return self._opened(path)

    def _opened(self, path: Path) -> _Open:
        created = False
        try:  # one system call where the file exists (the common case), not a stat too
            fd = os.open(path, _APPEND)
        except (FileNotFoundError, NotADirectoryError):  # what path.exists() said False to
            created = True
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, _APPEND | os.O_CREAT, 0o644)
        try:
            if path not in self._checked:
                _repair_tail(fd, path)
                self._checked.add(path)
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        if created:
            _fsync_dir(path.parent)
        while len(self._open) >= OPEN_FILES:
            self._forget(next(iter(self._open)))
        f = self._open[path] = _Open(fd, st.st_dev, st.st_ino, float("-inf"))
        return f

    def _schedule(self, due: float) -> None:
        """Make the timer run :meth:`sync_due` no later than ``due`` (clock time)."""
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: nothing would run a deferred sync
            self._timer = None
            self.sync()
            return
        self._timer_due = due
        self._timer = loop.call_later(max(0.0, due - self.clock()), self.sync_due)

    def _sync(self, path: Path, f: _Open, now: float) -> None:
        try:
            os.fsync(f.fd)
        except OSError as exc:
            self._sync_failed(path, exc)
        else:
            self.sync_failing = False
        f.synced, f.dirty = now, False

    def _sync_failed(self, path: Path, exc: OSError) -> None:
        log.error(
            "cannot fsync %s: %s; the lines written since its last fsync may be lost "
            "on a power cut (a worker crash loses nothing)",
            path,
            exc.strerror or exc,
        )
        self.sync_failing = True
        if self.on_sync_error is not None:
            self.on_sync_error(path, exc)

    def _close(self, path: Path, f: _Open) -> None:
        if f.dirty:
            self._sync(path, f, self.clock())
        with contextlib.suppress(OSError):
            os.close(f.fd)

    def _forget(self, path: Path) -> None:
        f = self._open.pop(path, None)
        if f is not None:
            self._close(path, f)
