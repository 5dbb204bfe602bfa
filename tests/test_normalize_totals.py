"""``normalize.totals`` on every recorded gateway: the numbers in the recorded JSON,
field by field, with their types, tags and times."""

from __future__ import annotations

from typing import Any

import pytest

from envoy_ingest import normalize
from envoy_ingest.point import Point
from tests import fixtures_io as fx
from tests.conftest import fixture_sets, require_fixtures

NOW = 1_700_000_000

_NET_ZERO = {"net_today_wh": 0.0, "net_7d_wh": 0.0}  # what real gateways report for net

# name -> (time of the enphase_system point, its fields), copied from the recorded JSON.
EXPECTED_SYSTEM: dict[str, tuple[int, dict[str, Any]]] = {
    # /api/v1/production: no report time, so the poll time.
    "3.17.3": (
        NOW,
        {
            "production_w": 5463.0,
            "production_today_wh": 5481.0,
            "production_7d_wh": 389581.0,
            "production_lifetime_wh": 93706280.0,
            "inverters": 41,  # entries of /api/v1/production/inverters
        },
    ),
    "3.9.36": (
        NOW,
        {
            "production_w": 1271.0,
            "production_today_wh": 1460.0,
            "production_7d_wh": 130349.0,
            "production_lifetime_wh": 6012540.0,
            "inverters": 12,
        },
    ),
    # Not all zero (lifetime is not), so written; the inverter list answered 401.
    "3.9.36_bad_auth": (
        NOW,
        {
            "production_w": 0.0,
            "production_today_wh": 0.0,
            "production_7d_wh": 0.0,
            "production_lifetime_wh": 14578520.0,
        },
    ),
    "4.10.35": (
        1695301418,
        {
            "production_w": 165.53,
            "production_today_wh": 139.351,
            "production_7d_wh": 179155.351,
            "production_lifetime_wh": 26785327.351,
            "consumption_w": 806.405,
            "consumption_today_wh": 7412.411,
            "consumption_7d_wh": 163075.411,
            "consumption_lifetime_wh": 26335790.411,
            "net_w": 640.874,
            **_NET_ZERO,
            "net_lifetime_wh": 16908208.46,
            "inverters": 19,
        },
    ),
    # Consumption CT disabled (activeCount 0): no consumption or net at all.
    "4.2.33": (
        1743563782,
        {
            "production_w": -8.796,
            "production_today_wh": 10214.633,
            "production_7d_wh": 10832.633,
            "production_lifetime_wh": 8598256.633,
            "inverters": 19,
        },
    ),
    "5.0.62": (
        NOW,
        {
            "production_w": 7907.0,
            "production_today_wh": 20161.0,
            "production_7d_wh": 366671.0,
            "production_lifetime_wh": 133798553.0,
            "inverters": 40,
        },
    ),
    "7.3.130": (
        1691342712,
        {
            "production_w": 178.495,
            "production_today_wh": 86.105,
            "production_7d_wh": 149972.105,
            "production_lifetime_wh": 3659506.105,
            "consumption_w": 1393.191,
            "consumption_today_wh": 15177.825,
            "consumption_7d_wh": 365473.825,
            "consumption_lifetime_wh": 10154380.825,
            "net_w": 1214.696,
            **_NET_ZERO,
            "net_lifetime_wh": 7116675.502,
            "inverters": 12,
        },
    ),
    # The inverters entry has readingTime 0: the eim entries give the time.
    "7.3.466_with_cts_3phase": (
        1693433002,
        {
            "production_w": -6.481,
            "production_today_wh": 5113.2,
            "production_7d_wh": 69492.2,
            "production_lifetime_wh": 4351113.2,
            "consumption_w": 209.084,
            "consumption_today_wh": 12423.368,
            "consumption_7d_wh": 68784.368,
            "consumption_lifetime_wh": 4074795.368,
            "net_w": 215.565,
            **_NET_ZERO,
            "net_lifetime_wh": 2886562.459,
            "inverters": 7,
        },
    ),
    # Three IQ batteries at 100 %, 0 mW each.
    "7.3.517": (
        1692818014,
        {
            "production_w": 4556.139,
            "production_today_wh": 18633.461,
            "production_7d_wh": 218714.461,
            "production_lifetime_wh": 19230313.461,
            "consumption_w": 3791.075,
            "consumption_today_wh": 24292.104,
            "consumption_7d_wh": 852.104,
            "consumption_lifetime_wh": 27629799.104,
            "net_w": -765.064,
            **_NET_ZERO,
            "net_lifetime_wh": 8436418.891,
            "inverters": 22,
            "batteries": 3,
            "battery_w": 0.0,
            "battery_soc_pct": 100.0,
            "battery_state": "full",
        },
    ),
    "7.6.114_without_cts": (
        NOW,
        {
            "production_w": 586.0,
            "production_today_wh": 10363.0,
            "production_7d_wh": 101742.0,
            "production_lifetime_wh": 1544282.0,
            "inverters": 13,
        },
    ),
    "7.6.175_with_cts": (
        1693745129,
        {
            "production_w": 488.154,
            "production_today_wh": 4425.303,
            "production_7d_wh": 111093.303,
            "production_lifetime_wh": 3183793.303,
            "consumption_w": 476.686,
            "consumption_today_wh": 19903.621,
            "consumption_7d_wh": 4.621,
            "consumption_lifetime_wh": 5145153.621,
            "net_w": -11.468,
            **_NET_ZERO,
            "net_lifetime_wh": 1961512.786,
            "inverters": 7,
        },
    ),
    "7.6.185_with_cts_and_battery_3t": (
        1695769629,
        {
            "production_w": -0.957,
            "production_today_wh": 0.956,
            "production_7d_wh": 73002.956,
            "production_lifetime_wh": 2432969.956,
            "consumption_w": 523.579,
            "consumption_today_wh": 63.155,
            "consumption_7d_wh": 19.155,
            "consumption_lifetime_wh": 3711429.155,
            "net_w": 524.536,
            **_NET_ZERO,
            "net_lifetime_wh": 1279037.969,
            "inverters": 5,
            "batteries": 1,
            "battery_w": 0.0,
            "battery_soc_pct": 15.0,
            "battery_state": "idle",
        },
    ),
    # Two IQ batteries of 4960 Wh at 100 % and 85 %, +24 W and +16 W.
    "8.1.41": (
        1692386083,
        {
            "production_w": 13028.54,
            "production_today_wh": 55037.655,
            "production_7d_wh": 1456156.655,
            "production_lifetime_wh": 1510198.655,
            "consumption_w": 5216.083,
            "consumption_today_wh": 0.0,
            "consumption_7d_wh": 0.0,
            "consumption_lifetime_wh": 1757943.133,
            "net_w": -7812.457,
            **_NET_ZERO,
            "net_lifetime_wh": 247929.658,
            "inverters": 44,
            "batteries": 2,
            "battery_w": 40.0,
            "battery_soc_pct": 92.5,
            "battery_state": "discharging",
        },
    ),
    "8.2.127_with_3cts_and_battery_split": (
        1709829518,
        {
            "production_w": 1714.424,
            "production_today_wh": 1475.272,
            "production_7d_wh": 3164458.272,
            "production_lifetime_wh": 3165834.272,
            "consumption_w": 1843.831,
            "consumption_today_wh": 7596.0,
            "consumption_7d_wh": 0.0,
            "consumption_lifetime_wh": 7909866.491,
            "net_w": 129.407,
            **_NET_ZERO,
            "net_lifetime_wh": 4744549.864,
            "inverters": 35,
            "batteries": 5,
            "battery_w": -641.0,  # -136 - 128 - 128 - 128 - 121
            "battery_soc_pct": 21.0,
            "battery_state": "charging",
        },
    ),
    # Metered without CTs on 8.2.4264: /api/v1/production is stale, the
    # inverters entry gives power and lifetime; today and 7 days are not
    # reported (the eim entry has activeCount 0), so they are left out.
    "8.2.4264_metered_noct": (
        1746702889,
        {"production_w": 5521.0, "production_lifetime_wh": 32465106.0, "inverters": 38},
    ),
    "8.2.4345_with_device_data": (
        1748577046,
        {
            "production_w": 734.83,
            "production_today_wh": 13439.514,
            "production_7d_wh": 86274.514,
            "production_lifetime_wh": 1243811.514,
            "consumption_w": 1014.016,
            "consumption_today_wh": 14566.311,
            "consumption_7d_wh": 136895.311,
            "consumption_lifetime_wh": 1008080.311,
            "net_w": 279.186,
            **_NET_ZERO,
            "net_lifetime_wh": -235661.732,
            "inverters": 15,
        },
    ),
    # Three ACBs (260 W discharging, 930 Wh, 25 %) and one IQ battery
    # (3500 Wh, +105 W, 54 % by /ivp/ensemble/power): charge weighed by capacity.
    "8.2.4382_ACB": (
        1732092958,
        {
            "production_w": 311.12,
            "production_today_wh": 296.774,
            "production_7d_wh": 41260.774,
            "production_lifetime_wh": 19213420.774,
            "consumption_w": 330.26,
            "consumption_today_wh": 6553.925,
            "consumption_7d_wh": 76.925,
            "consumption_lifetime_wh": 26700500.925,
            "net_w": 19.141,
            **_NET_ZERO,
            "net_lifetime_wh": 7489242.849,
            "inverters": 17,
            "batteries": 4,
            "battery_w": 365.0,
            "battery_soc_pct": pytest.approx((54 / 100 * 3500 + 930) / (3500 + 3 * 1240) * 100),
            "battery_state": "discharging",
        },
    ),
    "8.3.1598_collar": (
        1752974748,
        {
            "production_w": 0.0,
            "production_today_wh": 47077.959,
            "production_7d_wh": 47077.959,
            "production_lifetime_wh": 47077.959,
            "consumption_w": 3774.309,
            "consumption_today_wh": 132912.625,
            "consumption_7d_wh": 132912.625,
            "consumption_lifetime_wh": 132912.625,
            "net_w": 3774.309,
            **_NET_ZERO,
            "net_lifetime_wh": 85834.666,
            "inverters": 17,
            "batteries": 2,
            "battery_w": -1084.0,
            "battery_soc_pct": 89.0,
            "battery_state": "charging",
        },
    ),
    # Two ACBs in storage[0]: -2 W, 1 %, "idle" as the gateway says.
    "8.3.5169_ACB_inventory": (
        1781991520,
        {
            "production_w": -3.867,
            "production_today_wh": 2797.739,
            "production_7d_wh": 30059.739,
            "production_lifetime_wh": 1692970.739,
            "consumption_w": 1418.926,
            "consumption_today_wh": 54009.409,
            "consumption_7d_wh": 797.409,
            "consumption_lifetime_wh": 20842598.409,
            "net_w": 1422.794,
            **_NET_ZERO,
            "net_lifetime_wh": 19338718.345,
            "inverters": 3,
            "batteries": 2,
            "battery_w": -2.0,
            "battery_soc_pct": 1.0,
            "battery_state": "idle",
        },
    ),
    # An IQ System Controller with a generator, no batteries; split phase (2 lines).
    "8.3.5169_with_generator": (
        1785593326,
        {
            "production_w": 2885.154,
            "production_today_wh": 2904.818,
            "production_7d_wh": 226132.818,
            "production_lifetime_wh": 11567953.818,
            "consumption_w": 3050.455,
            "consumption_today_wh": 33182.0,
            "consumption_7d_wh": 341686.0,
            "consumption_lifetime_wh": 27293408.638,
            "net_w": 165.301,
            **_NET_ZERO,
            "net_lifetime_wh": 15727231.131,
            "inverters": 20,
        },
    ),
    # 8.3.5433 fault: total consumption reported equal to net; total = net +
    # production for power and lifetime. (today / 7 days as reported.)
    "8.3.5433_tot_is_net_cons": (
        1785332854,
        {
            "production_w": 357.492,
            "production_today_wh": 14405465.109,
            "production_7d_wh": 14405465.109,
            "production_lifetime_wh": 14405465.109,
            "consumption_w": 428.414 + 357.492,
            "consumption_today_wh": 5649402.426,
            "consumption_7d_wh": 5649402.426,
            "consumption_lifetime_wh": 5649402.426 + 14405465.109,
            "net_w": 428.414,
            **_NET_ZERO,
            "net_lifetime_wh": 5649402.426,
            "inverters": 12,
        },
    ),
}

# name -> the (flow, phase) of every enphase_meter point.
_ONE_PHASE = [("consumption", "l1"), ("net", "l1"), ("production", "l1")]
EXPECTED_METERS: dict[str, list[tuple[str, str]]] = {
    "7.3.466_with_cts_3phase": sorted(
        (flow, phase)
        for flow in ("consumption", "net", "production")
        for phase in ("l1", "l2", "l3")
    ),
    # phaseCount 1 and no lines: the entry is L1.
    "7.6.175_with_cts": _ONE_PHASE,
    "7.6.185_with_cts_and_battery_3t": _ONE_PHASE,
    # Split phase without lines: no per-phase data (the storage CT is read by the
    # devices job: tests/test_normalize_ct_readings.py).
    "8.2.4345_with_device_data": _ONE_PHASE,
    "8.2.4382_ACB": _ONE_PHASE,
    # Three lines, the third all zero (not wired): left out.
    "8.3.1598_collar": sorted(
        (flow, phase) for flow in ("consumption", "net", "production") for phase in ("l1", "l2")
    ),
    "8.3.5169_ACB_inventory": _ONE_PHASE,
    "8.3.5169_with_generator": sorted(
        (flow, phase) for flow in ("consumption", "net", "production") for phase in ("l1", "l2")
    ),
    "8.3.5433_tot_is_net_cons": sorted(
        (flow, phase) for flow in ("consumption", "net", "production") for phase in ("l1", "l2")
    ),
}


def _totals(name: str) -> list[Point]:
    d = fx.set_dir(name)
    caps = fx.capabilities(d)
    return normalize.totals(fx.totals_snapshot(d, caps), caps, NOW)


def _meter(points: list[Point], flow: str, phase: str) -> Point:
    (point,) = [p for p in points if p.tags == {"flow": flow, "phase": phase}]
    return point


def test_every_recorded_set_has_an_expectation() -> None:
    require_fixtures()
    assert sorted(EXPECTED_SYSTEM) == fixture_sets()


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_system_point(name: str) -> None:
    require_fixtures()
    time, fields = EXPECTED_SYSTEM[name]
    (system,) = [p for p in _totals(name) if p.measurement == "enphase_system"]
    assert system.tags == {}
    assert system.time == time
    assert dict(system.fields) == fields


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_meter_points(name: str) -> None:
    require_fixtures()
    meters = [p for p in _totals(name) if p.measurement == "enphase_meter"]
    assert sorted((p.tags["flow"], p.tags["phase"]) for p in meters) == EXPECTED_METERS.get(
        name, []
    )


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_field_types(name: str) -> None:
    """Measurements are floats even where the JSON has ints; counts ints; states strings."""
    require_fixtures()
    for point in _totals(name):
        assert isinstance(point.time, int) and point.time > 0
        for key, value in point.fields.items():
            if key in ("inverters", "batteries"):
                assert type(value) is int, key
            elif key == "battery_state":
                assert value in ("charging", "discharging", "idle", "full")
            else:
                assert type(value) is float, key


def test_three_phase_lines() -> None:
    require_fixtures()
    points = _totals("7.3.466_with_cts_3phase")
    l1 = _meter(points, "production", "l1")
    assert l1.time == 1693433002
    assert l1.fields == {
        "power_w": -2.864,
        "today_wh": 2200.394,
        "last_7d_wh": 29891.394,
        "lifetime_wh": 1869678.394,
        "voltage_v": 236.766,
        "current_a": 0.286,
        "power_factor": 0.0,
        "apparent_power_va": 67.699,
        "reactive_power_var": 50.856,
    }
    net_l3 = _meter(points, "net", "l3")
    assert (net_l3.fields["power_w"], net_l3.fields["lifetime_wh"]) == (0.764, 631468.875)
    assert (net_l3.fields["today_wh"], net_l3.fields["last_7d_wh"]) == (0.0, 0.0)


def test_single_phase_entry_is_l1() -> None:
    require_fixtures()
    net = _meter(_totals("7.6.175_with_cts"), "net", "l1")
    assert net.time == 1693745129
    assert net.fields == {
        "power_w": -11.468,
        "today_wh": 0.0,
        "last_7d_wh": 0.0,
        "lifetime_wh": 1961512.786,
        "voltage_v": 235.743,
        "current_a": -2.778,
        "power_factor": -1.0,
        "apparent_power_va": -654.785,
        "reactive_power_var": -572.697,
    }


def test_total_is_net_fault_repaired_per_phase() -> None:
    require_fixtures()
    points = _totals("8.3.5433_tot_is_net_cons")
    l1 = _meter(points, "consumption", "l1")
    # current, power factor, apparent and reactive power are copies of net: left out.
    assert l1.fields == {
        "power_w": 249.477 + 174.574,
        "lifetime_wh": 3507434.405 + 7201352.16,
        "today_wh": 3507434.405,
        "last_7d_wh": 3507434.405,
        "voltage_v": 121.31,
    }
    net_l2 = _meter(points, "net", "l2")
    assert net_l2.fields["power_w"] == 178.936
    assert net_l2.fields["current_a"] == -1.351


def test_stale_api_v1_is_not_used() -> None:
    """8.2.4264 metered without CTs: /api/v1/production says 1583 Wh lifetime."""
    require_fixtures()
    d = fx.set_dir("8.2.4264_metered_noct")
    caps = fx.capabilities(d)
    snap = fx.snapshot(d, [*caps.totals_paths, "/api/v1/production"])
    (system,) = [p for p in normalize.totals(snap, caps, NOW) if p.measurement == "enphase_system"]
    assert system.fields["production_lifetime_wh"] == 32465106.0


def test_reading_the_same_report_twice_writes_the_same_points() -> None:
    require_fixtures()
    d = fx.set_dir("8.3.1598_collar")
    caps = fx.capabilities(d)
    snap = fx.totals_snapshot(d, caps)
    assert normalize.totals(snap, caps, NOW) == normalize.totals(snap, caps, NOW + 60)
