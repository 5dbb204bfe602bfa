"""InfluxDB line protocol, written by hand because it is small and exact.

Escaping follows https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/:
measurement: comma and space; tag keys, tag values and field keys: comma,
equals sign and space; string field values: double quote and backslash.
Floats are always written with a decimal point or exponent (``5.0``), integers
with the ``i`` suffix, booleans as ``true``/``false``. Timestamps are seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from envoy_ingest.point import FieldValue, Point

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})


def _key(s: str) -> str:
    return s.translate(_KEY_ESCAPES)


def format_value(value: FieldValue) -> str | None:
    """Format one field value; ``None`` for values line protocol cannot carry (NaN, inf)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = repr(value)
        return text if ("." in text or "e" in text) else text + ".0"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def encode_point(point: Point) -> str | None:
    """One line of line protocol (no newline), or ``None`` when no field is writable."""
    fields = []
    for k in sorted(point.fields):
        v = format_value(point.fields[k])
        if v is not None:
            fields.append(f"{_key(k)}={v}")
    if not fields:
        return None
    head = point.measurement.translate(_MEASUREMENT_ESCAPES)
    for k in sorted(point.tags):
        v = point.tags[k]
        if v != "":
            head += f",{_key(k)}={_key(v)}"
    return f"{head} {','.join(fields)} {point.time}"


def encode(points: Iterable[Point]) -> str:
    """Line protocol for many points, one per line, with a trailing newline."""
    lines = [line for p in points if (line := encode_point(p)) is not None]
    return "".join(line + "\n" for line in lines)
