"""Events of the site's state: the grid lost and back, the generator started and
stopped, the storage mode or reserve changed. Pure: a :class:`SiteState`
(persisted in the energy state file) and the points that change it.

- ``grid``: every change of ``grid_connected`` on ``enphase_system``: "grid
  lost", then "grid back after 1 h 23 min" with ``duration_s``, the time from
  the first observation without grid to the first with it again;
- ``generator``: every change of ``running`` on ``enphase_generator``:
  "generator started", "generator stopped after ..." with ``duration_s``;
- ``storage_mode``: a change of ``storage_mode`` or ``storage_reserve_pct`` on
  ``enphase_system`` (the Enphase cloud overwrites modes set locally).

The first observation after start writes no event unless the state file
remembers another state (a restart during an outage still ends it with
"grid back" and its whole duration). An observation older than the last one
is ignored (never a step back in time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envoy_ingest.energy.counter import finite, integer
from envoy_ingest.point import FieldValue, Point

EVENT = "enphase_event"


@dataclass(slots=True)
class Flag:
    """A remembered on/off state and since when (the first observation of it)."""

    on: bool
    since: int
    seen: int  # the latest observation

    def to_json(self) -> list[Any]:
        return [self.on, self.since, self.seen]

    @classmethod
    def from_json(cls, data: Any) -> Flag:
        on, since, seen = data
        if not isinstance(on, bool):
            raise ValueError("flag is not a boolean")
        return cls(on, integer(since), integer(seen))


@dataclass(slots=True)
class SiteState:
    grid: Flag | None = None
    generator: Flag | None = None
    storage_mode: str | None = None
    storage_reserve: float | None = None
    storage_seen: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "grid": None if self.grid is None else self.grid.to_json(),
            "generator": None if self.generator is None else self.generator.to_json(),
            "storage_mode": self.storage_mode,
            "storage_reserve": self.storage_reserve,
            "storage_seen": self.storage_seen,
        }

    @classmethod
    def from_json(cls, data: Any) -> SiteState:
        if not isinstance(data, dict):
            raise ValueError("site state is not an object")
        grid, gen, mode, reserve = (
            data["grid"],
            data["generator"],
            data["storage_mode"],
            data["storage_reserve"],
        )
        if mode is not None and not isinstance(mode, str):
            raise ValueError("storage mode is not a string")
        return cls(
            grid=None if grid is None else Flag.from_json(grid),
            generator=None if gen is None else Flag.from_json(gen),
            storage_mode=mode,
            storage_reserve=None if reserve is None else finite(reserve),
            storage_seen=integer(data["storage_seen"]),
        )


def duration_text(seconds: float) -> str:
    """``"2 h 05 min"``, ``"7 min"``, ``"45 s"``."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    hours, minutes = divmod(s // 60, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _event(kind: str, t: int, text: str, **fields: FieldValue) -> Point:
    return Point(EVENT, {"text": text, **fields}, t, {"kind": kind})


def _flip(flag: Flag | None, on: bool, t: int) -> tuple[Flag | None, float | None]:
    """The new flag and, when it changed, how long the previous state lasted
    (None: no change, or the first observation)."""
    if flag is None:
        return Flag(on, t, t), None
    if t < flag.seen:
        return flag, None
    if on == flag.on:
        flag.seen = t
        return flag, None
    return Flag(on, t, t), float(t - flag.since)


def observe(state: SiteState, p: Point) -> list[Point]:
    """The events that point ``p`` causes (``state`` updated)."""
    fields = p.fields
    events: list[Point] = []
    if p.measurement == "enphase_system":
        grid = fields.get("grid_connected")
        if isinstance(grid, bool):
            was = state.grid
            state.grid, lasted = _flip(was, grid, p.time)
            if lasted is not None:
                if grid:
                    text = f"grid back after {duration_text(lasted)}"
                    events.append(_event("grid", p.time, text, duration_s=lasted))
                else:
                    events.append(_event("grid", p.time, "grid lost"))
        events += _storage(state, p)
    elif p.measurement == "enphase_generator":
        running = fields.get("running")
        if isinstance(running, bool):
            state.generator, lasted = _flip(state.generator, running, p.time)
            if lasted is not None:
                if running:
                    events.append(_event("generator", p.time, "generator started"))
                else:
                    text = f"generator stopped after {duration_text(lasted)}"
                    events.append(_event("generator", p.time, text, duration_s=lasted))
    return events


def _storage(state: SiteState, p: Point) -> list[Point]:
    mode = p.fields.get("storage_mode")
    reserve = p.fields.get("storage_reserve_pct")
    mode = mode if isinstance(mode, str) else None
    reserve = reserve if isinstance(reserve, float) and reserve == reserve else None
    if (mode is None and reserve is None) or p.time < state.storage_seen:
        return []
    state.storage_seen = p.time
    changes: list[str] = []
    if mode is not None:
        if state.storage_mode is not None and mode != state.storage_mode:
            changes.append(f"storage mode changed from {state.storage_mode} to {mode}")
        state.storage_mode = mode
    if reserve is not None:
        old = state.storage_reserve
        if old is not None and reserve != old:
            changes.append(f"battery reserve changed from {old:g} % to {reserve:g} %")
        state.storage_reserve = reserve
    if not changes:
        return []
    return [_event("storage_mode", p.time, "; ".join(changes))]
