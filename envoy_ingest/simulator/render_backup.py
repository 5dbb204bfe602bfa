"""A backup site in the JSON shapes of real firmware: the IQ System Controller
(the ``ENPOWER`` group of ``/ivp/ensemble/inventory``: its grid relay; its dry
contacts), ``/ivp/ensemble/generator`` and ``/ivp/ss/gen_config``, and the
storage settings of ``/admin/lib/tariff``.

Shapes copied from the recorded 8.2.127 (System Controller, on grid) and
8.3.5169_with_generator sets. Off the grid (an outage) the relay is open:
``mains_oper_state`` "open", grid mode ``multimode-offgrid``. A running
generator's relay is closed: ``oper_state`` "closed" (the recorded idle one
reads "open").
"""

from __future__ import annotations

from typing import Any

from envoy_ingest.simulator.faults import Faults
from envoy_ingest.simulator.model import Model
from envoy_ingest.simulator.site import unit_hash

SELF_CONSUMPTION = "self-consumption"


def enpower(model: Model, t: float) -> dict[str, Any]:
    """The ``ENPOWER`` inventory group: one IQ System Controller."""
    site = model.site
    r = model.reading(t)
    relay = "closed" if r.grid_connected else "open"
    mode = "multimode-ongrid" if r.grid_connected else "multimode-offgrid"
    serial = f"4824{int(unit_hash(site.serial, 'enpower') * 10**8):08d}"
    device = {
        "part_num": "865-00378-r27",
        "serial_num": serial,
        "installed": site.install_time,
        "device_status": ["envoy.global.ok", "prop.done"],
        "last_rpt_date": int(t) - int(t) % 60,
        "admin_state": 24 if r.grid_connected else 25,
        "admin_state_str": f"ENPWR_STATE_OPER_{relay.upper()}",
        "created_date": site.install_time,
        "img_load_date": site.install_time,
        "img_pnum_running": "3.0.5654_rel/31.13",
        "communicating": True,
        "temperature": 72,
        "comm_level_sub_ghz": 4,
        "comm_level_2_4_ghz": 4,
        "mains_admin_state": "closed",
        "mains_oper_state": relay,
        "Enpwr_grid_mode": mode,
        "Enchg_grid_mode": mode,
        "Enpwr_relay_state_bm": 15868 if r.grid_connected else 15856,
        "Enpwr_curr_state_id": 16 if r.grid_connected else 17,
    }
    return {"type": "ENPOWER", "devices": [device]}


def generator(model: Model, t: float) -> dict[str, Any]:
    """``/ivp/ensemble/generator``: present, auto start on the batteries' charge."""
    gen = model.site.generator
    if gen is None:
        return {"admin_state": "unknown", "oper_state": "open", "present": 0, "type": 0}
    running = model.reading(t).generator_w > 0
    return {
        "admin_state": "on" if running else "open",
        "oper_state": "closed" if running else "open",
        "admin_mode": 2,
        "schedule": 0,
        "start_soc": round(gen.start_soc),
        "stop_soc": round(gen.stop_soc),
        "exc_on": 0,
        "present": 1,
        "type": 1,
    }


def tariff(model: Model, faults: Faults, t: float) -> dict[str, Any]:
    """``/admin/lib/tariff``: the storage settings in force at ``t``."""
    site = model.site
    mode, reserve = faults.storage_at(t, SELF_CONSUMPTION, site.battery_reserve_pct)
    date = str(int(site.install_time))
    settings = {
        "mode": mode,
        "operation_mode_sub_type": "",
        "reserved_soc": float(reserve),
        "very_low_soc": 5,
        "charge_from_grid": False,
        "date": date,
        "opt_schedules": False,
    }
    return {
        "tariff": {
            "currency": {"code": "USD"},
            "logger": "mylogger",
            "date": date,
            "storage_settings": settings,
            "single_rate": {"rate": 0.14, "sell": 0.02},
            "seasons": [],
            "seasons_sell": [],
        },
        "schedule": {"source": "Tariff", "batt_mode": mode, "reserved_soc": float(reserve)},
    }


def gen_config(model: Model) -> dict[str, Any]:
    """``/ivp/ss/gen_config``: the generator's settings (``{}`` without one)."""
    gen = model.site.generator
    if gen is None:
        return {}
    return {
        "max_cont_gen_amps": 25.0,
        "min_gen_loading_perc": 5,
        "max_gen_efficiency_perc": 100,
        "name_plate_rating_wat": round(gen.rating_w / 1000, 1),
        "start_method": "auto",
        "warm_up_mins": 0,
        "cool_down_mins": 0,
        "gen_type": "Standby",
        "model": "simulated",
        "manufacturer": "simulated",
        "last_updated_by": "ITK",
        "generator_id": f"30{int(unit_hash(model.site.serial, 'generator') * 10**8):08d}",
        "charge_from_generator": True,
    }


#: The System Controller's dry contacts: (id, load name) of the two it drives.
DRY_CONTACTS = (("NC1", "Water heater"), ("NO1", ""))


def dry_contacts(model: Model, t: float) -> dict[str, Any]:
    """``/ivp/ensemble/dry_contacts``: a load is shed (its contact opens) off the grid."""
    on_grid = model.reading(t).grid_connected
    return {
        "dry_contacts": [
            {"id": cid, "status": "closed" if on_grid or not load else "open"}
            for cid, load in DRY_CONTACTS
        ]
    }


def dry_contact_settings() -> dict[str, Any]:
    """``/ivp/ss/dry_contact_settings``: as the recorded 8.3.5169 set's."""
    return {
        "dry_contacts": [
            {
                "id": cid,
                "type": "LOAD" if load else "NONE",
                "grid_action": "apply" if load else "none",
                "micro_grid_action": "shed" if load else "none",
                "gen_action": "apply" if load else "none",
                "load_name": load,
                "mode": "manual",
                "soc_low": 30.0,
                "soc_high": 70.0,
            }
            for cid, load in DRY_CONTACTS
        ]
    }
