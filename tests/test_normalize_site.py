"""The battery system, grid and backup state, generator, dry contacts and storage
settings (``normalize/storage.py``, ``normalize/ensemble.py``) on every recorded
gateway, with the exact values of the recorded JSON; and on answers the recorded
sets do not show (numbers as strings, HTML, truncated, missing keys)."""

from __future__ import annotations

from typing import Any

import pytest

from envoy_ingest import normalize
from envoy_ingest.envoy.capabilities import (
    DRY_CONTACT_SETTINGS,
    DRY_CONTACTS,
    ENSEMBLE_INVENTORY,
    GENERATOR,
    SECCTRL,
    TARIFF,
    Capabilities,
)
from envoy_ingest.point import Point
from tests import fixtures_io as fx
from tests.conftest import fixture_sets, require_fixtures
from tests.contract import SITE_SYSTEM_FIELDS

NOW = 1_700_000_000


def _battery(
    avail: float, cap: float, backup: float | None, reserve: float | None
) -> dict[str, Any]:
    fields: dict[str, Any] = {"battery_available_wh": avail, "battery_capacity_wh": cap}
    if backup is not None:
        fields |= {
            "battery_backup_wh": backup,
            "battery_reserve_pct": reserve,
            "battery_reserve_configured_pct": reserve,
        }
    return fields


def _storage(mode: str, reserve: float, from_grid: bool, very_low: float) -> dict[str, Any]:
    return {
        "storage_mode": mode,
        "storage_reserve_pct": reserve,
        "charge_from_grid": from_grid,
        "very_low_soc_pct": very_low,
    }


def _enpower(serial: str, time: int, mode: str, fahrenheit: float) -> tuple[Any, ...]:
    fields = {
        "grid_mode": mode,
        "mains_admin_state": "closed",
        "mains_oper_state": "closed",
        "temperature_c": (fahrenheit - 32) / 1.8,
        "communicating": True,
    }
    return ("system_controller", serial, time, fields)


#: set -> the battery system and storage settings on enphase_system, at the latest
#: battery report (last_rpt_date of the IQ batteries and AC Batteries)
SYSTEM_TIME = {
    "7.3.517": 1692817971,  # of 1692817971, 1692817716, 1692817944
    "7.6.185_with_cts_and_battery_3t": 1695769447,
    "8.1.41": 1692386075,
    "8.2.127_with_3cts_and_battery_split": 1709829437,
    "8.2.4382_ACB": 1732092823,  # the IQ battery's (no /inventory.json recorded)
    "8.3.1598_collar": 1752974610,
    "8.3.5169_ACB_inventory": 1781991429,  # the later ACB's ("1781991008", 1781991429)
}
SYSTEM: dict[str, dict[str, Any]] = {
    "7.3.517": _battery(10080.0, 10080.0, 10080.0, 100.0) | _storage("backup", 100.0, True, 10.0),
    "7.6.185_with_cts_and_battery_3t": _battery(525.0, 3500.0, 525.0, 15.0)
    | _storage("self-consumption", 15.0, True, 5.0),
    # no /admin/lib/tariff recorded (404)
    "8.1.41": _battery(9176.0, 9920.0, 2976.0, 30.0),
    "8.2.127_with_3cts_and_battery_split": _battery(5250.0, 25000.0, 5000.0, 20.0)
    | _storage("self-consumption", 20.0, False, 10.0),
    # IQ plus AC batteries: ENC_agg_avail_energy 1890 + ACB_agg_energy 930; Max_energy
    "8.2.4382_ACB": _battery(2820.0, 7220.0, 0.0, 0.0)
    | _storage("self-consumption", 0.0, False, 5.0),
    "8.3.1598_collar": _battery(8900.0, 10000.0, 10000.0, 100.0)
    | _storage("backup", 100.0, False, 5.0),
    # AC Batteries only: no backup reserve
    "8.3.5169_ACB_inventory": _battery(24.0, 2480.0, None, None)
    | _storage("self-consumption", 0.0, True, 5.0),
}
#: set -> (type, serial, time, fields) of each enphase_controller
CONTROLLERS: dict[str, list[tuple[Any, ...]]] = {
    "7.3.517": [_enpower("122029016399", 1692817873, "multimode-ongrid", 88)],
    "8.1.41": [_enpower("482326083757", 1692386076, "multimode-ongrid", 113)],
    "8.2.127_with_3cts_and_battery_split": [
        _enpower("12345678901001", 1709829514, "multimode-ongrid", 72)
    ],
    "8.2.4345_with_device_data": [_enpower("122446012073", 1748577041, "grid-tied", 76)],
    "8.3.1598_collar": [
        (
            "collar",
            "482520020939",
            1752939759,
            {"grid_state": "on_grid", "temperature_c": 42.0, "communicating": True},
        ),
        ("combiner", "482523040549", 1752945451, {"communicating": True}),
    ],
    "8.3.5169_with_generator": [_enpower("202411990001", 1785593329, "grid-tied", 79)],
}
#: set -> (time, fields) of the grid state on enphase_system
GRID: dict[str, tuple[int, dict[str, Any]]] = {
    "7.3.517": (1692817873, {"grid_connected": True, "grid_mode": "multimode-ongrid"}),
    "8.1.41": (1692386076, {"grid_connected": True, "grid_mode": "multimode-ongrid"}),
    "8.2.127_with_3cts_and_battery_split": (
        1709829514,
        {"grid_connected": True, "grid_mode": "multimode-ongrid"},
    ),
    "8.2.4345_with_device_data": (1748577041, {"grid_connected": True, "grid_mode": "grid-tied"}),
    "8.3.1598_collar": (1752939759, {"grid_connected": True}),
    "8.3.5169_with_generator": (1785593329, {"grid_connected": True, "grid_mode": "grid-tied"}),
}
GENERATORS = {
    "8.3.5169_with_generator": {
        "admin_state": "open",
        "oper_state": "open",
        "admin_mode": 2,
        "start_soc_pct": 30.0,
        "stop_soc_pct": 70.0,
        "running": False,
    }
}


def _contacts(
    status: str, mode: str, low: float, high: float, loads: tuple[str | None, ...]
) -> dict[str, tuple[str | None, dict[str, Any]]]:
    fields = {"status": status, "closed": status == "closed", "mode": mode}
    fields |= {"soc_low_pct": low, "soc_high_pct": high}
    ids = ("NC1", "NC2", "NO1", "NO2")
    return {cid: (load, dict(fields)) for cid, load in zip(ids, loads, strict=True)}


#: set -> contact -> (load tag, fields)
DRY: dict[str, dict[str, tuple[str | None, dict[str, Any]]]] = {
    "7.3.517": _contacts("closed", "manual", 30.0, 70.0, ("NC1 Test", "NC2", "No1", "NO2")),
    "8.1.41": _contacts("closed", "soc", 30.0, 40.0, ("Furnace", "AC", None, None)),
    "8.2.127_with_3cts_and_battery_split": _contacts(
        "closed", "manual", 30.0, 40.0, (None, None, None, None)
    ),
    "8.2.4345_with_device_data": _contacts("open", "manual", 30.0, 40.0, (None,) * 4),
    "8.3.5169_with_generator": _contacts(
        "closed", "manual", 30.0, 70.0, ("AC/Water heater", "Mini split/Range", None, None)
    ),
}
# 7.3.517: NC1's low threshold is 25; 8.1.41: the NO contacts are open and manual
DRY["7.3.517"]["NC1"][1]["soc_low_pct"] = 25.0
for _cid in ("NO1", "NO2"):
    DRY["8.1.41"][_cid] = (None, {**DRY["8.1.41"][_cid][1], "status": "open", "closed": False})
    DRY["8.1.41"][_cid][1]["mode"] = "manual"


def _points(name: str) -> list[Point]:
    d = fx.set_dir(name)
    caps = fx.capabilities(d)
    return normalize.devices(fx.devices_snapshot(d, caps), caps, NOW)


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_site_points(name: str) -> None:
    require_fixtures()
    points = _points(name)
    system = [
        (p.time, dict(p.fields))
        for p in points
        if p.measurement == "enphase_system" and set(p.fields) <= SITE_SYSTEM_FIELDS
    ]
    want = [(SYSTEM_TIME[name], SYSTEM[name])] if name in SYSTEM else []
    if name in GRID:
        want.append(GRID[name])
    assert sorted(system, key=str) == sorted(want, key=str)
    controllers = [
        (p.tags["type"], p.tags["serial"], p.time, dict(p.fields))
        for p in points
        if p.measurement == "enphase_controller"
    ]
    assert controllers == CONTROLLERS.get(name, [])
    # the generator and dry contacts: at the System Controller's report time
    relays = CONTROLLERS[name][0][2] if name in DRY else None
    generators = [(p.time, dict(p.fields)) for p in points if p.measurement == "enphase_generator"]
    assert generators == ([(relays, GENERATORS[name])] if name in GENERATORS else [])
    contacts = {
        p.tags["contact"]: (p.tags.get("load"), dict(p.fields))
        for p in points
        if p.measurement == "enphase_dry_contact"
    }
    assert contacts == DRY.get(name, {})
    assert all(p.time == relays for p in points if p.measurement == "enphase_dry_contact")


SITE = Capabilities(
    firmware=(8, 2, 127), acb_count=2, encharge_count=1, system_controller=True, generator=True
)
SECCTRL_BODY = {
    "ENC_agg_avail_energy": "100",
    "ACB_agg_energy": 24,
    "Max_energy": 3000,
    "ENC_agg_backup_energy": 50,
    "adjusted_backup_soc": 20,
}
ENPOWER = {"serial_num": 7, "last_rpt_date": "1700000100", "temperature": "95", "x": None}


def _site_fields(snapshot: dict[str, Any], measurement: str) -> list[tuple[dict[str, str], Any]]:
    return [
        (dict(p.tags), dict(p.fields))
        for p in normalize.devices(snapshot, SITE, NOW)
        if p.measurement == measurement
    ]


def test_battery_system_and_settings_write_what_they_can() -> None:
    tariff = {"tariff": {"storage_settings": {"mode": None, "reserved_soc": "30", "x": 1}}}
    # numbers as strings read; configured reserve missing: left out; no mode: left out
    assert _site_fields({SECCTRL: SECCTRL_BODY, TARIFF: tariff}, "enphase_system") == [
        (
            {},
            {
                "battery_available_wh": 124.0,
                "battery_capacity_wh": 3000.0,
                "battery_backup_wh": 50.0,
                "battery_reserve_pct": 20.0,
                "storage_reserve_pct": 30.0,
            },
        )
    ]
    # the AC Batteries' energy missing: no sum; an HTML tariff: no settings
    no_acb = {k: v for k, v in SECCTRL_BODY.items() if k != "ACB_agg_energy"}
    (only,) = _site_fields({SECCTRL: no_acb, TARIFF: "<html>"}, "enphase_system")
    assert "battery_available_wh" not in only[1] and "storage_mode" not in only[1]
    # settings alone (secctrl failed) are written; a site without batteries gets neither
    settings = {"tariff": {"storage_settings": {"mode": "savings-mode", "charge_from_grid": "1"}}}
    snap = {SECCTRL: "<html>", TARIFF: settings}
    assert _site_fields(snap, "enphase_system") == [
        ({}, {"storage_mode": "savings-mode", "charge_from_grid": True})
    ]
    assert normalize.devices({SECCTRL: SECCTRL_BODY, TARIFF: settings}, Capabilities(), NOW) == []


def test_controller_grid_generator_and_contacts_write_what_they_can() -> None:
    inventory = [{"type": "ENPOWER", "devices": [{**ENPOWER, "Enpwr_grid_mode": "grid-tied"}]}]
    assert _site_fields({ENSEMBLE_INVENTORY: inventory}, "enphase_controller") == [
        (
            {"serial": "7", "type": "system_controller"},
            {"grid_mode": "grid-tied", "temperature_c": 35.0},
        )
    ]
    # no relay state: grid_connected left out, the mode still written, at the report time
    (grid,) = [
        p
        for p in normalize.devices({ENSEMBLE_INVENTORY: inventory}, SITE, NOW)
        if p.measurement == "enphase_system"
    ]
    assert (grid.time, dict(grid.fields)) == (1700000100, {"grid_mode": "grid-tied"})
    # an islanded System Controller: the relay open
    islanded = [{"type": "ENPOWER", "devices": [{**ENPOWER, "mains_oper_state": "open"}]}]
    assert _site_fields({ENSEMBLE_INVENTORY: islanded}, "enphase_system") == [
        ({}, {"grid_connected": False})
    ]
    generator = {"admin_state": "on", "oper_state": "closed", "admin_mode": "2", "stop_soc": -1}
    assert _site_fields({GENERATOR: generator}, "enphase_generator") == [
        ({}, {"admin_state": "on", "oper_state": "closed", "admin_mode": 2, "running": True})
    ]
    assert _site_fields({GENERATOR: "<html>"}, "enphase_generator") == []
    status = {"dry_contacts": [{"id": "NC1", "status": "unknown"}, {"status": "open"}, "x"]}
    settings = {"dry_contacts": [{"id": "NC1", "load_name": "", "soc_low": "25"}]}
    assert _site_fields(
        {DRY_CONTACTS: status, DRY_CONTACT_SETTINGS: settings}, "enphase_dry_contact"
    ) == [({"contact": "NC1"}, {"status": "unknown", "soc_low_pct": 25.0})]
    # settings truncated (HTML): the status alone, without a load tag
    truncated = {
        DRY_CONTACTS: {"dry_contacts": [{"id": "NO1", "status": "Closed"}]},
        DRY_CONTACT_SETTINGS: '{"dry_contacts": [{"id": "NO1", "load_n',
    }
    assert _site_fields(truncated, "enphase_dry_contact") == [
        ({"contact": "NO1"}, {"status": "Closed", "closed": True})
    ]
