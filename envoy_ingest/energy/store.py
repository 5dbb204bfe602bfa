"""One gateway's energy state in the state directory: ``energy-<serial>.json``.

Written atomically (:func:`envoy_ingest.statefile.write_atomic`) at most every
``flush_interval`` seconds while only the last values move, at once when a
correction is decided or a new local day begins (so a ``kill -9`` can only
lose plain progress, which the counter rules absorb: see docs/schema.md), and
at shutdown. A damaged file is moved aside and the gateway starts afresh.

Each write fsyncs the new file before it replaces the old one, so a power cut
leaves one of them whole. Only the urgent writes (a correction, a new day)
also fsync the directory, which makes the replacement itself durable at once;
a periodic write's replacement becomes durable with the next fsync on the
same filesystem (in a fleet, another gateway's state within seconds), and
until then a power cut leaves the previous state: plain progress again. In a
fleet that halves the journal commits the state files cost.

At shutdown a whole fleet's states are written at once: each without its own
fsync (``flush(durable=False)``), then one :func:`envoy_ingest.statefile.sync_all`
before the worker returns, so a normal stop leaves every file durable, fast.
A power cut within that short window may leave a renamed file whose data never
reached the disk (empty or garbled on some filesystems): it fails to parse at
the next start and is moved aside like any damaged file (that gateway's
counters start afresh; the counter rules absorb it, see docs/schema.md).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envoy_ingest.energy.battery import Integrator
from envoy_ingest.energy.counter import Counter, finite
from envoy_ingest.energy.daily import DayTrack
from envoy_ingest.energy.events import SiteState
from envoy_ingest.statefile import quarantine, serial_name, write_atomic

log = logging.getLogger(__name__)

VERSION = 1
_PROGRESS_BYTES = 128  # the progress file's one line, padded: rewritten in place


@dataclass(slots=True)
class GatewayEnergy:
    """Everything the energy stage remembers about one gateway."""

    counters: dict[str, Counter] = field(default_factory=dict)
    days: dict[str, DayTrack] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)  # point group -> highest W seen
    rebooting: bool = False
    battery: Integrator | None = None  # battery power integrated (no storage CT)
    site: SiteState = field(default_factory=SiteState)  # grid, generator, storage mode

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "counters": {k: c.to_json() for k, c in self.counters.items()},
            "days": {k: d.to_json() for k, d in self.days.items()},
            "peaks": self.peaks,
            "rebooting": self.rebooting,
            "battery": None if self.battery is None else self.battery.to_json(),
            "site": self.site.to_json(),
        }

    @classmethod
    def from_json(cls, data: Any) -> GatewayEnergy:
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError("not an energy state of this version")
        peaks = {sys.intern(str(k)): finite(v) for k, v in dict(data["peaks"]).items()}
        rebooting = data["rebooting"]
        if not isinstance(rebooting, bool):
            raise ValueError("bad rebooting flag")
        # Files written before battery energy and site events have neither key.
        battery, site = data.get("battery"), data.get("site")
        return cls(
            counters={
                sys.intern(str(k)): Counter.from_json(v) for k, v in dict(data["counters"]).items()
            },
            days={sys.intern(str(k)): DayTrack.from_json(v) for k, v in dict(data["days"]).items()},
            peaks=peaks,
            rebooting=rebooting,
            battery=None if battery is None else Integrator.from_json(battery),
            site=SiteState() if site is None else SiteState.from_json(site),
        )


def state_path(directory: Path, serial: str) -> Path:
    return directory / f"energy-{serial_name(serial)}.json"


def progress_path(path: Path) -> Path:
    """The battery integrator's progress file beside state file ``path``."""
    return path.with_suffix(".battery")


class EnergyStore:
    def __init__(
        self,
        path: Path,
        *,
        flush_interval: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.flush_interval = flush_interval
        self.clock = clock
        self.state = self._load()
        self._resume()
        self._dirty = False
        self._flushed_at = clock()
        self._failing = False
        self._progress_failing = False

    def _load(self) -> GatewayEnergy:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return GatewayEnergy()
        except OSError as exc:
            log.error("cannot read %s (%s); starting afresh", self.path, exc.strerror or exc)
            return GatewayEnergy()
        try:
            return GatewayEnergy.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            quarantine(self.path, str(exc) or type(exc).__name__)
            return GatewayEnergy()

    def _resume(self) -> None:
        """After a ``kill -9``: the integrator's progress since the state was written."""
        try:
            line = progress_path(self.path).read_bytes()
        except OSError:
            return
        battery = self.state.battery or Integrator()
        if battery.resume(line):
            self.state.battery = battery
            log.info("%s: battery energy resumed from its progress file", self.path)

    def progress(self, line: bytes) -> None:
        """The integrator's latest sample, rewritten in place (a single write, not
        fsynced: it survives ``kill -9``, and a power cut only loses progress)."""
        path = progress_path(self.path)
        try:
            if self._progress_failing or not self.path.parent.is_dir():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.pwrite(fd, line.ljust(_PROGRESS_BYTES - 1) + b"\n", 0)
            finally:
                os.close(fd)
        except OSError as exc:
            if not self._progress_failing:
                log.error("cannot write %s (%s); retried", path, exc.strerror or exc)
            self._progress_failing = True
            return
        self._progress_failing = False

    def changed(self, *, urgent: bool = False) -> None:
        """The state moved; written now if ``urgent``, else within the interval."""
        self._dirty = True
        if urgent:
            self.flush()
        elif self.clock() - self._flushed_at >= self.flush_interval:
            self.flush(sync_directory=False)

    def flush(self, *, durable: bool = True, sync_directory: bool = True) -> bool:
        """Write the state if it moved; True if a file was written. With
        ``durable=False`` the caller must run :func:`~envoy_ingest.statefile.sync_all`;
        with ``sync_directory=False`` the replacement may wait for the filesystem's next
        fsync (a periodic write: see the module's doc)."""
        if not self._dirty:
            return False
        data = json.dumps(self.state.to_json(), separators=(",", ":")).encode()
        try:
            write_atomic(self.path, data, durable=durable, sync_directory=sync_directory)
        except OSError as exc:
            if not self._failing:
                log.error(
                    "cannot write %s (%s); counter state is kept in memory and retried",
                    self.path,
                    exc.strerror or exc,
                )
            self._failing = True
            return False
        self._failing = False
        self._dirty = False
        self._flushed_at = self.clock()
        return True
