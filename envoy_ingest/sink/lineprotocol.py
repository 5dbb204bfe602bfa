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


# The escaped names of a point's fields and tags, in line order, found once per
# set of names (the data contract's few dozen combinations, shared by a fleet's
# gateways): name -> "name=" for fields, ",name=" for tags. Keyed by the names
# in the mapping's own order; bounded, emptied when full.
_FIELD_PLANS: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}
_TAG_PLANS: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}
_PLANS_KEPT = 1024
_MEASUREMENTS: dict[str, str] = {}


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


def _plan(
    plans: dict[tuple[str, ...], tuple[tuple[str, str], ...]], names: tuple[str, ...], lead: str
) -> tuple[tuple[str, str], ...]:
    plan = tuple((k, f"{lead}{_key(k)}=") for k in sorted(names))
    if len(plans) >= _PLANS_KEPT:
        plans.clear()
    plans[names] = plan
    return plan


def encode_point(point: Point) -> str | None:
    """One line of line protocol (no newline), or ``None`` when no field is writable."""
    values = point.fields
    names = tuple(values)
    plan = _FIELD_PLANS.get(names) or _plan(_FIELD_PLANS, names, "")
    fields = []
    for k, prefix in plan:
        v = values[k]
        kind = type(v)
        if kind is float:  # format_value's common cases, without its call
            if isfinite(v):  # type: ignore[arg-type]
                fields.append(prefix + repr(v))  # a float's repr has a "." or an exponent
        elif kind is int:
            fields.append(f"{prefix}{v}i")
        elif (text := format_value(v)) is not None:
            fields.append(prefix + text)
    if not fields:
        return None
    measurement = point.measurement
    head = _MEASUREMENTS.get(measurement)
    if head is None:
        head = _measurement(measurement)
        if len(_MEASUREMENTS) < _PLANS_KEPT:
            _MEASUREMENTS[measurement] = head
    tags = point.tags
    if tags:
        names = tuple(tags)
        for k, prefix in _TAG_PLANS.get(names) or _plan(_TAG_PLANS, names, ","):
            v = tags[k]
            if v != "":
                # _key(v), inline: a call per tag costs more than the rare escape
                if "," in v or "=" in v or " " in v or "\n" in v:
                    v = v.translate(_KEY_ESCAPES)
                head += prefix + v
    return f"{head} {','.join(fields)} {point.time}"


def encode(points: Iterable[Point]) -> str:
    """Line protocol for many points, one per line, with a trailing newline."""
    lines = [line for p in points if (line := encode_point(p)) is not None]
    return "".join(line + "\n" for line in lines)
