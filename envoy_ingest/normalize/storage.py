"""The battery system in aggregate and its storage settings, on ``enphase_system``.

``/ivp/ensemble/secctrl`` (the devices job, every cycle, on battery sites): the
gateway's own aggregate of the IQ batteries (``ENC_*``) and AC Batteries
(``ACB_*``), Wh; the backup reserve in force (``adjusted_backup_soc``) and as
configured (``configured_backup_soc``), %::

    {"agg_soc": 39, "Max_energy": 7220, "ENC_agg_avail_energy": 1890,
     "ENC_agg_backup_energy": 0, "Enc_max_available_capacity": 3500,
     "ACB_agg_energy": 930, "configured_backup_soc": 0, "adjusted_backup_soc": 0}

Every gateway with ensemble firmware answers it, with zeros where there is no
battery: it is read, and written, only where the probe found batteries.

``/admin/lib/tariff`` (read once an hour, at start and by ``run --once``)::

    {"tariff": {"storage_settings": {"mode": "self-consumption", "reserved_soc": 15.0,
        "very_low_soc": 5, "charge_from_grid": true, ...}, ...}, "schedule": {...}}
"""

from __future__ import annotations

from envoy_ingest.envoy.capabilities import SECCTRL, TARIFF, Capabilities, Snapshot
from envoy_ingest.gateway_json import JsonObject, flag, mapping, number, path, put, text
from envoy_ingest.normalize.batteries import latest_report
from envoy_ingest.point import FieldValue, Point


def system_points(snapshot: Snapshot, caps: Capabilities, now: int) -> list[Point]:
    """One ``enphase_system`` point with the battery system's energy and reserve,
    and the storage settings where they were read in this cycle; none on sites
    without batteries. Neither answer carries a report time: the point's is the
    latest battery report of the same cycle (``last_rpt_date``), so the same
    answers read twice write the same point; ``now`` where no battery reports one."""
    if not caps.batteries:
        return []
    fields = battery_fields(mapping(snapshot.get(SECCTRL)), caps)
    fields.update(settings_fields(snapshot.get(TARIFF)))
    if not fields:
        return []
    return [Point("enphase_system", fields, latest_report(snapshot) or now)]


def battery_fields(secctrl: JsonObject | None, caps: Capabilities) -> dict[str, FieldValue]:
    """``battery_available_wh``, ``battery_capacity_wh`` (IQ plus AC batteries);
    ``battery_backup_wh``, ``battery_reserve_pct``, ``battery_reserve_configured_pct``
    (the backup reserve: IQ batteries only, an AC Battery does not back up)."""
    if secctrl is None:
        return {}
    fields: dict[str, FieldValue] = {}
    parts = []
    if caps.encharge_count:
        parts.append(number(secctrl.get("ENC_agg_avail_energy")))
    if caps.acb_count:
        parts.append(number(secctrl.get("ACB_agg_energy")))
    if parts and None not in parts:
        fields["battery_available_wh"] = sum(p for p in parts if p is not None)
    # With AC Batteries the gateway's total (1240 Wh each); without, the IQ
    # batteries' (the same number there).
    capacity = secctrl.get("Max_energy" if caps.acb_count else "Enc_max_available_capacity")
    put(fields, "battery_capacity_wh", capacity)
    if caps.encharge_count:
        put(fields, "battery_backup_wh", secctrl.get("ENC_agg_backup_energy"))
        put(fields, "battery_reserve_pct", secctrl.get("adjusted_backup_soc"))
        put(fields, "battery_reserve_configured_pct", secctrl.get("configured_backup_soc"))
    return fields


def settings_fields(tariff: object) -> dict[str, FieldValue]:
    """``storage_mode`` (as the gateway says: ``self-consumption``, ``backup``,
    ``savings-mode``, ``economy``), ``storage_reserve_pct``, ``charge_from_grid``,
    ``very_low_soc_pct`` from ``tariff.storage_settings``."""
    settings = mapping(path(tariff, "tariff", "storage_settings"))
    if settings is None:
        return {}
    fields: dict[str, FieldValue] = {}
    if (mode := text(settings.get("mode"))) is not None:
        fields["storage_mode"] = mode
    put(fields, "storage_reserve_pct", settings.get("reserved_soc"))
    if (from_grid := flag(settings.get("charge_from_grid"))) is not None:
        fields["charge_from_grid"] = from_grid
    put(fields, "very_low_soc_pct", settings.get("very_low_soc"))
    return fields
