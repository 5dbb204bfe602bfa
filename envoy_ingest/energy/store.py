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
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envoy_ingest.energy.counter import Counter, finite
from envoy_ingest.energy.daily import DayTrack
from envoy_ingest.statefile import quarantine, serial_name, write_atomic

log = logging.getLogger(__name__)

VERSION = 1


@dataclass(slots=True)
class GatewayEnergy:
    """Everything the energy stage remembers about one gateway."""

    counters: dict[str, Counter] = field(default_factory=dict)
    days: dict[str, DayTrack] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)  # point group -> highest W seen
    rebooting: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "counters": {k: c.to_json() for k, c in self.counters.items()},
            "days": {k: d.to_json() for k, d in self.days.items()},
            "peaks": self.peaks,
            "rebooting": self.rebooting,
        }

    @classmethod
    def from_json(cls, data: Any) -> GatewayEnergy:
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError("not an energy state of this version")
        peaks = {sys.intern(str(k)): finite(v) for k, v in dict(data["peaks"]).items()}
        rebooting = data["rebooting"]
        if not isinstance(rebooting, bool):
            raise ValueError("bad rebooting flag")
        return cls(
            counters={
                sys.intern(str(k)): Counter.from_json(v) for k, v in dict(data["counters"]).items()
            },
            days={sys.intern(str(k)): DayTrack.from_json(v) for k, v in dict(data["days"]).items()},
            peaks=peaks,
            rebooting=rebooting,
        )


def state_path(directory: Path, serial: str) -> Path:
    return directory / f"energy-{serial_name(serial)}.json"


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
        self._dirty = False
        self._flushed_at = clock()
        self._failing = False

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
