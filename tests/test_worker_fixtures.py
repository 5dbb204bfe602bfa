"""End to end on recorded gateways: `envoy-ingest run --once -c settings.toml`
against the simulator serving each recorded set, through the real client, the
normalizers and the file sink, then reading the written line protocol back."""

from __future__ import annotations

from pathlib import Path

import pytest

from envoy_ingest.cli import main
from envoy_ingest.simulator import Simulator, SimulatorConfig
from tests.conftest import fixture_sets, require_fixtures
from tests.contract import CODES, COUNTS, FLAGS, SITE_SYSTEM_FIELDS, STATES
from tests.lp import Line, read_dir
from tests.worker_settings import gateway_table, midday_timezone, write_settings


def run_once(
    tmp_path: Path, fixture: str, timezone: str | None = None
) -> tuple[int, list[Line], Simulator]:
    root = require_fixtures()
    with Simulator(SimulatorConfig(fixture=root / fixture)) as sim:
        table = gateway_table(sim, timezone=timezone)
        rc = main(["run", "--once", "-c", str(write_settings(tmp_path, table))])
    return rc, read_dir(tmp_path / "data"), sim


@pytest.mark.parametrize("fixture", fixture_sets() or ["<missing>"])
def test_every_recorded_gateway_writes_the_contract(tmp_path: Path, fixture: str) -> None:
    rc, lines, sim = run_once(tmp_path, fixture)
    # The bad-auth set refuses the device endpoints: the run must say so.
    assert rc == (1 if fixture == "3.9.36_bad_auth" else 0)
    # The totals point, and where a net-consumption CT measures, the grid
    # energies of its reading (the devices job's, at the CT's own timestamp).
    systems = [
        ln
        for ln in lines
        if ln.measurement == "enphase_system"
        and "grid_import_lifetime_wh" not in ln.fields
        and not set(ln.fields) <= SITE_SYSTEM_FIELDS
    ]
    assert len(systems) == 1
    for line in lines:
        assert line.tags["gateway"] == sim.serial
        assert line.tags["site"] == "home"
        for key, value in line.fields.items():
            if key in COUNTS or key in CODES:
                assert type(value) is int, (line.measurement, key)
            elif key in FLAGS:
                assert type(value) is bool, (line.measurement, key)
            elif key in STATES:
                assert type(value) is str, (line.measurement, key)
            else:
                assert type(value) is float, (line.measurement, key)
    assert isinstance(systems[0].fields["production_w"], float)
    if fixture != "3.9.36_bad_auth":
        assert any(ln.measurement == "enphase_inverter" for ln in lines)


def test_metered_7_6_175_values(tmp_path: Path) -> None:
    rc, lines, _ = run_once(tmp_path, "7.6.175_with_cts")
    assert rc == 0
    system, grid = sorted(
        (ln for ln in lines if ln.measurement == "enphase_system"), key=lambda ln: ln.time
    )
    assert system.time == 1693745129  # the eim readingTime
    # The net-consumption CT's reading of /ivp/meters/readings, at its timestamp.
    assert grid.time == 1693745133
    assert grid.fields == {
        "grid_import_lifetime_wh": 3738205.282,
        "grid_export_lifetime_wh": 1776768.769,
    }
    expected = {
        "production_w": 488.154,
        "production_today_wh": 4425.303,
        "production_7d_wh": 111093.303,
        "production_lifetime_wh": 3183793.303,
        "consumption_w": 476.686,
        "consumption_today_wh": 19903.621,
        "consumption_lifetime_wh": 5145153.621,
        "net_w": -11.468,
        # the gateway's net today is 0: consumption minus production (energy/)
        "net_today_wh": 19903.621 - 4425.303,
        "net_lifetime_wh": 1961512.786,
        "inverters": 7,
    }
    assert {k: system.fields[k] for k in expected} == expected
    # 4.621 Wh in 7 days against 19.9 kWh today is known bad: left out (energy/),
    # and so is the net 7 days that would be computed from it.
    assert "consumption_7d_wh" not in system.fields and "net_7d_wh" not in system.fields
    inverters = {ln.tags["serial"]: ln for ln in lines if ln.measurement == "enphase_inverter"}
    assert len(inverters) == 7
    first = inverters["121823030072"]
    assert first.time == 1693745036
    assert first.fields["power_w"] == 58.0
    assert first.fields["max_power_w"] == 253.0


def test_legacy_3_9_36_falls_back_to_api_v1(tmp_path: Path) -> None:
    rc, lines, sim = run_once(tmp_path, "3.9.36", midday_timezone())
    assert rc == 0
    (system,) = [ln for ln in lines if ln.measurement == "enphase_system"]
    assert {
        k: system.fields[k]
        for k in (
            "production_w",
            "production_today_wh",
            "production_7d_wh",
            "production_lifetime_wh",
        )
    } == {
        "production_w": 1271.0,
        "production_today_wh": 1460.0,
        "production_7d_wh": 130349.0,
        "production_lifetime_wh": 6012540.0,
    }
    assert "consumption_w" not in system.fields  # not metered: left out, never 0
    # /production.json is an HTML page on this firmware: never asked again after the probe.
    totals_requests = [p for _, p in sim.requests if p.startswith("/production.json")]
    assert len(totals_requests) <= 1
    inverters = [ln for ln in lines if ln.measurement == "enphase_inverter"]
    assert len(inverters) == 12
    by_serial = {ln.tags["serial"]: ln for ln in inverters}
    assert by_serial["121547058993"].time == 1618083961
    assert by_serial["121547058993"].fields["power_w"] == 138.0
    assert by_serial["121547058993"].fields["max_power_w"] == 231.0


def test_run_once_writes_the_battery_site(tmp_path: Path) -> None:
    """`run --once` runs the hourly settings read too: a battery and System
    Controller site writes its storage settings, grid, controller, dry contacts."""
    rc, lines, sim = run_once(tmp_path, "8.2.127_with_3cts_and_battery_split")
    assert rc == 0
    assert sim.request_count("/admin/lib/tariff") == 1
    assert sim.request_count("/ivp/ss/dry_contact_settings") == 1
    (site,) = [ln for ln in lines if "storage_mode" in ln.fields]
    assert site.measurement == "enphase_system"
    assert site.fields == {
        "battery_available_wh": 5250.0,
        "battery_capacity_wh": 25000.0,
        "battery_backup_wh": 5000.0,
        "battery_reserve_pct": 20.0,
        "battery_reserve_configured_pct": 20.0,
        "storage_mode": "self-consumption",
        "storage_reserve_pct": 20.0,
        "charge_from_grid": False,
        "very_low_soc_pct": 10.0,
    }
    (grid,) = [ln for ln in lines if "grid_connected" in ln.fields]
    assert (grid.time, grid.fields) == (
        1709829514,
        {"grid_connected": True, "grid_mode": "multimode-ongrid"},
    )
    (controller,) = [ln for ln in lines if ln.measurement == "enphase_controller"]
    assert controller.tags["type"] == "system_controller"
    contacts = [ln for ln in lines if ln.measurement == "enphase_dry_contact"]
    assert sorted(ln.tags["contact"] for ln in contacts) == ["NC1", "NC2", "NO1", "NO2"]
