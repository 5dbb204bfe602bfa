"""The battery system, grid and backup state, generator, dry contacts and storage
settings agree with pyenphase 4.2.0's models on every recorded gateway where
pyenphase reads them (pyenphase run whole on the recorded answers, as in
tests/test_normalize_pyenphase.py). Deliberate differences (docs/schema.md):

- storage settings: pyenphase reads them on every site, we on battery sites;
  its ``economy`` is the gateway's ``savings-mode``, which we write as said;
- AC Batteries only (8.3.5169_ACB_inventory): pyenphase reads no battery system;
- an ``ENCHARGE`` group without devices (8.2.4345, 8.3.5169_with_generator):
  pyenphase's battery system of zeros, no battery field from us.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from envoy_ingest.point import Point
from tests import fixtures_io as fx
from tests.conftest import fixture_sets, require_fixtures
from tests.test_normalize_pyenphase import _ours, _pyenphase

#: Sets with batteries where pyenphase reads no battery system: AC Batteries only
#: (its ensemble updater runs only where the ensemble inventory lists a device).
PYENPHASE_NO_ENSEMBLE = {"8.3.5169_ACB_inventory"}


def _site(name: str) -> list[Point]:
    _, devices = _ours(name)
    return devices


def _system(points: list[Point], field: str) -> Mapping[str, Any]:
    found = [p.fields for p in points if p.measurement == "enphase_system" and field in p.fields]
    assert len(found) <= 1
    return found[0] if found else {}


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
async def test_battery_system_agrees(name: str) -> None:
    require_fixtures()
    data = await _pyenphase(name)
    system = _system(_site(name), "battery_capacity_wh")
    iq = data.encharge_inventory or {}
    if data.battery_aggregate is not None:  # IQ plus AC batteries
        both = data.battery_aggregate
        assert system["battery_available_wh"] == both.available_energy
        assert system["battery_capacity_wh"] == both.max_available_capacity
    elif iq:
        assert data.encharge_aggregate is not None
        assert system["battery_available_wh"] == data.encharge_aggregate.available_energy
        assert system["battery_capacity_wh"] == data.encharge_aggregate.max_available_capacity
    elif name in PYENPHASE_NO_ENSEMBLE:
        assert system["battery_available_wh"] > 0 and "battery_reserve_pct" not in system
        return
    else:
        # No battery: nothing, also where pyenphase has an aggregate of zeros from
        # an ENCHARGE group without devices (8.2.4345, 8.3.5169_with_generator).
        assert system == {}
        assert not any(
            p.measurement == "enphase_system" and "storage_mode" in p.fields for p in _site(name)
        )
        return
    if iq:
        aggregate = data.encharge_aggregate
        assert aggregate is not None
        assert system["battery_backup_wh"] == aggregate.backup_reserve
        assert system["battery_reserve_pct"] == aggregate.reserve_state_of_charge
        assert (
            system["battery_reserve_configured_pct"] == aggregate.configured_reserve_state_of_charge
        )


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
async def test_iq_battery_details_agree(name: str) -> None:
    require_fixtures()
    data = await _pyenphase(name)
    ours = {
        p.tags["serial"]: p.fields
        for p in _site(name)
        if p.measurement == "enphase_battery" and p.tags["type"] == "encharge"
    }
    theirs = data.encharge_inventory or {}
    assert set(ours) == set(theirs)
    for serial, battery in theirs.items():
        assert ours[serial]["capacity_wh"] == battery.encharge_capacity
        assert ours[serial]["led_status"] == battery.led_status
        assert ours[serial]["dc_switch_off"] is battery.dc_switch_off


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
async def test_grid_and_controllers_agree(name: str) -> None:
    require_fixtures()
    data = await _pyenphase(name)
    points = _site(name)
    ours = {
        (p.tags["type"], p.tags["serial"]): p
        for p in points
        if p.measurement == "enphase_controller"
    }
    want: set[tuple[str, str]] = set()
    grid = _system(points, "grid_connected")
    if data.enpower is not None:
        enpower = data.enpower
        want.add(("system_controller", enpower.serial_number))
        point = ours["system_controller", enpower.serial_number]
        assert point.time == enpower.last_report_date
        assert point.fields["grid_mode"] == enpower.grid_mode
        assert point.fields["mains_admin_state"] == enpower.mains_admin_state
        assert point.fields["mains_oper_state"] == enpower.mains_oper_state
        assert enpower.temperature_unit == "F"
        assert point.fields["temperature_c"] == pytest.approx((enpower.temperature - 32) / 1.8)
        assert point.fields["communicating"] is enpower.communicating
        assert grid == {
            "grid_connected": enpower.mains_oper_state == "closed",
            "grid_mode": enpower.grid_mode,
        }
    if data.collar is not None:
        collar = data.collar
        want.add(("collar", collar.serial_number))
        point = ours["collar", collar.serial_number]
        assert point.time == collar.last_report_date
        assert point.fields["grid_state"] == collar.grid_state
        assert collar.temperature_unit == "C"
        assert point.fields["temperature_c"] == collar.temperature
        assert point.fields["communicating"] is collar.communicating
        if data.enpower is None:
            assert grid == {"grid_connected": collar.grid_state == "on_grid"}
    if data.c6cc is not None:
        want.add(("combiner", data.c6cc.serial_number))
        point = ours["combiner", data.c6cc.serial_number]
        assert point.fields == {"communicating": data.c6cc.communicating}
        assert point.time == data.c6cc.last_report_date
    assert set(ours) == want
    if not want:
        assert grid == {}


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
async def test_generator_agrees(name: str) -> None:
    require_fixtures()
    data = await _pyenphase(name)
    ours = [p for p in _site(name) if p.measurement == "enphase_generator"]
    if data.generator is None:
        assert ours == []
        return
    (point,) = ours
    generator = data.generator
    assert dict(point.fields) == {
        "admin_state": generator.admin_state,
        "oper_state": generator.oper_state,
        "admin_mode": generator.admin_mode,
        "start_soc_pct": generator.start_soc,
        "stop_soc_pct": generator.stop_soc,
        "running": generator.oper_state == "closed",
    }


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
async def test_dry_contacts_agree(name: str) -> None:
    require_fixtures()
    data = await _pyenphase(name)
    ours = {p.tags["contact"]: p for p in _site(name) if p.measurement == "enphase_dry_contact"}
    status = data.dry_contact_status or {}
    settings = data.dry_contact_settings or {}
    assert set(ours) == set(status) | set(settings)
    for contact, point in ours.items():
        relay = status[contact]
        setting = settings[contact]
        assert point.fields["status"] == relay.status
        assert point.fields["closed"] is (relay.status == "closed")
        assert point.fields["mode"] == setting.mode
        assert point.fields["soc_low_pct"] == setting.soc_low
        assert point.fields["soc_high_pct"] == setting.soc_high
        assert point.tags.get("load") == (setting.load_name or None)


#: pyenphase calls ``savings-mode`` ``economy`` (interchangeable, it says); we
#: write the gateway's word.
_MODES = {"economy": {"economy", "savings-mode"}}


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
async def test_storage_settings_agree(name: str) -> None:
    require_fixtures()
    data = await _pyenphase(name)
    caps = fx.capabilities(fx.set_dir(name))
    system = _system(_site(name), "storage_mode")
    theirs = data.tariff.storage_settings if data.tariff else None
    if theirs is None or not caps.batteries:
        # pyenphase reads the tariff's storage settings on every site; we write
        # them on battery sites only.
        assert system == {}
        return
    assert theirs.mode is not None
    assert system["storage_mode"] in _MODES.get(theirs.mode, {theirs.mode})
    assert system["storage_reserve_pct"] == theirs.reserved_soc
    assert system["very_low_soc_pct"] == theirs.very_low_soc
    assert system["charge_from_grid"] is theirs.charge_from_grid
