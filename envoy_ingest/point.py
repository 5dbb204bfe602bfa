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

FieldValue = float | int | bool | str

TOTALS_MEASUREMENTS = frozenset({"enphase_system", "enphase_meter"})
DEVICE_MEASUREMENTS = frozenset({"enphase_inverter", "enphase_battery"})


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    fields: Mapping[str, FieldValue]
    time: int
    tags: Mapping[str, str] = field(default_factory=dict)

    def with_tags(self, **tags: str | None) -> Point:
        """Return a copy with extra tags; ``None`` values are left out."""
        merged = dict(self.tags)
        merged.update({k: v for k, v in tags.items() if v is not None})
        return Point(self.measurement, self.fields, self.time, merged)

    @property
    def is_device(self) -> bool:
        """True for per-device points, which go to the device bucket."""
        return self.measurement in DEVICE_MEASUREMENTS
