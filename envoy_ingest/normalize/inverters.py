"""Microinverters: watts from ``/ivp/pdm/device_data`` or ``/api/v1/production/inverters``,
status from ``/inventory.json?deleted=1``.

``/ivp/pdm/device_data`` (about 8.2+; used where :func:`device_data_usable`),
keyed by device id; active ``pcu`` entries are the microinverters::

    {"553648384": {"devName": "pcu", "sn": "122344043197", "active": true, "modGone": false,
       "channels": [{"watts": {"now": 255, "max": 371},
                     "wattHours": {"today": 1239},
                     "lastReading": {"endDate": 1748576887, "duration": 903,
                                     "dcVoltageINmV": 32363, "dcCurrentINmA": 8078,
                                     "acVoltageINmV": 248156, "acCurrentInmA": 1049,
                                     "acFrequencyINmHz": 50013, "channelTemp": 38},
                     "lifetime": {"joulesProduced": 354281850}}]},
     "deviceCount": 17, "deviceDataLimit": 50}

``/api/v1/production/inverters`` (every firmware; ``devType`` 1 = microinverter,
11 = ACB, absent on old firmware)::

    [{"serialNumber": "122002026181", "lastReportDate": 1695301309, "devType": 1,
      "lastReportWatts": 13, "maxReportWatts": 287}]

``/inventory.json?deleted=1`` group ``PCU``::

    [{"type": "PCU", "devices": [{"serial_num": "532437030305", "admin_state": 2,
        "last_rpt_date": "1785332504", "provisioned": true, "communicating": true,
        "producing": true}]}]

The endpoints can disagree (report times, devices listed in one only): a
microinverter listed only in the inventory gets a point with its status alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from envoy_ingest.envoy.capabilities import (
    API_V1_INVERTERS,
    DEVICE_DATA,
    Capabilities,
    Snapshot,
    device_data_usable,
)
from envoy_ingest.gateway_json import (
    JsonObject,
    dicts,
    integer,
    mapping,
    path,
    put,
    report_time,
    serial,
)
from envoy_ingest.normalize.batteries import inventory_devices, status_fields
from envoy_ingest.point import FieldValue, Point

_MILLI = 1000.0
_JOULES_PER_WH = 3600.0


def microinverters(
    snapshot: Snapshot, caps: Capabilities
) -> dict[str, tuple[dict[str, FieldValue], int | None]]:
    """Serial -> (power fields, report time) from the source the capabilities chose:
    device_data where usable (falling back to the v1 list when it failed this
    time), else ``/api/v1/production/inverters``."""
    body = snapshot.get(DEVICE_DATA)
    if caps.device_data and device_data_usable(body):
        return _from_device_data(body)
    return _from_v1(snapshot.get(API_V1_INVERTERS))


def inverter_points(snapshot: Snapshot, caps: Capabilities, now: int) -> list[Point]:
    """``enphase_inverter``: one point per microinverter."""
    readings = microinverters(snapshot, caps)
    status = inventory_devices(snapshot, "PCU")
    points: list[Point] = []
    for s in [*readings, *(s for s in status if s not in readings)]:
        fields, reading_time = readings.get(s, ({}, None))
        device = status.get(s)
        status_time = None
        if device is not None:
            fields = {**fields, **status_fields(device)}
            status_time = report_time(device.get("last_rpt_date"))
        if fields:
            # the later of the two report times; ``now`` when neither says
            time = max(reading_time or 0, status_time or 0) or now
            points.append(Point("enphase_inverter", fields, time, {"serial": s}))
    return points


def count(snapshot: Snapshot, caps: Capabilities) -> int | None:
    """Number of microinverters the device answers list (``None`` when absent or
    empty: every site has at least one)."""
    body = snapshot.get(DEVICE_DATA)
    if caps.device_data and device_data_usable(body):
        found = _device_data_pcus(body)
    elif isinstance(v1 := snapshot.get(API_V1_INVERTERS), list):
        found = _v1_inverters(v1)
    else:
        return None
    # The serials alone, as microinverters() would key them: no fields read
    # (the totals job counts every minute).
    return sum(1 for _ in found) or None


# --- helpers -----------------------------------------------------------------


def _device_data_pcus(body: Any) -> Iterator[tuple[str, JsonObject]]:
    """The active ``pcu`` entries of device_data with their serials, each serial once."""
    seen: set[str] = set()
    for device in (mapping(body) or {}).values():
        if not isinstance(device, Mapping) or device.get("devName") != "pcu":
            continue
        s = serial(device.get("sn"))
        if not s or device.get("active") is not True or s in seen:
            continue
        seen.add(s)
        yield s, device


def _v1_inverters(body: Any) -> Iterator[tuple[str, JsonObject]]:
    """The microinverter entries of ``/api/v1/production/inverters`` with their
    serials, each serial once."""
    seen: set[str] = set()
    for entry in dicts(body):
        if entry.get("devType") is not None and integer(entry.get("devType")) != 1:
            continue  # 11 = ACB, handled with the batteries
        s = serial(entry.get("serialNumber"))
        if not s or s in seen:
            continue
        seen.add(s)
        yield s, entry


def _from_device_data(body: Any) -> dict[str, tuple[dict[str, FieldValue], int | None]]:
    found: dict[str, tuple[dict[str, FieldValue], int | None]] = {}
    for s, device in _device_data_pcus(body):
        channel = path(device, "channels", 0)
        reading = path(channel, "lastReading")
        fields: dict[str, FieldValue] = {}
        put(fields, "power_w", path(channel, "watts", "now"))
        put(fields, "max_power_w", path(channel, "watts", "max"))
        put(fields, "dc_voltage_v", path(reading, "dcVoltageINmV"), _MILLI)
        put(fields, "dc_current_a", path(reading, "dcCurrentINmA"), _MILLI)
        put(fields, "ac_voltage_v", path(reading, "acVoltageINmV"), _MILLI)
        put(fields, "ac_current_a", path(reading, "acCurrentInmA"), _MILLI)
        put(fields, "frequency_hz", path(reading, "acFrequencyINmHz"), _MILLI)
        put(fields, "temperature_c", path(reading, "channelTemp"))
        put(fields, "lifetime_wh", path(channel, "lifetime", "joulesProduced"), _JOULES_PER_WH)
        found[s] = (fields, report_time(path(reading, "endDate")))
    return found


def _from_v1(body: Any) -> dict[str, tuple[dict[str, FieldValue], int | None]]:
    found: dict[str, tuple[dict[str, FieldValue], int | None]] = {}
    for s, entry in _v1_inverters(body):
        fields: dict[str, FieldValue] = {}
        put(fields, "power_w", entry.get("lastReportWatts"))
        put(fields, "max_power_w", entry.get("maxReportWatts"))
        found[s] = (fields, report_time(entry.get("lastReportDate")))
    return found
