"""Reading gateway JSON without trusting it, and the rules over it that the
capability probe (envoy/capabilities.py) and the normalizers (normalize/) share.

Gateways send numbers as strings (some 8.3 builds), HTML where JSON was asked
for, ``{"error": ...}`` instead of a list, and keys that come and go between
firmware. Every reader here returns ``None`` for what it cannot read, so a
normalizer leaves the field out instead of raising or writing 0, and the probe
decides nothing from it. Imports neither envoy/ nor normalize/.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

JsonObject = Mapping[str, Any]
"""A JSON object of a gateway answer (read with the readers below, never trusted)."""

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
# Ints up to this size pass through float unchanged (53-bit mantissa).
_EXACT = 2**53


def number(value: Any) -> float | None:
    """A finite float from an int, float or numeric string; ``None`` otherwise
    (``bool`` is not a number here)."""
    kind = type(value)  # the common cases first, without the checks below
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is int:
        try:
            return float(value)
        except OverflowError:  # an int past the float range
            return None
    if isinstance(value, bool) or value is None:
        return None
    if not isinstance(value, int | float | str):
        return None
    try:
        result = float(value)
    except (ValueError, OverflowError):  # OverflowError: an int past the float range
        return None
    return result if math.isfinite(result) else None


def integer(value: Any) -> int | None:
    """An int from an integral number or numeric string (``"1781988156"``)."""
    if type(value) is int and -_EXACT <= value <= _EXACT:  # the common case: as is
        return value
    n = number(value)
    return int(n) if n is not None and n.is_integer() else None


def count(value: Any) -> int | None:
    """A count: a non-negative :func:`integer`, else ``None``."""
    n = integer(value)
    return n if n is not None and n >= 0 else None


def flag(value: Any) -> bool | None:
    """A bool from ``true``/``false``, ``0``/``1`` or their string forms."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def text(value: Any) -> str | None:
    """A non-empty stripped string."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def label(value: Any) -> str:
    """A string compared as a name (``state``, ``measurementType``): stripped and
    lower-cased, ``""`` for anything else."""
    return value.strip().lower() if isinstance(value, str) else ""


def report_time(value: Any) -> int | None:
    """A gateway timestamp in whole seconds; 0 and negatives mean "never"."""
    n = number(value)
    return int(n) if n is not None and n > 0 else None


def mapping(value: Any) -> JsonObject | None:
    return value if type(value) is dict or isinstance(value, Mapping) else None


def dicts(value: Any) -> list[JsonObject]:
    """The objects of a JSON list; ``[]`` for anything that is not a list."""
    if not isinstance(value, list):
        return []
    # type() first: parsed JSON objects are dicts, and the Mapping check is slow
    return [v for v in value if type(v) is dict or isinstance(v, Mapping)]


def path(value: Any, *keys: str | int) -> Any:
    """``value[k1][k2]...`` through objects and lists, ``None`` where it breaks."""
    for key in keys:
        if isinstance(key, int) and isinstance(value, list) and -len(value) <= key < len(value):
            value = value[key]
        elif isinstance(key, str) and (type(value) is dict or isinstance(value, Mapping)):
            value = value.get(key)
        else:
            return None
    return value


def put(fields: dict[str, Any], name: str, value: Any, divisor: float = 1.0) -> None:
    """Set a float field when ``value`` reads as a number (``divisor`` converts
    units, e.g. mV -> V); leave it out otherwise."""
    if type(value) is float:  # number()'s common case, without its call
        if math.isfinite(value):
            fields[name] = value / divisor if divisor != 1.0 else value
        return
    n = number(value)
    if n is not None:
        fields[name] = n / divisor if divisor != 1.0 else n


def serial(value: Any) -> str | None:
    """A serial number: gateways send it as a string, a few as a number."""
    if type(value) is str:  # the common case, without text()'s checks
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return text(value)


# --- rules ------------------------------------------------------------------------


def active(entry: JsonObject | None) -> bool:
    """A production.json entry that measures: ``activeCount`` > 0. An ``eim``
    entry with ``activeCount`` 0 is a CT that does not measure: its numbers are noise."""
    return entry is not None and (number(entry.get("activeCount")) or 0) > 0


def acb_storage(production: Any) -> tuple[JsonObject, int] | None:
    """The AC Batteries of production.json, as (``storage[0]``, how many): only
    with ``activeCount`` > 0 and a ``percentFull`` (some gateways report a count
    without it: not a working ACB)."""
    storage = dicts(production.get("storage")) if isinstance(production, Mapping) else []
    if not storage or "percentFull" not in storage[0]:
        return None
    n = count(storage[0].get("activeCount")) or 0
    return (storage[0], n) if n > 0 else None
