"""Production, consumption and net: ``/production.json?details=1`` and ``/api/v1/production``.

``/production.json?details=1``::

    {
      "production": [
        {"type": "inverters", "activeCount": 19, "readingTime": 1695301333,
         "wNow": 246, "whLifetime": 26890410},
        {"type": "eim", "measurementType": "production", "activeCount": 1,
         "readingTime": 1695301418, "wNow": 165.53, "whToday": 139.351,
         "whLastSevenDays": 179155.351, "whLifetime": 26785327.351,
         "rmsCurrent": 3.685, "rmsVoltage": 247.631, "reactPwr": 381.654,
         "apprntPwr": 457.492, "pwrFactor": 0.35,
         "lines": [{"wNow": 82.1, "whToday": ..., "rmsVoltage": 123.8, ...}, ...]}
      ],
      "consumption": [
        {"type": "eim", "measurementType": "total-consumption", "activeCount": 1, ...},
        {"type": "eim", "measurementType": "net-consumption", "activeCount": 1, ...}
      ],
      "storage": [{"type": "acb", "activeCount": 0, "wNow": 0, "whNow": 0, "state": "idle"}]
    }

``lines`` (one per phase, L1, L2, L3) come only with ``details=1``; newer
firmware always sends three, with zeros for phases not wired. An ``eim`` entry
with ``activeCount`` 0 is a CT that does not measure: its numbers are noise.

``/api/v1/production`` (no report time)::

    {"wattHoursToday": 5481, "wattHoursSevenDays": 389581,
     "wattHoursLifetime": 93706280, "wattsNow": 5463}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from envoy_ingest.envoy.capabilities import (
    API_V1_PRODUCTION,
    PRODUCTION_JSON,
    Capabilities,
    Snapshot,
)
from envoy_ingest.gateway_json import JsonObject, active, dicts, mapping, number, put, report_time
from envoy_ingest.point import FieldValue, Point

#: Firmware that copies net consumption into total consumption (wNow, whLifetime).
TOTAL_IS_NET_FROM = (8, 3, 5433)

PHASES = ("l1", "l2", "l3")

#: enphase_system field suffix <- entry key, for consumption and net.
_SYSTEM_FIELDS = (
    ("_w", "wNow"),
    ("_today_wh", "whToday"),
    ("_7d_wh", "whLastSevenDays"),
    ("_lifetime_wh", "whLifetime"),
)
_METER_FIELDS = (
    ("power_w", "wNow"),
    ("today_wh", "whToday"),
    ("last_7d_wh", "whLastSevenDays"),
    ("lifetime_wh", "whLifetime"),
    ("voltage_v", "rmsVoltage"),
    ("current_a", "rmsCurrent"),
    ("power_factor", "pwrFactor"),
    ("apparent_power_va", "apprntPwr"),
    ("reactive_power_var", "reactPwr"),
)
#: Fields of a total-consumption entry that are plain copies of net consumption
#: under the 8.3.5433 fault and cannot be repaired: left out.
_COPIED_FROM_NET = ("current_a", "power_factor", "apparent_power_va", "reactive_power_var")


@dataclass(frozen=True, slots=True)
class Entries:
    """The entries of one production.json answer that carry data."""

    eim: JsonObject | None  # production CT, only when it measures
    inverters: JsonObject | None
    total: JsonObject | None  # total consumption, only when it measures
    net: JsonObject | None
    #: 8.3.5433: total consumption equals net (wNow and whLifetime both).
    total_is_net: bool


def production_json(snapshot: Snapshot) -> JsonObject | None:
    body = mapping(snapshot.get(PRODUCTION_JSON))
    if body is None or not isinstance(body.get("production"), list):
        return None
    return body


def entries(body: JsonObject | None, caps: Capabilities) -> Entries:
    if body is None:
        return Entries(None, None, None, None, total_is_net=False)
    production = dicts(body.get("production"))
    eim = next((e for e in production if e.get("type") == "eim"), None)
    inverters = next((e for e in production if e.get("type") == "inverters"), None)
    consumption = dicts(body.get("consumption"))
    total = _by_type(consumption, "total-consumption", 0)
    net = _by_type(consumption, "net-consumption", 1)
    total, net = (e if active(e) else None for e in (total, net))
    total_is_net = (
        caps.firmware >= TOTAL_IS_NET_FROM
        and total is not None
        and net is not None
        and _same(total, net, "wNow")
        and _same(total, net, "whLifetime")
    )
    return Entries(
        eim=eim if active(eim) else None,
        inverters=inverters,
        total=total,
        net=net,
        total_is_net=total_is_net,
    )


def system_fields(
    snapshot: Snapshot, caps: Capabilities, parsed: Entries | None = None
) -> tuple[dict[str, FieldValue], list[int]]:
    """``enphase_system`` production / consumption / net fields, and the report
    times of the entries they came from. ``parsed``: the :func:`entries` of the
    snapshot's production.json, when the caller has them already."""
    fields: dict[str, FieldValue] = {}
    times: list[int] = []
    source = caps.production_source
    if source is None and isinstance(snapshot.get(API_V1_PRODUCTION), Mapping):
        source = "api_v1"

    if source == "api_v1":
        api = mapping(snapshot.get(API_V1_PRODUCTION)) or {}
        put(fields, "production_w", api.get("wattsNow"))
        put(fields, "production_today_wh", api.get("wattHoursToday"))
        put(fields, "production_7d_wh", api.get("wattHoursSevenDays"))
        put(fields, "production_lifetime_wh", api.get("wattHoursLifetime"))

    body = production_json(snapshot)
    e = entries(body, caps) if parsed is None else parsed
    if source in ("eim", "inverters") and body is not None:
        main = e.eim if source == "eim" else e.inverters
        if main is not None:
            put(fields, "production_w", main.get("wNow"))
            put(fields, "production_lifetime_wh", main.get("whLifetime"))
            # today / 7 days: the CT when non-zero, else the inverters entry
            # (which lacks them on most firmware), else what the CT said.
            put(fields, "production_today_wh", _first_nonzero("whToday", e.eim, e.inverters))
            put(fields, "production_7d_wh", _first_nonzero("whLastSevenDays", e.eim, e.inverters))
            _add_time(times, main)

    total = corrected_total(e.total, e)
    for prefix, entry in (("consumption", total), ("net", e.net)):
        if entry is None:
            continue
        for suffix, key in _SYSTEM_FIELDS:
            put(fields, prefix + suffix, entry.get(key))
        _add_time(times, entry)
    return fields, times


def meter_points(
    snapshot: Snapshot, caps: Capabilities, default_time: int, parsed: Entries | None = None
) -> list[Point]:
    """``enphase_meter`` per flow and phase from the ``lines`` of measuring CTs.

    Without ``lines`` a single-phase site's entry is its L1; a multi-phase (or
    unknown) site without ``lines`` gets no per-phase points. ``parsed``: as for
    :func:`system_fields`.
    """
    e = entries(production_json(snapshot), caps) if parsed is None else parsed
    points: list[Point] = []
    for flow, entry in (("production", e.eim), ("consumption", e.total), ("net", e.net)):
        if entry is None:
            continue
        time = report_time(entry.get("readingTime")) or default_time
        whole = "lines" not in entry and caps.phase_count == 1
        lines = [entry] if whole else dicts(entry.get("lines"))
        for index, line in enumerate(lines[: len(PHASES)]):
            if not _wired(line):
                continue  # a phase that is not wired
            fields = _meter_fields(line)
            if flow == "consumption" and e.total_is_net:
                repaired = _repair_line(index, entry, e, whole)
                if repaired is None:
                    continue  # affected and not repairable: leave the phase out
                if repaired:
                    fields.update(repaired)
                    for name in _COPIED_FROM_NET:
                        fields.pop(name, None)
            if fields:
                tags = {"flow": flow, "phase": PHASES[index]}
                points.append(Point("enphase_meter", fields, time, tags))
    return points


def corrected_total(total: JsonObject | None, e: Entries) -> JsonObject | None:
    """Total consumption with the 8.3.5433 fault repaired (total = net +
    production for ``wNow`` and ``whLifetime``), or ``None`` when it cannot be."""
    if total is None or not e.total_is_net:
        return total
    if e.eim is None:
        return None
    return _sum_keys(total, e.eim)


# --- helpers -----------------------------------------------------------------


def _by_type(entries: list[JsonObject], kind: str, index: int) -> JsonObject | None:
    """The entry with ``measurementType`` ``kind``; by position when none says."""
    for entry in entries:
        if entry.get("measurementType") == kind:
            return entry
    if index < len(entries) and "measurementType" not in entries[index]:
        return entries[index]
    return None


def _wired(line: JsonObject) -> bool:
    """Any value of the line reads as a non-zero number (a loop, not any() over
    a generator: it runs for every phase of every poll)."""
    for v in line.values():  # noqa: SIM110
        if number(v):
            return True
    return False


def _same(a: JsonObject, b: JsonObject, key: str) -> bool:
    x, y = number(a.get(key)), number(b.get(key))
    return x is not None and x == y


def _first_nonzero(key: str, *candidates: JsonObject | None) -> float | None:
    values = [number(c.get(key)) for c in candidates if c is not None]
    present = [v for v in values if v is not None]
    return next((v for v in present if v != 0), present[0] if present else None)


def _add_time(times: list[int], entry: JsonObject) -> None:
    if (t := report_time(entry.get("readingTime"))) is not None:
        times.append(t)


def _meter_fields(line: JsonObject) -> dict[str, FieldValue]:
    fields: dict[str, FieldValue] = {}
    for name, key in _METER_FIELDS:
        put(fields, name, line.get(key))
    return fields


def _sum_keys(total: JsonObject, production: JsonObject) -> JsonObject | None:
    """``total`` with ``wNow`` and ``whLifetime`` replaced by total + production."""
    out = dict(total)
    for key in ("wNow", "whLifetime"):
        a, b = number(total.get(key)), number(production.get(key))
        if a is None or b is None:
            return None
        out[key] = a + b
    return out


def _repair_line(
    index: int, total: JsonObject, e: Entries, whole_entry: bool
) -> dict[str, FieldValue] | None:
    """Per-phase repair of the 8.3.5433 fault: a phase of total consumption that
    equals the same phase of net gets that phase of production added."""
    if e.eim is None or e.net is None:
        return None
    line: JsonObject | None = total
    net_line: JsonObject | None = e.net
    prod_line: JsonObject | None = e.eim
    if not whole_entry:
        line, net_line, prod_line = _line(total, index), _line(e.net, index), _line(e.eim, index)
    if line is None or net_line is None:
        return None
    if not (_same(line, net_line, "wNow") and _same(line, net_line, "whLifetime")):
        return {}  # this phase is not affected
    if prod_line is None:
        return None
    repaired = _sum_keys(line, prod_line)
    if repaired is None:
        return None
    return {"power_w": float(repaired["wNow"]), "lifetime_wh": float(repaired["whLifetime"])}


def _line(entry: JsonObject, index: int) -> JsonObject | None:
    lines = dicts(entry.get("lines"))
    return lines[index] if index < len(lines) else None
