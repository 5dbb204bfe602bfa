"""When each gateway's jobs run: stable phases spread evenly over the interval.

A fleet must not poll in bursts (thousands of gateways at the same second,
after every start or restart). Each job of a gateway runs at a fixed phase of
its interval, taken from a stable hash of the gateway's identity and counted
from the Unix epoch, so:

- across a fleet the runs are spread evenly over the interval;
- a restart (or a reload, or a backward jump of the host clock) keeps every
  gateway at its phase: no burst, and the gateway sees the same cadence as before;
- the devices job of a gateway runs half a totals interval away from its
  totals job (when one interval divides the other, as by default), so the two
  rarely wait for each other's turn at the weak gateway.

At start every gateway is probed (several requests each, and a TLS
handshake), so the first totals runs are spread over two intervals: each
gateway starts in the first or the second (a stable choice, half the fleet
each), at its phase. Every gateway is probed within two totals intervals:
a phase in the last tenth of that window (:data:`START_MARGIN`) is taken in
the first interval instead, so that the worker's own start-up and a busy
first minute cannot push a first poll past it.

The scheduler does not keep a timer per gateway: phases are rounded down to
a slot of about :data:`SLOT_SECONDS` (:func:`slot`), and the gateways of one
slot start together (each its own cycle). The runs stay spread evenly over the
interval, in steps of half a second.
"""

from __future__ import annotations

import hashlib
import math

#: The width the phases are rounded to (each interval is cut into whole slots).
SLOT_SECONDS = 0.5
#: The part of the start window (``ramp`` intervals) in which no later slot is chosen.
START_MARGIN = 0.1
#: A time this close before a point of a job's grid counts as at it (the rounding
#: of a float through a datetime is a microsecond).
GRID_TOLERANCE = 1e-3


def stable_fraction(key: str) -> float:
    """A number in [0, 1) from ``key``, the same in every process and on every machine."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def start_offsets(
    identity: str, totals_interval: float, devices_interval: float
) -> tuple[float, float]:
    """Seconds into its interval at which each job of gateway ``identity`` runs:
    ``(totals_offset, devices_offset)``, each in ``[0, interval)``."""
    totals = stable_fraction(identity) * totals_interval
    spot = stable_fraction(identity + "/devices")
    periods = devices_interval / totals_interval
    if periods >= 1 and math.isclose(periods, round(periods)):
        # Which of the totals periods within the devices interval, then half a
        # totals interval after the totals phase.
        k = int(spot * round(periods))
        devices = (totals + totals_interval / 2 + k * totals_interval) % devices_interval
    else:
        devices = spot * devices_interval
    return totals, devices


def slot(offset: float, interval: float) -> tuple[int, float]:
    """The slot of a job at ``offset`` seconds into its interval: ``(index, phase)``,
    its phase the start of the slot (at most one slot width before ``offset``)."""
    count = max(1, round(interval / SLOT_SECONDS))
    width = interval / count
    index = min(int(offset / width), count - 1)
    return index, index * width


def next_run(now: float, offset: float, interval: float) -> float:
    """The first time at or after ``now`` (Unix seconds) that is ``offset`` seconds
    past a multiple of ``interval`` since the epoch."""
    return now + (offset - now) % interval


def interval_index(t: float, phase: float, interval: float) -> int:
    """Which interval at ``phase`` the time ``t`` (Unix seconds) is in: ``k`` for
    ``[phase + k * interval, phase + (k + 1) * interval)``."""
    return math.floor((t - phase + GRID_TOLERANCE) / interval)


def first_run(identity: str, now: float, offset: float, interval: float, ramp: int) -> float:
    """The first run of a job: at its phase, in one of the first ``ramp`` intervals
    after ``now`` (a stable choice per gateway, so a fleet's start is spread too)."""
    k = int(stable_fraction(identity + "/start") * ramp)
    first = next_run(now, offset, interval)
    latest = now + ramp * interval * (1 - START_MARGIN)
    while k > 0 and first + k * interval > latest:
        k -= 1
    return first + k * interval
