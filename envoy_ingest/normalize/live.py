"""Live power: ``enphase_live`` from ``/ivp/meters/readings`` alone.

The live job reads only the CT readings (about 5 KB, about 0.3 s to answer;
see :mod:`.ct_readings` for their shape), every few seconds. Each enabled CT
(matched by ``eid``) gives one point for its flow (``production``, ``net``,
``storage``, ``consumption`` from a total-consumption CT) and, on a site
metered on more than one phase, one point per wired phase::

    {"eid": 704643584, "timestamp": 1709829517, "activePower": -2579.823,
     "pwrFactor": -1.0, "voltage": 242.582, "current": 14.575, "freq": 60.0,
     "channels": [{"eid": 1778385425, "activePower": -1290.1, ...}, ...]}

Fields: ``power_w`` (``activePower``), ``voltage_v``, ``current_a``,
``frequency_hz``, ``power_factor``. A whole-CT point of a multi-phase site has
no ``voltage_v`` or ``current_a`` (firmware reports one phase's or their sum
there); its phases carry them. Each point is at its reading's ``timestamp``, so
a reading read twice is the same point.

Without a total-consumption CT, consumption is derived as the totals job's
gateway derives it: production + net, per phase too (``power_w``; the
``voltage_v`` and ``frequency_hz`` of the net CT, which measures the same
line; no current or power factor, which two CTs cannot give).
"""

from __future__ import annotations

from envoy_ingest.envoy.capabilities import METERS_READINGS, Capabilities, Snapshot
from envoy_ingest.gateway_json import JsonObject, dicts, put, report_time
from envoy_ingest.normalize.ct_readings import FLOWS, channels, measures
from envoy_ingest.normalize.production import PHASES
from envoy_ingest.point import LIVE_MEASUREMENT, FieldValue, Point

_WHOLE = (("power_w", "activePower"), ("frequency_hz", "freq"), ("power_factor", "pwrFactor"))
_PHASE = (*_WHOLE, ("voltage_v", "voltage"), ("current_a", "current"))
#: Of the net CT's values, what derived consumption also has (the same line).
_SHARED = ("voltage_v", "frequency_hz")

_Key = tuple[str, str | None]  # (flow, phase or None for the whole CT)


def live(snapshot: Snapshot, caps: Capabilities, now: int) -> list[Point]:
    """``enphase_live`` per enabled CT's flow, and per phase on multi-phase sites."""
    readings = {str(r.get("eid")): r for r in dicts(snapshot.get(METERS_READINGS))}
    per_phase = (caps.phase_count or 1) > 1
    found: dict[_Key, tuple[dict[str, FieldValue], int]] = {}
    for eid, kind in caps.cts:
        reading = readings.get(eid)
        flow = FLOWS.get(kind)
        if flow is None or reading is None or not measures(reading):
            continue  # a CT of another kind (backfeed, load, ...) is not live data
        time = report_time(reading.get("timestamp")) or now
        _add(found, (flow, None), reading, _PHASE if not per_phase else _WHOLE, time)
        if not per_phase:
            continue
        for index, channel in enumerate(channels(reading, caps)):
            if measures(channel):
                at = report_time(channel.get("timestamp")) or time
                _add(found, (flow, PHASES[index]), channel, _PHASE, at)
    if not any(flow == "consumption" for flow, _ in found):
        _derive_consumption(found)
    return [
        Point(LIVE_MEASUREMENT, fields, time, _tags(flow, phase))
        for (flow, phase), (fields, time) in found.items()
    ]


def _tags(flow: str, phase: str | None) -> dict[str, str]:
    return {"flow": flow, "phase": phase} if phase else {"flow": flow}


def _add(
    found: dict[_Key, tuple[dict[str, FieldValue], int]],
    key: _Key,
    values: JsonObject,
    keys: tuple[tuple[str, str], ...],
    time: int,
) -> None:
    if key in found:  # a second CT of the same kind (8.3 lists extra ones): the first counts
        return
    fields: dict[str, FieldValue] = {}
    for name, source in keys:
        put(fields, name, values.get(source))
    if fields:
        found[key] = (fields, time)


def _derive_consumption(found: dict[_Key, tuple[dict[str, FieldValue], int]]) -> None:
    """Consumption = production + net, for the whole site and each phase both have."""
    for flow, phase in list(found):
        if flow != "net":
            continue
        net, net_time = found[(flow, phase)]
        production = found.get(("production", phase))
        if production is None:
            continue
        a, b = production[0].get("power_w"), net.get("power_w")
        if not isinstance(a, float) or not isinstance(b, float):
            continue
        fields: dict[str, FieldValue] = {"power_w": a + b}
        fields.update({k: net[k] for k in _SHARED if k in net})
        found[("consumption", phase)] = (fields, max(net_time, production[1]))
