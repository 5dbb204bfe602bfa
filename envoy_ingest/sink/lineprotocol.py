"""InfluxDB line protocol, written by hand because it is small and exact.

Escaping follows https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/:
measurement: comma and space; tag keys, tag values and field keys: comma,
equals sign and space; string field values: double quote and backslash.
Floats are always written with a decimal point or exponent (``5.0``), integers
with the ``i`` suffix, booleans as ``true``/``false``. Timestamps are seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from math import isfinite

from envoy_ingest.point import FieldValue, Point

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})


# Field names are the data contract's few dozen: each escaped once, with its "=".
_FIELD_PREFIX: dict[str, str] = {}
_FIELD_PREFIXES_KEPT = 1024


def _key(s: str) -> str:
    # Almost no key or tag value needs escaping: looking is cheaper than translating.
    if "," in s or "=" in s or " " in s or "\n" in s:
        return s.translate(_KEY_ESCAPES)
    return s


def _measurement(s: str) -> str:
    if "," in s or " " in s or "\n" in s:
        return s.translate(_MEASUREMENT_ESCAPES)
    return s


def _float(value: float) -> str | None:
    if not isfinite(value):
        return None
    text = repr(value)
    return text if ("." in text or "e" in text) else text + ".0"


def format_value(value: FieldValue) -> str | None:
    """Format one field value; ``None`` for values line protocol cannot carry (NaN, inf)."""
    kind = type(value)
    if kind is float:  # the exact types first (the common case), subclasses below
        return _float(value)  # type: ignore[arg-type]
    if kind is int:
        return f"{value}i"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return _float(value)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def encode_point(point: Point) -> str | None:
    """One line of line protocol (no newline), or ``None`` when no field is writable."""
    values = point.fields
    fields = []
    for k in sorted(values):
        v = format_value(values[k])
        if v is not None:
            prefix = _FIELD_PREFIX.get(k)
            if prefix is None:
                prefix = f"{_key(k)}="
                if len(_FIELD_PREFIX) < _FIELD_PREFIXES_KEPT:
                    _FIELD_PREFIX[k] = prefix
            fields.append(prefix + v)
    if not fields:
        return None
    head = _measurement(point.measurement)
    tags = point.tags
    if tags:
        for k in sorted(tags):
            v = tags[k]
            if v != "":
                head += f",{_key(k)}={_key(v)}"
    return f"{head} {','.join(fields)} {point.time}"


def encode(points: Iterable[Point]) -> str:
    """Line protocol for many points, one per line, with a trailing newline."""
    lines = [line for p in points if (line := encode_point(p)) is not None]
    return "".join(line + "\n" for line in lines)
