"""Append whole lines to a file so that a crash never leaves a torn line.

Two defences, because a single ``write(2)`` is not atomic against a power cut
or a full disk:

- each batch is written with one ``O_APPEND`` write of complete lines (looping
  only on a short write), then ``fsync``; if the write fails part-way the file
  is truncated back to where the batch began;
- the first time a process appends to a file, a trailing partial line (left by
  a crash in an earlier process) is cut off, with a warning.

So a reader (``influx write``, a test) only ever sees complete lines, and
every line that was acknowledged (fsync returned) survives.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_APPEND = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC


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


class LineAppender:
    """Appends complete lines to files, durably (see the module docstring)."""

    def __init__(self) -> None:
        self._checked: set[Path] = set()

    def append(self, path: Path, data: bytes) -> None:
        """Append ``data`` (complete lines, ending in a newline) and fsync. Raises OSError."""
        if not data:
            return
        if not data.endswith(b"\n"):
            raise ValueError("data must be complete lines ending in a newline")
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
            start = os.lseek(fd, 0, os.SEEK_END)  # the size, as fstat would say
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                # Never leave part of a batch behind (e.g. ENOSPC half-way).
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)
        if created:
            _fsync_dir(path.parent)
