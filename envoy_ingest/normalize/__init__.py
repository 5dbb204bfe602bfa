"""Pure functions from a gateway's answers to points: no I/O, never raise.

``snapshot`` maps each request path (exactly as requested) to its parsed JSON,
or to the text of a body that is not JSON; failed endpoints are absent. What
cannot be read is left out: a value the gateway does not report is never
written as 0. Normalizers add only the measurement's own tags (``flow``,
``phase``, ``serial``, ``type``); the worker adds ``gateway`` and ``site``.

What each field needs (docs/schema.md has the full contract):

- ``totals``: the totals job's answer (``/production.json?details=1`` or
  ``/api/v1/production``), plus, merged in by the worker, the latest devices-job
  answers named by :attr:`Capabilities.totals_extra_paths`: IQ battery count,
  power and charge (``/ivp/ensemble/inventory``, ``/ivp/ensemble/power``), and
  the microinverter count where production.json is not polled
  (``/api/v1/production/inverters``).
- ``devices``: the devices job's answers, including the CT readings
  (``/ivp/meters/readings``: per-CT energies, grid import / export, the storage
  CT), written once per reading at the CT's own ``timestamp``; the battery
  system (``/ivp/ensemble/secctrl``), the System Controller, collar and
  combiner (``/ivp/ensemble/inventory``), the generator and dry contacts; and,
  in the cycles that read them (hourly), the storage settings
  (``/admin/lib/tariff``). The dry contacts' settings are merged in from the
  latest hourly read (:attr:`Capabilities.settings_kept_paths`).
- ``live``: the live job's one answer, ``/ivp/meters/readings`` (``enphase_live``,
  see :mod:`.live`).
"""

from __future__ import annotations

from collections.abc import Mapping

from envoy_ingest.envoy.capabilities import Capabilities, Snapshot
from envoy_ingest.gateway_json import count
from envoy_ingest.normalize import batteries, ct_readings, ensemble, inverters, production, storage
from envoy_ingest.normalize.live import live
from envoy_ingest.point import FieldValue, Point

__all__ = ["devices", "live", "totals"]

_PRODUCTION_FIELDS = (
    "production_w",
    "production_today_wh",
    "production_7d_wh",
    "production_lifetime_wh",
)


def totals(snapshot: Snapshot, caps: Capabilities, now: int) -> list[Point]:
    """``enphase_system`` (one point) and ``enphase_meter`` (per flow and phase).

    The system point's time is the latest ``readingTime`` of the production and
    consumption entries it was built from (``now`` where the source has none,
    e.g. ``/api/v1/production``). Nothing is written for a 3.x gateway reporting
    all-zero production: it does that for a while after a reboot.
    """
    body = production.production_json(snapshot)
    parsed = production.entries(body, caps)  # read once, for the three uses below
    fields, times = production.system_fields(snapshot, caps, parsed)
    if caps.firmware[:1] == (3,) and _all_zero(fields):
        return []
    inverters_entry = parsed.inverters or {}
    n_inverters = count(inverters_entry.get("activeCount"))
    if n_inverters is None:
        n_inverters = inverters.count(snapshot, caps)
    if n_inverters is not None:
        fields["inverters"] = n_inverters
    fields.update(batteries.system_fields(body, snapshot))
    time = max(times, default=now)
    points: list[Point] = []
    if fields:
        points.append(Point("enphase_system", fields, time))
    points += production.meter_points(snapshot, caps, time, parsed)
    return points


def devices(snapshot: Snapshot, caps: Capabilities, now: int) -> list[Point]:
    """``enphase_inverter`` and ``enphase_battery``, one point per device, at the
    device's own report time (``now`` where it has none); and from the CT
    readings ``enphase_meter`` energies per CT and phase, the storage CT, and the
    ``enphase_system`` grid import / export, at each reading's time. On battery
    and System Controller sites: the battery system and storage settings
    (``enphase_system``, at the latest battery report), ``enphase_controller``
    and the grid state (``enphase_system``) at the controller's report time,
    ``enphase_generator`` and ``enphase_dry_contact`` at the System
    Controller's (``now`` wherever no report time is given)."""
    return [
        *inverters.inverter_points(snapshot, caps, now),
        *batteries.battery_points(snapshot, now),
        *ct_readings.ct_points(snapshot, caps, now),
        *storage.system_points(snapshot, caps, now),
        *ensemble.site_points(snapshot, caps, now),
    ]


def _all_zero(fields: Mapping[str, FieldValue]) -> bool:
    values = [fields[k] for k in _PRODUCTION_FIELDS if k in fields]
    return bool(values) and all(v == 0 for v in values)
