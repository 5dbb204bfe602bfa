"""The CT meters: ``/ivp/meters/readings``, matched to ``/ivp/meters`` by ``eid``.

::

    [
      {"eid": 704643584, "timestamp": 1709829517, "activePower": 129.407, ...,
       "actEnergyDlvd": 4998251.825, "actEnergyRcvd": 253960.783,
       "channels": [{"eid": 1778385425, "timestamp": 1709829517,
                     "actEnergyDlvd": 2631217.196, "actEnergyRcvd": 93777.056, ...},
                    {...}, {...}]},
      {"eid": 704643840, "timestamp": 1709829517, "activePower": -2579.823,
       "apparentPower": 461.253, "reactivePower": 676.781, "pwrFactor": -1.0,
       "voltage": 242.582, "current": 14.575, "freq": 60.0,
       "actEnergyDlvd": 2274358.602, "actEnergyRcvd": 2971414.344, "channels": [...]}
    ]

Power of production and consumption comes from production.json every minute;
from here come every enabled CT's lifetime energies (``actEnergyDlvd`` through
the CT forwards, ``actEnergyRcvd`` backwards), the grid import and export of
the net-consumption CT, and the storage CT's power (negative = charging).
Readings are matched by ``eid`` because 8.3 lists CTs that ``/ivp/meters``
does not enable. Each reading is written at its own ``timestamp``.
"""

from __future__ import annotations

from envoy_ingest.envoy.capabilities import METERS_READINGS, Capabilities, Snapshot
from envoy_ingest.gateway_json import JsonObject, dicts, number, put, report_time
from envoy_ingest.normalize.production import PHASES
from envoy_ingest.point import FieldValue, Point

#: ``flow`` tag of each CT ``measurementType``, as production.json's flows are
#: named; any other type (``backfeed``, ``load``, ``evse``, ``pv3p``) is its own flow.
FLOWS = {
    "production": "production",
    "total-consumption": "consumption",
    "net-consumption": "net",
    "storage": "storage",
}
_ENERGY = (("delivered_lifetime_wh", "actEnergyDlvd"), ("received_lifetime_wh", "actEnergyRcvd"))
#: On the net-consumption CT, delivered is imported from the grid, received exported.
_GRID = (("grid_import_lifetime_wh", "actEnergyDlvd"), ("grid_export_lifetime_wh", "actEnergyRcvd"))
#: On the storage CT, received is charged into the battery, delivered discharged
#: from it (its ``activePower`` is negative while the batteries charge).
_BATTERY = (
    ("battery_charged_lifetime_wh", "actEnergyRcvd"),
    ("battery_discharged_lifetime_wh", "actEnergyDlvd"),
)
#: Storage CT fields besides the energies (other CTs' power is in production.json).
_POWER = (
    ("power_w", "activePower"),
    ("voltage_v", "voltage"),
    ("current_a", "current"),
    ("power_factor", "pwrFactor"),
    ("apparent_power_va", "apparentPower"),
    ("reactive_power_var", "reactivePower"),
    ("frequency_hz", "freq"),
)
#: A CT or channel measures nothing (a phase that is not wired, or an all-zero
#: answer) when all of these are 0 (``freq`` is often still reported there).
_MEASURED = (
    "activePower",
    "apparentPower",
    "reactivePower",
    "voltage",
    "current",
    "actEnergyDlvd",
    "actEnergyRcvd",
)


def ct_points(snapshot: Snapshot, caps: Capabilities, default_time: int) -> list[Point]:
    """``enphase_meter`` per enabled CT and wired phase (its energies; the storage
    CT's power too), and ``enphase_system`` grid import / export from the
    net-consumption CT and battery charged / discharged from the storage CT,
    each at the reading's ``timestamp`` (one system point per time)."""
    readings = {str(r.get("eid")): r for r in dicts(snapshot.get(METERS_READINGS))}
    points: list[Point] = []
    system: dict[int, dict[str, FieldValue]] = {}  # one system point per reading time
    for eid, kind in caps.cts:
        reading = readings.get(eid)
        if reading is None:
            continue
        time = report_time(reading.get("timestamp")) or default_time
        totals = {"net-consumption": _GRID, "storage": _BATTERY}.get(kind)
        if totals is not None and totals[0][0] not in _written(system) and measures(reading):
            fields: dict[str, FieldValue] = {}
            for name, key in totals:
                put(fields, name, reading.get(key))
            if time in system:
                system[time].update(fields)
            elif fields:
                system[time] = fields
                points.append(Point("enphase_system", fields, time))
        flow = FLOWS.get(kind, kind)
        keys = (*_POWER, *_ENERGY) if flow == "storage" else _ENERGY
        for index, channel in enumerate(channels(reading, caps)):
            if not measures(channel):
                continue
            fields = {}
            for name, key in keys:
                put(fields, name, channel.get(key))
            if fields:
                at = report_time(channel.get("timestamp")) or time
                tags = {"flow": flow, "phase": PHASES[index]}
                points.append(Point("enphase_meter", fields, at, tags))
    return points


def _written(system: dict[int, dict[str, FieldValue]]) -> set[str]:
    """The system fields already taken from a reading (the first CT of a kind wins)."""
    return {name for fields in system.values() for name in fields}


def channels(reading: JsonObject, caps: Capabilities) -> list[JsonObject]:
    """The per-phase channels of the phases ``/ivp/meters`` says are metered
    (channels beyond them are not wired and may carry copies of other CTs'
    numbers, as on 8.2.127 split phase). A single-phase reading without
    ``channels`` is its own L1."""
    wanted = min(caps.phase_count or len(PHASES), len(PHASES))
    if "channels" not in reading and wanted == 1:
        return [reading]
    return dicts(reading.get("channels"))[:wanted]


def measures(values: JsonObject) -> bool:
    for key in _MEASURED:  # noqa: SIM110  (not any() over a generator: it runs per channel)
        if number(values.get(key)):
            return True
    return False
