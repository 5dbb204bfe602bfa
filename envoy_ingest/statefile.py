"""Small files in the state directory (token cache, counter state, ...):
written atomically, and moved aside, never deleted, when they are damaged.

- :func:`write_atomic`: temp file, fsync, rename, fsync the directory, so a
  power cut leaves either the old file or the new one, never a torn one.
  With ``sync_directory=False`` it skips the directory's fsync (for a file
  rewritten often, where keeping the previous version is fine: a power cut
  may then leave the old file, whole; the next fsync on that filesystem makes
  the rename durable, since journaling filesystems commit metadata in order).
  With ``durable=False`` it skips both fsyncs (for writing many files at
  once, as at shutdown): until :func:`sync_all` has returned, a power cut may
  leave such a file empty or garbled on some filesystems, which its reader
  must treat as damaged (quarantine it).
- :func:`sync_all`: one ``sync()`` that makes every write before it durable.
- :func:`quarantine`: rename a damaged file to ``NAME.corrupt-YYYYMMDDTHHMMSSZ``
  beside it, so the worker can start afresh and a person can still look at it.
- :func:`serial_name`: how a gateway's serial names its state files (the
  gateway's identity once known: never its host, so a new address or spelling
  keeps them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from pathlib import Path

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def serial_name(serial: str) -> str:
    """A gateway's serial as a file name: anything but letters, digits, ``_`` and
    ``-`` replaced by ``_`` (``energy-<serial>.json``, ``tokens/<serial>.json``)."""
    return _UNSAFE.sub("_", serial)


def fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename in it survives a power cut (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sync_all() -> None:
    """Flush every filesystem's written data and metadata to disk (``sync()``,
    which waits for it on Linux): closes the window left by ``durable=False``."""
    os.sync()


def write_atomic(
    path: Path,
    data: bytes,
    mode: int = 0o600,
    *,
    durable: bool = True,
    sync_directory: bool = True,
) -> None:
    """Replace ``path`` with ``data`` atomically, and durably unless ``durable`` is
    false (then :func:`sync_all` must follow); the rename itself only when
    ``sync_directory`` (see the module's doc). Raises OSError."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable and sync_directory:
        fsync_dir(path.parent)


def quarantine(path: Path, reason: str, *, clock: float | None = None) -> Path | None:
    """Move a damaged ``path`` aside (``NAME.corrupt-<UTC time>``) and say so once.

    Returns the new path, or None if the file could not be moved (it is then
    left where it is; the caller carries on without it)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if clock is None else clock))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        os.replace(path, target)
    except OSError as exc:
        log.error(
            "%s is damaged (%s) and could not be moved aside (%s); carrying on without it",
            path,
            reason,
            exc.strerror or type(exc).__name__,
        )
        return None
    fsync_dir(path.parent)
    log.error(
        "%s is damaged (%s); moved it aside to %s and started afresh. "
        "Keep it for inspection, or delete it once you no longer need it.",
        path,
        reason,
        target.name,
    )
    return target
