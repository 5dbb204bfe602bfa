"""Battery energy where no storage CT counts it: the battery power integrated.

Sites with a storage CT get ``battery_charged_lifetime_wh`` /
``battery_discharged_lifetime_wh`` from the CT's own counters
(``normalize/ct_readings.py``). Elsewhere the energy stage integrates the
``battery_w`` of the system points (positive = discharging) into two counters
that start at 0 when the battery is first seen:

- **Trapezoid, split at zero.** The power is a physical quantity sampled at
  instants; the straight line between two samples is the unbiased estimate
  (error of the order of dt^2 for smoothly changing power; the midnight values
  of ``daily.py`` use the same line). Where the line crosses zero (charging
  to discharging between two polls) its two triangles go to the two counters,
  so neither direction borrows the other's energy. A left rectangle would
  book a whole interval in the direction of its first sample.
- **No integration across a gap** of more than ``MAX_GAP_INTERVALS`` intervals
  (the polling interval, learned as the median of the last gaps between
  samples, ``DEFAULT_INTERVAL`` until three are known): the energy of a gap
  is missing, not invented.
- **Kill -9.** The state file is written in batches, so after a ``kill -9``
  it may hold accumulators older than values already written. Each sample is
  therefore also put in a one-line progress file (``energy-<serial>.battery``,
  rewritten in place, not fsynced: a killed process's writes are in the page
  cache) that :class:`~envoy_ingest.energy.store.EnergyStore` reads back when
  it is newer than the state file, so the written counters never step back.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from envoy_ingest.energy.counter import finite, integer

CHARGED = "battery_charged_lifetime_wh"
DISCHARGED = "battery_discharged_lifetime_wh"
MAX_GAP_INTERVALS = 3
DEFAULT_INTERVAL = 60  # s, the default totals interval, until gaps are known
GAPS_KEPT = 5
_GAPS_NEEDED = 3


def split_trapezoid(w0: float, w1: float, seconds: float) -> tuple[float, float]:
    """(charged, discharged) Wh of the straight line from ``w0`` to ``w1`` W
    over ``seconds`` (positive W = discharging)."""
    hours = seconds / 3600
    if w0 >= 0 and w1 >= 0:
        return 0.0, (w0 + w1) / 2 * hours
    if w0 <= 0 and w1 <= 0:
        return -(w0 + w1) / 2 * hours, 0.0
    share = w0 / (w0 - w1)  # where the line crosses zero
    first = abs(w0) * share / 2 * hours
    second = abs(w1) * (1 - share) / 2 * hours
    return (second, first) if w0 > 0 else (first, second)


@dataclass(slots=True)
class Integrator:
    """The two accumulated counters and the last sample, persisted."""

    charged: float = 0.0
    discharged: float = 0.0
    last_t: int | None = None
    last_w: float = 0.0
    gaps: list[int] = field(default_factory=list)

    @property
    def interval(self) -> float:
        if len(self.gaps) < _GAPS_NEEDED:
            return DEFAULT_INTERVAL
        return statistics.median_low(self.gaps)

    def add(self, t: int, w: float) -> bool:
        """One sample of battery power ``w`` (W) at report time ``t``; False when
        it is not newer than the last one (nothing changes)."""
        if self.last_t is not None:
            gap = t - self.last_t
            if gap <= 0:
                return False
            if gap <= MAX_GAP_INTERVALS * self.interval:
                charged, discharged = split_trapezoid(self.last_w, w, gap)
                self.charged += charged
                self.discharged += discharged
            self.gaps = [*self.gaps, gap][-GAPS_KEPT:]
        self.last_t, self.last_w = t, w
        return True

    def progress(self) -> bytes:
        """The one line of the progress file."""
        return f"{self.last_t} {self.charged!r} {self.discharged!r} {self.last_w!r}".encode()

    def resume(self, line: bytes) -> bool:
        """Take the progress file's line when it is newer than this state."""
        try:
            t_s, c_s, d_s, w_s = line.decode().split()
            t, c, d, w = int(t_s), float(c_s), float(d_s), float(w_s)
            for v in (c, d, w):
                finite(v)
        except ValueError:
            return False
        if (self.last_t is not None and t <= self.last_t) or c < self.charged:
            return False
        if d < self.discharged:
            return False
        self.last_t, self.charged, self.discharged, self.last_w = t, c, d, w
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "charged": self.charged,
            "discharged": self.discharged,
            "last_t": self.last_t,
            "last_w": self.last_w,
            "gaps": self.gaps,
        }

    @classmethod
    def from_json(cls, data: Any) -> Integrator:
        if not isinstance(data, dict):
            raise ValueError("battery integrator is not an object")
        last_t = data["last_t"]
        return cls(
            charged=finite(data["charged"]),
            discharged=finite(data["discharged"]),
            last_t=None if last_t is None else integer(last_t),
            last_w=finite(data["last_w"]),
            gaps=[integer(g) for g in data["gaps"]],
        )
