"""The data contract's field types and tags (docs/schema.md), as the tests check
them: every field not named here is a finite float."""

from __future__ import annotations

#: non-negative counts (int)
COUNTS = frozenset({"inverters", "batteries"})
#: the gateway's numeric codes, written as it sends them (int)
CODES = frozenset({"led_status", "admin_mode"})
FLAGS = frozenset(
    {
        "provisioned",
        "communicating",
        "producing",
        "dc_switch_off",
        "grid_connected",
        "charge_from_grid",
        "running",
        "closed",
    }
)
STATES = frozenset(
    {
        "battery_state",
        "state",
        "grid_mode",
        "mains_admin_state",
        "mains_oper_state",
        "grid_state",
        "admin_state",
        "oper_state",
        "status",
        "mode",
        "storage_mode",
    }
)
#: measurement -> its own tags (the worker adds ``gateway`` and ``site``); a
#: point may lack an optional one (``load``)
TAGS = {
    "enphase_system": frozenset(),
    "enphase_meter": frozenset({"flow", "phase"}),
    "enphase_inverter": frozenset({"serial"}),
    "enphase_battery": frozenset({"serial", "type"}),
    "enphase_controller": frozenset({"serial", "type"}),
    "enphase_generator": frozenset(),
    "enphase_dry_contact": frozenset({"contact", "load"}),
}
#: What the devices job writes on ``enphase_system`` besides the CT energies.
SITE_SYSTEM_FIELDS = frozenset(
    {
        "battery_available_wh",
        "battery_capacity_wh",
        "battery_backup_wh",
        "battery_reserve_pct",
        "battery_reserve_configured_pct",
        "storage_mode",
        "storage_reserve_pct",
        "charge_from_grid",
        "very_low_soc_pct",
        "grid_connected",
        "grid_mode",
    }
)
