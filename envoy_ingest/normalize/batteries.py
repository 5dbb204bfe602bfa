"""Batteries: AC Batteries (ACB) and IQ Batteries (Encharge), in aggregate and each.

ACB in aggregate, ``storage[0]`` of ``/production.json`` (only when
``activeCount`` > 0 and ``percentFull`` is present; positive ``wNow`` =
discharging)::

    "storage": [{"type": "acb", "activeCount": 3, "readingTime": 1731943992,
                 "wNow": 260, "whNow": 930, "state": "discharging", "percentFull": 25}]

Each ACB, ``/inventory.json?deleted=1`` group ``ACB`` (``admin_state`` 0 =
removed; some 8.3 builds send numbers as strings) with its watts from
``/api/v1/production/inverters`` entries with ``devType`` 11::

    [{"type": "ACB", "devices": [{"serial_num": "121917000000", "admin_state": 2,
        "last_rpt_date": "1781991008", "provisioned": true, "communicating": true,
        "producing": true, "percentFull": 2, "maxCellTemp": 32, "charge_status": "idle"}]}]
    [{"serialNumber": "121917000000", "devType": 11, "lastReportDate": 1781991006,
      "lastReportWatts": 4, "maxReportWatts": 271}]

IQ Batteries, ``/ivp/ensemble/inventory`` group ``ENCHARGE`` and
``/ivp/ensemble/power`` (the key has a colon; mW, positive = discharging)::

    [{"type": "ENCHARGE", "devices": [{"serial_num": "122249097612", "percentFull": 15,
        "temperature": 29, "maxCellTemp": 30, "communicating": true,
        "last_rpt_date": 1695769447, "encharge_capacity": 3500}]},
     {"type": "ENPOWER", "devices": [...]}]
    {"devices:": [{"serial_num": "122249097612", "real_power_mw": -136000, "soc": 15}]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envoy_ingest.envoy.capabilities import (
    API_V1_INVERTERS,
    ENSEMBLE_INVENTORY,
    ENSEMBLE_POWER,
    INVENTORY,
    Snapshot,
)
from envoy_ingest.gateway_json import (
    JsonObject,
    acb_storage,
    dicts,
    flag,
    integer,
    mapping,
    number,
    put,
    report_time,
    serial,
    text,
)
from envoy_ingest.point import FieldValue, Point

#: Capacity of one AC Battery, as the gateway counts it (``Max_energy`` of
#: ``/ivp/ensemble/secctrl`` is 1240 Wh per ACB). Used only to weigh ACB
#: against IQ batteries in a site's combined charge.
ACB_CAPACITY_WH = 1240.0
STATES = frozenset({"charging", "discharging", "idle", "full"})


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One kind of battery, summed over the site."""

    count: int
    power_w: float | None
    soc_pct: float | None
    energy_wh: float | None
    capacity_wh: float | None
    state: str | None = None


def acb_aggregate(production: JsonObject | None) -> Aggregate | None:
    """The ACBs from ``storage[0]`` of production.json."""
    found = acb_storage(production)
    if found is None:
        return None
    acb, count = found
    soc = number(acb.get("percentFull"))
    capacity = count * ACB_CAPACITY_WH
    energy = number(acb.get("whNow"))
    if energy is None and soc is not None:
        energy = soc / 100 * capacity
    return Aggregate(
        count, number(acb.get("wNow")), soc, energy, capacity, _state(acb.get("state"))
    )


def encharge_aggregate(snapshot: Snapshot) -> Aggregate | None:
    """The IQ batteries: count and capacity from the inventory, power and charge
    from ``/ivp/ensemble/power`` (charge falls back to the inventory's)."""
    inventory = snapshot.get(ENSEMBLE_INVENTORY)
    devices = encharge_devices(inventory)
    power = encharge_power(snapshot)
    if isinstance(inventory, list):
        serials = [s for d in devices if (s := serial(d.get("serial_num")))]
    else:
        serials = list(power)
    if not serials:
        return None
    by_serial = {s: d for d in devices if (s := serial(d.get("serial_num")))}

    watts = [number(power[s].get("real_power_mw")) if s in power else None for s in serials]
    power_w = sum(w for w in watts if w is not None) / 1000 if None not in watts else None

    socs: list[float] = []
    capacities: list[float] = []
    for s in serials:
        soc = number(power.get(s, {}).get("soc"))
        if soc is None:
            soc = number(by_serial.get(s, {}).get("percentFull"))
        if soc is not None:
            socs.append(soc)
        if (cap := number(by_serial.get(s, {}).get("encharge_capacity"))) is not None and cap > 0:
            capacities.append(cap)
    energy = capacity = soc_pct = None
    if len(socs) == len(serials):
        if len(capacities) == len(serials):
            capacity = sum(capacities)
            energy = sum(pct / 100 * wh for pct, wh in zip(socs, capacities, strict=True))
            soc_pct = energy / capacity * 100
        else:
            soc_pct = sum(socs) / len(socs)
    return Aggregate(len(serials), power_w, soc_pct, energy, capacity)


def system_fields(production: JsonObject | None, snapshot: Snapshot) -> dict[str, FieldValue]:
    """``batteries``, ``battery_w``, ``battery_soc_pct``, ``battery_state`` of
    ``enphase_system``; each only when every kind of battery present gives it."""
    kinds = [a for a in (acb_aggregate(production), encharge_aggregate(snapshot)) if a is not None]
    if not kinds:
        return {}
    fields: dict[str, FieldValue] = {"batteries": sum(a.count for a in kinds)}
    power = [a.power_w for a in kinds]
    battery_w = sum(p for p in power if p is not None) if None not in power else None
    put(fields, "battery_w", battery_w)
    soc: float | None
    if len(kinds) == 1:
        soc = kinds[0].soc_pct
    else:
        energy = [a.energy_wh for a in kinds]
        capacity = [a.capacity_wh for a in kinds]
        known = None not in energy and None not in capacity
        total_capacity = sum(c for c in capacity if c is not None)
        soc = None
        if known and total_capacity > 0:
            soc = sum(e for e in energy if e is not None) / total_capacity * 100
    put(fields, "battery_soc_pct", soc)
    state = kinds[0].state if len(kinds) == 1 and kinds[0].state else derive_state(battery_w, soc)
    if state is not None:
        fields["battery_state"] = state
    return fields


def battery_points(snapshot: Snapshot, now: int) -> list[Point]:
    """``enphase_battery``: each IQ battery, then each ACB."""
    return [*_encharge_points(snapshot, now), *_acb_points(snapshot, now)]


def latest_report(snapshot: Snapshot) -> int | None:
    """The latest ``last_rpt_date`` of the IQ batteries (``/ivp/ensemble/inventory``)
    and AC Batteries (``/inventory.json``): the time of the battery system's
    aggregate, which carries none."""
    devices = [*encharge_devices(snapshot.get(ENSEMBLE_INVENTORY))]
    devices += inventory_devices(snapshot, "ACB").values()
    times = [t for d in devices if (t := report_time(d.get("last_rpt_date"))) is not None]
    return max(times, default=None)


def derive_state(power_w: float | None, soc_pct: float | None) -> str | None:
    """Positive power = discharging; at rest: full at 100 %, else idle."""
    if power_w is None:
        return None
    if power_w > 0:
        return "discharging"
    if power_w < 0:
        return "charging"
    return "full" if soc_pct is not None and soc_pct >= 100 else "idle"


def encharge_devices(inventory: Any) -> list[JsonObject]:
    return [
        d
        for group in dicts(inventory)
        if group.get("type") == "ENCHARGE"
        for d in dicts(group.get("devices"))
    ]


def encharge_power(snapshot: Snapshot) -> dict[str, JsonObject]:
    body = mapping(snapshot.get(ENSEMBLE_POWER)) or {}
    devices = body.get("devices:", body.get("devices"))
    return {s: d for d in dicts(devices) if (s := serial(d.get("serial_num")))}


def inventory_devices(snapshot: Snapshot, kind: str) -> dict[str, JsonObject]:
    """Devices of one ``/inventory.json`` group by serial, removed ones
    (``admin_state`` 0) left out; the first entry wins for a repeated serial."""
    found: dict[str, JsonObject] = {}
    for group in dicts(snapshot.get(INVENTORY)):
        if group.get("type") != kind:
            continue
        for device in dicts(group.get("devices")):
            s = serial(device.get("serial_num"))
            if s and integer(device.get("admin_state")) != 0:
                found.setdefault(s, device)
    return found


def status_fields(device: JsonObject) -> dict[str, FieldValue]:
    """``provisioned``, ``communicating``, ``producing`` of an inventory entry."""
    fields: dict[str, FieldValue] = {}
    for name in ("provisioned", "communicating", "producing"):
        if (value := flag(device.get(name))) is not None:
            fields[name] = value
    return fields


# --- helpers -----------------------------------------------------------------


def _state(value: Any) -> str | None:
    state = (text(value) or "").lower()
    return state if state in STATES else None


def _encharge_points(snapshot: Snapshot, now: int) -> list[Point]:
    power = encharge_power(snapshot)
    points: list[Point] = []
    seen: set[str] = set()
    for device in encharge_devices(snapshot.get(ENSEMBLE_INVENTORY)):
        s = serial(device.get("serial_num"))
        if not s or s in seen:
            continue
        seen.add(s)
        fields: dict[str, FieldValue] = {}
        reading = power.get(s, {})
        put(fields, "power_w", reading.get("real_power_mw"), divisor=1000)
        soc = number(device.get("percentFull"))
        put(fields, "soc_pct", soc if soc is not None else reading.get("soc"))
        put(fields, "temperature_c", device.get("temperature"))
        put(fields, "max_temperature_c", device.get("maxCellTemp"))
        if (communicating := flag(device.get("communicating"))) is not None:
            fields["communicating"] = communicating
        _put_state(fields)
        put(fields, "capacity_wh", device.get("encharge_capacity"))
        if (led := integer(device.get("led_status"))) is not None:
            fields["led_status"] = led
        if (switch_off := flag(device.get("dc_switch_off"))) is not None:
            fields["dc_switch_off"] = switch_off
        time = report_time(device.get("last_rpt_date")) or now
        points.append(Point("enphase_battery", fields, time, {"serial": s, "type": "encharge"}))
    for s, reading in power.items():  # reported by power only
        if s in seen:
            continue
        fields = {}
        put(fields, "power_w", reading.get("real_power_mw"), divisor=1000)
        put(fields, "soc_pct", reading.get("soc"))
        _put_state(fields)
        if fields:
            points.append(Point("enphase_battery", fields, now, {"serial": s, "type": "encharge"}))
    return points


def _acb_points(snapshot: Snapshot, now: int) -> list[Point]:
    inventory = inventory_devices(snapshot, "ACB")
    watts = {
        s: e
        for e in dicts(snapshot.get(API_V1_INVERTERS))
        if integer(e.get("devType")) == 11 and (s := serial(e.get("serialNumber")))
    }
    points: list[Point] = []
    for s in [*inventory, *(s for s in watts if s not in inventory)]:
        device, reading = inventory.get(s, {}), watts.get(s, {})
        fields: dict[str, FieldValue] = {}
        put(fields, "power_w", reading.get("lastReportWatts"))
        put(fields, "max_power_w", reading.get("maxReportWatts"))
        put(fields, "soc_pct", device.get("percentFull"))
        put(fields, "max_temperature_c", device.get("maxCellTemp"))
        fields.update(status_fields(device))
        if (state := _state(device.get("charge_status"))) is not None:
            fields["state"] = state
        times = [
            t
            for t in (
                report_time(reading.get("lastReportDate")),
                report_time(device.get("last_rpt_date")),
            )
            if t is not None
        ]
        if fields:
            tags = {"serial": s, "type": "acb"}
            points.append(Point("enphase_battery", fields, max(times, default=now), tags))
    return points


def _put_state(fields: dict[str, FieldValue]) -> None:
    power, soc = fields.get("power_w"), fields.get("soc_pct")
    state = derive_state(
        power if isinstance(power, float) else None, soc if isinstance(soc, float) else None
    )
    if state is not None:
        fields["state"] = state
