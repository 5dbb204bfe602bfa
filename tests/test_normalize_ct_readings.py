"""The CT readings (``/ivp/meters/readings``) on every recorded gateway: grid
import / export from the net-consumption CT, every enabled CT's energies per
phase, the storage CT; and the odd answers the recorded ones do not show."""

from __future__ import annotations

from typing import Any

import pytest

from envoy_ingest import normalize
from envoy_ingest.envoy.capabilities import METERS_READINGS, Capabilities
from envoy_ingest.point import Point
from tests import fixtures_io as fx
from tests.conftest import fixture_sets, require_fixtures
from tests.contract import SITE_SYSTEM_FIELDS

NOW = 1_700_000_000

# name -> (time, grid_import_lifetime_wh, grid_export_lifetime_wh): the
# net-consumption CT's actEnergyDlvd / actEnergyRcvd, copied from the recorded JSON.
EXPECTED_GRID: dict[str, tuple[int, float, float]] = {
    "4.10.35": (1695301419, 16908208.78, 17357690.272),
    "7.3.466_with_cts_3phase": (1693745133, 3738205.282, 1776768.769),
    "7.6.175_with_cts": (1693745133, 3738205.282, 1776768.769),
    "7.6.185_with_cts_and_battery_3t": (1695769632, 2404339.266, 1125590.088),
    "8.2.127_with_3cts_and_battery_split": (1709829517, 4998251.825, 253960.783),
    "8.2.4345_with_device_data": (1748577049, 648203.353, 883899.646),
    "8.2.4382_ACB": (1732092964, 14153292.251, 6665130.717),
    "8.3.1598_collar": (1752974752, 108563.587, 22728.922),
    "8.3.5169_ACB_inventory": (1781991524, 19284368.878, 40194.373),
    "8.3.5169_with_generator": (1785593341, 18999526.477, 3273182.77),
}

_P, _N = "production", "net"
# name -> {(flow, phase): (delivered_lifetime_wh, received_lifetime_wh)}, from the
# channels of each enabled CT, up to the phase count of /ivp/meters.
EXPECTED_ENERGY: dict[str, dict[tuple[str, str], tuple[float, float]]] = {
    "4.10.35": {
        (_P, "l1"): (13398797.544, 0.001),
        (_P, "l2"): (13386529.904, 0.0),
        (_N, "l1"): (10220652.219, 8001771.78),
        (_N, "l2"): (6687556.561, 9355918.492),
    },
    # The net-consumption CT is disabled: production only.
    "4.2.33": {(_P, "l1"): (4289410.853, 10353.255), (_P, "l2"): (4308845.78, 5085.715)},
    "7.3.466_with_cts_3phase": {
        (_P, "l1"): (3183793.885, 8851.704),
        (_P, "l2"): (0.0, 5370.79),
        (_P, "l3"): (0.022, 9818.109),
        (_N, "l1"): (3738205.282, 1776768.769),
        (_N, "l2"): (0.0, 8279.267),
        (_N, "l3"): (0.013, 13980.174),
    },
    # phaseCount 1: channel 0 only (the other two read noise on unwired phases).
    "7.6.175_with_cts": {
        (_P, "l1"): (3183793.885, 8851.704),
        (_N, "l1"): (3738205.282, 1776768.769),
    },
    "7.6.185_with_cts_and_battery_3t": {
        (_P, "l1"): (2432969.956, 1795.013),
        (_N, "l1"): (2404339.266, 1125590.088),
    },
    # Split phase: the net CT's third channel repeats the storage CT's L2: not read.
    "8.2.127_with_3cts_and_battery_split": {
        (_P, "l1"): (1581746.293, 45.89),
        (_P, "l2"): (1584087.979, 29.799),
        (_N, "l1"): (2631217.196, 93777.056),
        (_N, "l2"): (2367034.629, 160183.727),
        ("storage", "l1"): (1136859.658, 1485292.441),
        ("storage", "l2"): (1137498.944, 1486121.902),
    },
    "8.2.4345_with_device_data": {
        (_P, "l1"): (1243812.228, 11.6),
        (_N, "l1"): (648203.353, 883899.646),
    },
    "8.2.4382_ACB": {(_P, "l1"): (19213421.296, 7336.656), (_N, "l1"): (14153292.251, 6665130.717)},
    "8.3.1598_collar": {
        (_P, "l1"): (23505.638, 7.868),
        (_P, "l2"): (23572.321, 8.056),
        (_N, "l1"): (47524.636, 14281.669),
        (_N, "l2"): (61038.952, 8447.253),
        ("storage", "l1"): (234.071, 4028.434),
        ("storage", "l2"): (110.288, 4024.524),
        # The backfeed CT's L2 reads a voltage and 0 Wh both ways: written as reported.
        ("backfeed", "l1"): (3.797, 7014.684),
        ("backfeed", "l2"): (0.0, 0.0),
    },
    "8.3.5169_ACB_inventory": {
        (_P, "l1"): (1692970.739, 37312.637),
        (_N, "l1"): (19284368.878, 40194.373),
    },
    # Split phase, channels 0 and 1; the readings' extra CT (eid 1023410688) is not
    # in /ivp/meters: not read.
    "8.3.5169_with_generator": {
        (_P, "l1"): (5767486.565, 5.378),
        (_P, "l2"): (5800479.584, 7.597),
        (_N, "l1"): (7065863.788, 2055250.184),
        (_N, "l2"): (11933662.689, 1217932.586),
    },
    # A total-consumption CT (no net-consumption CT): its energies, no grid fields.
    "8.3.5433_tot_is_net_cons": {
        (_P, "l1"): (7201352.391, 0.045),
        (_P, "l2"): (7204113.179, 0.031),
        ("consumption", "l1"): (10708922.213, 135.096),
        ("consumption", "l2"): (9346131.112, 49.677),
    },
}


def _devices(name: str) -> list[Point]:
    d = fx.set_dir(name)
    caps = fx.capabilities(d)
    return normalize.devices(fx.devices_snapshot(d, caps), caps, NOW)


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_grid_import_export(name: str) -> None:
    require_fixtures()
    system = [
        p
        for p in _devices(name)
        if p.measurement == "enphase_system" and not set(p.fields) <= SITE_SYSTEM_FIELDS
    ]
    if name not in EXPECTED_GRID:
        assert system == []
        return
    time, imported, exported = EXPECTED_GRID[name]
    assert system == [
        Point(
            "enphase_system",
            {"grid_import_lifetime_wh": imported, "grid_export_lifetime_wh": exported},
            time,
        )
    ]


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_ct_energies_per_flow_and_phase(name: str) -> None:
    require_fixtures()
    got = {
        (p.tags["flow"], p.tags["phase"]): (
            p.fields["delivered_lifetime_wh"],
            p.fields["received_lifetime_wh"],
        )
        for p in _devices(name)
        if p.measurement == "enphase_meter"
    }
    assert got == EXPECTED_ENERGY.get(name, {})


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_ct_readings_are_written_once_by_the_devices_job(name: str) -> None:
    """The totals job does not repeat the 5-minute readings every minute."""
    require_fixtures()
    d = fx.set_dir(name)
    caps = fx.capabilities(d)
    totals = normalize.totals(fx.totals_snapshot(d, caps), caps, NOW)
    for point in totals:
        assert not any(k.startswith(("grid_", "delivered_", "received_")) for k in point.fields)
        assert point.tags.get("flow") != "storage"


def test_storage_ct_from_readings_matched_by_eid() -> None:
    require_fixtures()
    (l2,) = [p for p in _devices("8.3.1598_collar") if p.tags == {"flow": "storage", "phase": "l2"}]
    assert l2.time == 1752974752
    assert l2.fields == {
        "power_w": -652.373,
        "voltage_v": 119.923,
        "current_a": 5.534,
        "power_factor": -0.977,
        "apparent_power_va": 661.374,
        "reactive_power_var": -0.845,
        "frequency_hz": 60.0,
        "delivered_lifetime_wh": 110.288,
        "received_lifetime_wh": 4024.524,
    }


# --- answers the recorded gateways do not show -----------------------------------

STORAGE = Capabilities(firmware=(8, 3, 1598), cts=(("5", "storage"),), phase_count=1)
GRID = Capabilities(
    firmware=(8, 2, 4345), cts=(("1", "production"), ("2", "net-consumption")), phase_count=1
)


def _points(readings: Any, caps: Capabilities) -> list[Point]:
    return normalize.devices({METERS_READINGS: readings}, caps, NOW)


def test_storage_ct_ignores_readings_of_other_eids() -> None:
    readings = [
        {"eid": 4, "timestamp": 10, "activePower": 100.0},
        {"eid": 5, "timestamp": 11, "activePower": -50.0, "voltage": 240.0, "freq": 50.0},
    ]
    (point,) = _points(readings, STORAGE)
    assert (point.tags, point.time) == ({"flow": "storage", "phase": "l1"}, 11)
    assert point.fields == {"power_w": -50.0, "voltage_v": 240.0, "frequency_hz": 50.0}


def test_unwired_storage_channel_is_left_out_even_with_frequency() -> None:
    caps = Capabilities(firmware=(8, 3, 1598), cts=(("5", "storage"),))
    channel = {"activePower": 1.0, "voltage": 120.0, "freq": 60.0}
    readings = [{"eid": 5, "channels": [channel, {"activePower": 0.0, "freq": 60.0}]}]
    assert [p.tags["phase"] for p in _points(readings, caps)] == ["l1"]


def test_grid_from_the_net_ct_matched_by_eid_not_position() -> None:
    readings = [
        {"eid": "2", "timestamp": "20", "actEnergyDlvd": "1500.5", "actEnergyRcvd": 700},
        {"eid": 9, "timestamp": 21, "actEnergyDlvd": 5.0, "actEnergyRcvd": 6.0},
        {"eid": 1, "timestamp": 19, "actEnergyDlvd": 900.0, "actEnergyRcvd": 1.0},
    ]
    meter = {"flow": "net", "phase": "l1"}
    assert _points(readings, GRID) == [
        Point("enphase_meter", {"delivered_lifetime_wh": 900.0, "received_lifetime_wh": 1.0}, 19,
              {"flow": "production", "phase": "l1"}),
        Point("enphase_system",
              {"grid_import_lifetime_wh": 1500.5, "grid_export_lifetime_wh": 700.0}, 20),
        Point("enphase_meter",
              {"delivered_lifetime_wh": 1500.5, "received_lifetime_wh": 700.0}, 20, meter),
    ]  # fmt: skip


def test_an_all_zero_reading_writes_nothing() -> None:
    """After a reboot every value reads 0: not a counter reading."""
    zero = {"activePower": 0.0, "voltage": 0.0, "actEnergyDlvd": 0.0, "actEnergyRcvd": 0.0}
    readings = [{"eid": 2, "timestamp": 20, **zero, "freq": 60.0, "channels": [zero, zero, zero]}]
    assert _points(readings, GRID) == []


def test_a_reading_without_energies_writes_no_grid_fields() -> None:
    readings = [{"eid": 2, "timestamp": 20, "activePower": 300.0, "voltage": 240.0}]
    assert _points(readings, GRID) == []


def test_channels_beyond_the_phase_count_are_not_read() -> None:
    caps = Capabilities(firmware=(8, 2, 127), cts=(("2", "net-consumption"),), phase_count=2)
    channel = {"actEnergyDlvd": 10.0, "actEnergyRcvd": 20.0}
    readings = [{"eid": 2, "timestamp": 20, "actEnergyDlvd": 20.0, "actEnergyRcvd": 40.0,
                 "channels": [channel, channel, channel]}]  # fmt: skip
    meters = [p.tags["phase"] for p in _points(readings, caps) if p.measurement == "enphase_meter"]
    assert meters == ["l1", "l2"]


@pytest.mark.parametrize("body", ["<html>401</html>", {"error": "404"}, [], None, [None, 3]])
def test_no_readings_no_points(body: Any) -> None:
    assert _points(body, GRID) == []


def test_without_a_report_time_the_poll_time() -> None:
    readings = [{"eid": 2, "timestamp": 0, "actEnergyDlvd": 1.0, "actEnergyRcvd": 2.0}]
    assert {p.time for p in _points(readings, GRID)} == {NOW}
