"""What the probe's answers say, read leniently: the readers behind
:func:`envoy_ingest.envoy.capabilities.detect` (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envoy_ingest.gateway_json import active, dicts, label, mapping, number


def generator_configured(body: Any) -> bool:
    """``/ivp/ss/gen_config`` describes a generator (``{}`` where none is
    configured, ``{"error": ...}`` or 404 where the firmware has none)."""
    config = mapping(body)
    return config is not None and any(key in config for key in _GEN_CONFIG_KEYS)


def device_data_usable(body: Any) -> bool:
    """``/ivp/pdm/device_data`` lists every microinverter: ``deviceCount`` below
    ``deviceDataLimit`` and at least one active ``pcu`` with a serial."""
    if not isinstance(body, Mapping):
        return False
    count, limit = number(body.get("deviceCount")), number(body.get("deviceDataLimit"))
    if count is None or limit is None or count >= limit:
        return False
    return any(
        isinstance(d, Mapping)
        and d.get("devName") == "pcu"
        and d.get("active") is True
        and bool(d.get("sn"))
        for d in body.values()
    )


def entry(entries: Any, type_: str) -> Mapping[str, Any] | None:
    return next((e for e in dicts(entries) if e.get("type") == type_), None)


def enabled_meters(body: Any) -> list[Mapping[str, Any]]:
    """Enabled CTs of ``/ivp/meters`` (``[]`` or ``{"error": ...}`` where none)."""
    return [m for m in dicts(body) if label(m.get("state")) == "enabled"]


def phase_count(enabled: list[Mapping[str, Any]], pj: Mapping[str, Any]) -> int | None:
    counts = [int(n) for m in enabled if (n := number(m.get("phaseCount")))]
    if counts:
        return max(counts)
    entries = [*dicts(pj.get("production")), *dicts(pj.get("consumption"))]
    live = [
        sum(1 for line in dicts(e.get("lines")) if any(number(v) for v in line.values()))
        for e in entries
        if e.get("type") == "eim" and active(e) and isinstance(e.get("lines"), list)
    ]
    if not live or max(live) == 0:
        return None
    return max(live)


#: Keys of a configured generator in ``/ivp/ss/gen_config`` (pyenphase reads them all).
_GEN_CONFIG_KEYS = ("gen_type", "start_method", "name_plate_rating_wat", "generator_id")


def ensemble_groups(body: Any) -> frozenset[str]:
    """Types of the ``/ivp/ensemble/inventory`` groups that list a device."""
    return frozenset(
        kind
        for group in dicts(body)
        if (kind := label(group.get("type")).upper()) and dicts(group.get("devices"))
    )


def encharge_count(body: Any) -> int:
    return sum(
        len(dicts(group.get("devices"))) for group in dicts(body) if group.get("type") == "ENCHARGE"
    )
