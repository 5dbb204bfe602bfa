"""The storage CT: ``/ivp/meters/readings``, matched to ``/ivp/meters`` by ``eid``.

::

    [
      {"eid": 704643840, "timestamp": 1709829517, "activePower": -2579.823,
       "apparentPower": 461.253, "reactivePower": 676.781, "pwrFactor": -1.0,
       "voltage": 242.582, "current": 14.575, "freq": 60.0,
       "actEnergyDlvd": 2274358.602, "actEnergyRcvd": 2971414.344,
       "channels": [{"eid": 1778385681, "timestamp": 1709829517, "activePower": -2114.856, ...},
                    {...}, {...}]}
    ]

Production and consumption come from production.json; only the storage CT is
read here (negative ``activePower`` = charging). Readings are matched by
``eid`` because 8.3 lists CTs that ``/ivp/meters`` does not enable.
"""

from __future__ import annotations

from envoy_ingest.envoy.capabilities import METERS_READINGS, Capabilities, Snapshot
from envoy_ingest.gateway_json import dicts, number, put, report_time
from envoy_ingest.normalize.production import PHASES
from envoy_ingest.point import FieldValue, Point

_FIELDS = (
    ("power_w", "activePower"),
    ("voltage_v", "voltage"),
    ("current_a", "current"),
    ("power_factor", "pwrFactor"),
    ("apparent_power_va", "apparentPower"),
    ("reactive_power_var", "reactivePower"),
    ("frequency_hz", "freq"),
)
#: A channel is a phase that is not wired when all of these are 0 (``freq`` is
#: often still reported there).
_MEASURED = (
    "activePower",
    "apparentPower",
    "reactivePower",
    "voltage",
    "current",
    "actEnergyDlvd",
    "actEnergyRcvd",
)


def storage_points(snapshot: Snapshot, caps: Capabilities, default_time: int) -> list[Point]:
    """``enphase_meter`` with ``flow=storage``, one point per wired phase."""
    eids = set(caps.storage_ct_eids)
    points: list[Point] = []
    for reading in dicts(snapshot.get(METERS_READINGS)):
        if str(reading.get("eid")) not in eids:
            continue
        channels = dicts(reading.get("channels"))
        if "channels" not in reading and caps.phase_count == 1:
            channels = [reading]
        for index, channel in enumerate(channels[: len(PHASES)]):
            if not any(number(channel.get(key)) for key in _MEASURED):
                continue
            fields: dict[str, FieldValue] = {}
            for name, key in _FIELDS:
                put(fields, name, channel.get(key))
            time = (
                report_time(channel.get("timestamp"))
                or report_time(reading.get("timestamp"))
                or default_time
            )
            tags = {"flow": "storage", "phase": PHASES[index]}
            points.append(Point("enphase_meter", fields, time, tags))
    return points
