"""One lifetime counter series: a pure, clock-free state machine.

The gateway's lifetime counters (``*_lifetime_wh``) are what users bill by, and
they lie: zeros after a reboot, a one-off low answer, a microinverter's 32-bit
joule count wrapping, a gateway that was wiped, a value copied from elsewhere.
:func:`update` decides, reading by reading, what is written::

    corrected = raw + offset        (offset 0 until a correction is decided)

- A reading whose change since the last written value is *plausible* (no
  lower than it, no higher than ``rate_w`` could have produced in the elapsed
  time, see :func:`bound_wh`) is written.
- Any other reading is *held*: the field is not written for that point. Held
  readings that agree with each other and last (``CONFIRM_READINGS`` readings
  over ``CONFIRM_SECONDS``; ``ZERO_CONFIRM_SECONDS`` for a run of exact zeros)
  are confirmed and decided:

  - ``wrap``: a fall by a whole multiple of 2^32 J (1,193,046.47 Wh) on a
    series that counts microinverter joules: compensated exactly, the energy
    produced while the readings were held is kept;
  - ``reset``: any other lasting fall (gateway replaced or wiped);
  - ``jump``: a lasting rise by more than could have been produced;
    for both the written counter carries on from the last written value.

  A plausible reading that comes before the held ones are confirmed shows
  they were a ``glitch``: they are dropped.

Signed counters (net: import minus export) may fall; for them a change of
either sign beyond the bound is held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

WRAP_WH = 2**32 / 3600  # a microinverter's 32-bit joule counter, in Wh
CONFIRM_READINGS = 3
CONFIRM_SECONDS = 600
ZERO_CONFIRM_SECONDS = 3600
# A decrease this small is rounding between firmware readings: written as the
# last value rather than held.
TOLERANCE_WH = 1.0
# Energy always allowed on top of rate x time (rounding, report-time jitter).
SLACK_WH = 100.0

Kind = Literal["glitch", "wrap", "reset", "jump"]


def bound_wh(rate_w: float, seconds: float) -> float:
    """The most energy a plausible reading may add in ``seconds``."""
    return rate_w * max(seconds, 0.0) / 3600 + SLACK_WH


@dataclass(frozen=True, slots=True)
class Correction:
    """A decision about held readings (one event, one log line, one metric)."""

    kind: Kind
    since: int  # time of the first held reading
    last: float  # the last written value before it
    held: tuple[float, ...]  # the raw readings that were held
    offset: float  # the offset from now on

    def describe(self, name: str) -> str:
        shown = ", ".join(f"{v:.3f}" for v in self.held[:5])
        more = f" (+{len(self.held) - 5} more)" if len(self.held) > 5 else ""
        what = {
            "glitch": "came back: a glitch, those readings were not written",
            "wrap": "stayed down by a multiple of 2^32 J: an inverter counter wrap, "
            "compensated exactly",
            "reset": "stayed down: a reset, the written counter carries on",
            "jump": "jumped up by more than could have been produced: the written "
            "counter carries on",
        }[self.kind]
        return (
            f"{name}: gateway read {shown}{more} Wh after {self.last:.3f} Wh written; "
            f"{what} (offset now {self.offset:.3f} Wh)"
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    value: float | None  # what to write; None: the field is left out of this point
    correction: Correction | None = None


@dataclass(slots=True)
class Counter:
    """The state of one series, persisted in the state directory."""

    signed: bool = False
    wraps: bool = False
    offset: float = 0.0
    last: float | None = None  # last written (corrected) value
    last_t: int = 0
    held: list[tuple[int, float]] = field(default_factory=list)  # (time, raw)

    def to_json(self) -> dict[str, Any]:
        return {
            "signed": self.signed,
            "wraps": self.wraps,
            "offset": self.offset,
            "last": self.last,
            "last_t": self.last_t,
            "held": [list(h) for h in self.held],
        }

    @classmethod
    def from_json(cls, data: Any) -> Counter:
        """Raises ValueError on anything but what :meth:`to_json` wrote."""
        if not isinstance(data, dict):
            raise ValueError("counter is not an object")
        last = data["last"]
        held = [(integer(t), finite(v)) for t, v in data["held"]]
        return cls(
            signed=_bool(data["signed"]),
            wraps=_bool(data["wraps"]),
            offset=finite(data["offset"]),
            last=None if last is None else finite(last),
            last_t=integer(data["last_t"]),
            held=held,
        )


def finite(v: Any) -> float:
    """``v`` as a float if it is a finite JSON number (state files), else ValueError."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"not a number: {v!r}")
    return float(v)


def integer(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"not an integer: {v!r}")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"not a boolean: {v!r}")
    return v


def _plausible(c: Counter, dt: float, delta: float, rate_w: float) -> bool:
    hi = bound_wh(rate_w, dt)
    lo = -hi if c.signed else -TOLERANCE_WH
    return lo <= delta <= hi


def _confirmed(held: list[tuple[int, float]]) -> bool:
    if len(held) < CONFIRM_READINGS:
        return False
    span = held[-1][0] - held[0][0]
    zeros = all(v == 0 for _, v in held)
    return span >= (ZERO_CONFIRM_SECONDS if zeros else CONFIRM_SECONDS)


def _accept(c: Counter, t: int, value: float) -> Outcome:
    c.last, c.last_t = value, t
    c.held.clear()
    return Outcome(value)


def update(c: Counter, t: int, raw: float, rate_w: float) -> Outcome:
    """Feed one reading (report time ``t``, the gateway's ``raw`` value);
    ``rate_w`` is the most power the series could plausibly carry."""
    if c.last is None:
        # The first reading is written as is, unless it is a reboot's 0.
        if raw != 0:
            return _accept(c, t, raw + c.offset)
        if c.held and t <= c.held[-1][0]:
            return Outcome(None)
        c.held.append((t, raw))
        return _accept(c, t, raw + c.offset) if _confirmed(c.held) else Outcome(None)
    if t < c.last_t:
        return Outcome(None)  # older than what is written: never a step back in time
    value = raw + c.offset
    if t == c.last_t:
        # The same report read again (a restart, a retry): the same point again.
        return Outcome(value if value == c.last else None)
    delta = value - c.last
    if _plausible(c, t - c.last_t, delta, rate_w):
        glitch = None
        if c.held:
            glitch = Correction("glitch", c.held[0][0], c.last, _raws(c.held), c.offset)
        if not c.signed and value < c.last:
            value = c.last  # within TOLERANCE_WH: rounding
        out = _accept(c, t, value)
        return out if glitch is None else Outcome(out.value, glitch)
    if c.held:
        prev_t, prev_raw = c.held[-1]
        if t <= prev_t:
            return Outcome(None)
        if not _plausible(c, t - prev_t, raw - prev_raw, rate_w):
            c.held.clear()  # not the same new level: start confirming again
    c.held.append((t, raw))
    if not _confirmed(c.held):
        return Outcome(None)
    return _decide(c, rate_w)


def _raws(held: list[tuple[int, float]]) -> tuple[float, ...]:
    return tuple(v for _, v in held)


def _decide(c: Counter, rate_w: float) -> Outcome:
    assert c.last is not None
    first_t, first_raw = c.held[0]
    fall = c.last - (first_raw + c.offset)
    kind: Kind
    wrap = _wrap_count(c, fall, first_t - c.last_t, rate_w)
    if wrap:
        kind = "wrap"
        c.offset += wrap * WRAP_WH
    else:
        kind = "jump" if fall < 0 else "reset"
        c.offset = c.last - first_raw
    correction = Correction(kind, first_t, c.last, _raws(c.held), c.offset)
    t, raw = c.held[-1]
    value = raw + c.offset
    if not c.signed:
        value = max(value, c.last)
    out = _accept(c, t, value)
    return Outcome(out.value, correction)


def _wrap_count(c: Counter, fall: float, dt: float, rate_w: float) -> int:
    """k when the fall is k x 2^32 J less the energy produced meanwhile, else 0."""
    if not c.wraps or fall <= 0:
        return 0
    k = math.ceil((fall - TOLERANCE_WH) / WRAP_WH)
    produced = k * WRAP_WH - fall
    return k if k >= 1 and -TOLERANCE_WH <= produced <= bound_wh(rate_w, dt) else 0
