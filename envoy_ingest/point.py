"""The one type that crosses from normalize/ to sink/: a metric point.

A point is InfluxDB's data model: a measurement name, string tags, typed fields
and a timestamp in whole seconds (the gateway's own report time wherever it
gives one, so that reading the same report twice writes the same point again).

Field types are part of the public data contract: measurements are ``float``
(written ``5.0``), counts are ``int`` (written ``5i``), flags are ``bool`` and
states are ``str``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

FieldValue = float | int | bool | str

TOTALS_MEASUREMENTS = frozenset({"enphase_system", "enphase_meter"})
DEVICE_MEASUREMENTS = frozenset(
    {
        "enphase_inverter",
        "enphase_battery",
        "enphase_controller",
        "enphase_generator",
        "enphase_dry_contact",
    }
)
LIVE_MEASUREMENT = "enphase_live"

Kind = Literal["totals", "devices", "live"]
"""The parts of the data, each polled by its own job and written to its own
place: ``totals`` (enphase_system, enphase_meter: every minute, to ``bucket``),
``devices`` (enphase_inverter, enphase_battery, enphase_controller,
enphase_generator, enphase_dry_contact: every 5 minutes, to ``device_bucket``)
and, opt-in on sites with CTs, ``live`` (enphase_live: every few seconds, to
``live_bucket``; the first to go when the spool is full)."""
KINDS: tuple[Kind, ...] = ("totals", "devices", "live")


@dataclass(frozen=True, slots=True, init=False)
class Point:
    measurement: str
    fields: Mapping[str, FieldValue]
    time: int
    tags: Mapping[str, str] = field(default_factory=dict)

    def __init__(
        self,
        measurement: str,
        fields: Mapping[str, FieldValue],
        time: int,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        # What the generated __init__ of a frozen dataclass does, through the
        # slots' own setters rather than object.__setattr__ by name: a poll
        # makes dozens of points, a fleet thousands a second.
        _set_measurement(self, measurement)
        _set_fields(self, fields)
        _set_time(self, time)
        _set_tags(self, {} if tags is None else tags)

    def with_tags(self, **tags: str | None) -> Point:
        """Return a copy with extra tags; ``None`` values are left out."""
        merged = dict(self.tags)
        merged.update({k: v for k, v in tags.items() if v is not None})
        return Point(self.measurement, self.fields, self.time, merged)

    @property
    def kind(self) -> Kind:
        """``devices`` for per-device points (the device bucket), ``live`` for
        enphase_live (the live bucket), else ``totals``."""
        if self.measurement in DEVICE_MEASUREMENTS:
            return "devices"
        return "live" if self.measurement == LIVE_MEASUREMENT else "totals"


_slots = vars(Point)  # the slots' member descriptors
_set_measurement = _slots["measurement"].__set__
_set_fields = _slots["fields"].__set__
_set_time = _slots["time"].__set__
_set_tags = _slots["tags"].__set__
