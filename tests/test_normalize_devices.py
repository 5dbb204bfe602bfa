"""``normalize.devices`` on every recorded gateway: each microinverter and battery,
with the numbers, types, tags and report times of the recorded JSON."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from envoy_ingest import normalize
from envoy_ingest.point import Point
from tests import fixtures_io as fx
from tests.conftest import fixture_sets, require_fixtures

NOW = 1_700_000_000


class Expected(NamedTuple):
    inverters: int
    acb: int
    encharge: int
    #: one microinverter: serial, time, fields
    sample: tuple[str, int, dict[str, Any]] | None


def _watts(now: float, top: float) -> dict[str, Any]:
    return {"power_w": now, "max_power_w": top}


EXPECTED: dict[str, Expected] = {
    "3.17.3": Expected(41, 0, 0, ("121512041640", 1618082927, _watts(200.0, 249.0))),
    "3.9.36": Expected(12, 0, 0, ("121547058993", 1618083961, _watts(138.0, 231.0))),
    "3.9.36_bad_auth": Expected(0, 0, 0, None),  # the inverter list answered 401
    "4.10.35": Expected(19, 0, 0, ("122002026181", 1695301309, _watts(13.0, 287.0))),
    # no devType on this firmware: every entry is a microinverter
    "4.2.33": Expected(51, 0, 0, ("121622033019", 1536668634, _watts(17.0, 17.0))),
    "5.0.62": Expected(40, 0, 0, ("121547059079", 1694554838, _watts(202.0, 246.0))),
    "7.3.130": Expected(12, 0, 0, ("202218036214", 1691342432, _watts(13.0, 347.0))),
    "7.3.466_with_cts_3phase": Expected(
        7, 0, 0, ("121212121207", 1693744946, _watts(112.0, 365.0))
    ),
    "7.3.517": Expected(22, 0, 3, ("202043003473", 1692817928, _watts(209.0, 243.0))),
    "7.6.114_without_cts": Expected(13, 0, 0, ("482305021663", 1691412935, _watts(48.0, 329.0))),
    "7.6.175_with_cts": Expected(7, 0, 0, ("121823030072", 1693745036, _watts(58.0, 253.0))),
    "7.6.185_with_cts_and_battery_3t": Expected(
        5, 0, 1, ("482243033093", 1695752940, _watts(0.0, 362.0))
    ),
    "8.1.41": Expected(44, 0, 2, ("202314072546", 1692385844, _watts(307.0, 319.0))),
    "8.2.127_with_3cts_and_battery_split": Expected(
        5, 0, 5, ("482243033113", 1695752919, _watts(0.0, 361.0))
    ),
    "8.2.4264_metered_noct": Expected(2, 0, 0, ("121734002908", 1746702376, _watts(167.0, 255.0))),
    # device_data: millivolts and milliamps in volts and amps, joules in Wh
    "8.2.4345_with_device_data": Expected(
        15,
        0,
        0,
        (
            "122344043197",
            1748576887,
            {
                **_watts(255.0, 371.0),
                "dc_voltage_v": 32.363,
                "dc_current_a": 8.078,
                "ac_voltage_v": 248.156,
                "ac_current_a": 1.049,
                "frequency_hz": 50.013,
                "temperature_c": 38.0,
                "lifetime_wh": 354281850 / 3600,
            },
        ),
    ),
    # 17 microinverters (devType 1) and 3 ACB (devType 11) in the same list
    "8.2.4382_ACB": Expected(17, 3, 1, ("122050070266", 1732092212, _watts(12.0, 114.0))),
    "8.3.1598_collar": Expected(17, 0, 2, ("123456789644", 1752970877, _watts(0.0, 345.0))),
    # device_data plus /inventory.json with numbers as strings; the time is the
    # later of device_data's endDate (1781987985) and last_rpt_date ("1781988156").
    "8.3.5169_ACB_inventory": Expected(
        3,
        2,
        0,
        (
            "122013000000",
            1781988156,
            {
                **_watts(0.0, 243.0),
                "dc_voltage_v": 25.434,
                "dc_current_a": 0.027,
                "ac_voltage_v": 238.944,
                "ac_current_a": 0.0,
                "frequency_hz": 50.085,
                "temperature_c": 26.0,
                "lifetime_wh": 2122898995 / 3600,
                "provisioned": False,
                "communicating": False,
                "producing": False,
            },
        ),
    ),
    # 20 active pcu in device_data; /inventory.json's last_rpt_date equals endDate.
    "8.3.5169_with_generator": Expected(
        20,
        0,
        0,
        (
            "482208990001",
            1785593319,
            {
                **_watts(136.0, 297.0),
                "dc_voltage_v": 40.352,
                "dc_current_a": 3.707,
                "ac_voltage_v": 248.875,
                "ac_current_a": 0.582,
                "frequency_hz": 59.988,
                "temperature_c": 32.0,
                "lifetime_wh": 2011819050 / 3600,
                "provisioned": True,
                "communicating": True,
                "producing": True,
            },
        ),
    ),
    # 12 active pcu in device_data; the 8 removed ones (inactive, modGone, and in
    # the inventory without status) give no point.
    "8.3.5433_tot_is_net_cons": Expected(
        12,
        0,
        0,
        (
            "532437030305",
            1785332504,
            {
                **_watts(25.0, 299.0),
                "dc_voltage_v": 39.102,
                "dc_current_a": 0.742,
                "ac_voltage_v": 241.563,
                "ac_current_a": 0.186,
                "frequency_hz": 60.004,
                "temperature_c": 30.0,
                "lifetime_wh": pytest.approx(825482.875),
                "provisioned": True,
                "communicating": True,
                "producing": True,
            },
        ),
    ),
}

# serial -> (time, fields) of every battery in the recorded sets that have one
EXPECTED_BATTERIES: dict[str, dict[str, tuple[int, dict[str, Any]]]] = {
    "7.6.185_with_cts_and_battery_3t": {
        "122249097612": (
            1695769447,
            {
                "power_w": 0.0,
                "soc_pct": 15.0,
                "temperature_c": 29.0,
                "max_temperature_c": 30.0,
                "communicating": True,
                "state": "idle",
                "capacity_wh": 3500.0,
                "led_status": 17,
                "dc_switch_off": False,
            },
        ),
    },
    "8.1.41": {
        "492319002585": (
            1692385816,
            {
                "power_w": 24.0,  # real_power_mw 24000
                "soc_pct": 100.0,
                "temperature_c": 42.0,
                "max_temperature_c": 42.0,
                "communicating": True,
                "state": "discharging",
                "capacity_wh": 4960.0,
                "led_status": 14,
                "dc_switch_off": False,
            },
        ),
        "492319002593": (
            1692386075,
            {
                "power_w": 16.0,
                "soc_pct": 85.0,
                "temperature_c": 42.0,
                "max_temperature_c": 42.0,
                "communicating": True,
                "state": "discharging",
                "capacity_wh": 4960.0,
                "led_status": 14,
                "dc_switch_off": False,
            },
        ),
    },
    # No /inventory.json in this set: the ACBs have their watts only. The IQ
    # battery's charge is the inventory's percentFull (10), not power's soc (54).
    "8.2.4382_ACB": {
        "122311091641": (
            1732092823,
            {
                "power_w": 105.0,
                "soc_pct": 10.0,
                "temperature_c": 11.0,
                "max_temperature_c": 11.0,
                "communicating": True,
                "state": "discharging",
                "capacity_wh": 3500.0,
                "led_status": 17,
                "dc_switch_off": False,
            },
        ),
        "122122013879": (1732089577, {"power_w": 2.0, "max_power_w": 149.0}),
        "122122013808": (1732089577, {"power_w": 1.0, "max_power_w": 149.0}),
        "122122014120": (1732089607, {"power_w": 0.0, "max_power_w": 149.0}),
    },
    "8.3.5169_ACB_inventory": {
        "121917000000": (
            1781991008,  # last_rpt_date "1781991008" > lastReportDate 1781991006
            {
                "power_w": 4.0,
                "max_power_w": 271.0,
                "soc_pct": 2.0,
                "max_temperature_c": 32.0,
                "provisioned": True,
                "communicating": True,
                "producing": True,
                "state": "idle",
            },
        ),
        "122047000000": (
            1781991429,
            {
                "power_w": 5.0,
                "max_power_w": 272.0,
                "soc_pct": 0.0,
                "max_temperature_c": 32.0,
                "provisioned": True,
                "communicating": True,
                "producing": True,
                "state": "idle",
            },
        ),
    },
}


def _devices(name: str) -> list[Point]:
    """The microinverter and battery points (the CT readings the devices job
    also turns into points: tests/test_normalize_ct_readings.py)."""
    d = fx.set_dir(name)
    caps = fx.capabilities(d)
    points = normalize.devices(fx.devices_snapshot(d, caps), caps, NOW)
    return [p for p in points if p.measurement in ("enphase_inverter", "enphase_battery")]


def test_every_recorded_set_has_an_expectation() -> None:
    require_fixtures()
    assert sorted(EXPECTED) == fixture_sets()


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_device_points(name: str) -> None:
    require_fixtures()
    want = EXPECTED[name]
    points = _devices(name)
    inverters = {p.tags["serial"]: p for p in points if p.measurement == "enphase_inverter"}
    batteries = [p for p in points if p.measurement == "enphase_battery"]
    assert (
        len(inverters)
        == want.inverters
        == len([p for p in points if p.measurement == "enphase_inverter"])
    )
    assert sum(p.tags["type"] == "acb" for p in batteries) == want.acb
    assert sum(p.tags["type"] == "encharge" for p in batteries) == want.encharge
    if want.sample is not None:
        serial, time, fields = want.sample
        assert inverters[serial].tags == {"serial": serial}
        assert inverters[serial].time == time
        assert dict(inverters[serial].fields) == fields


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_field_types(name: str) -> None:
    require_fixtures()
    flags = {"provisioned", "communicating", "producing", "dc_switch_off"}
    for point in _devices(name):
        assert point.time > 0
        battery = point.measurement == "enphase_battery"
        assert set(point.tags) == ({"serial", "type"} if battery else {"serial"})
        for key, value in point.fields.items():
            if key in flags:
                assert type(value) is bool, key
            elif key == "led_status":
                assert type(value) is int, key
            elif key == "state":
                assert value in ("charging", "discharging", "idle", "full")
            else:
                assert type(value) is float, key


@pytest.mark.parametrize("name", sorted(EXPECTED_BATTERIES))
def test_batteries(name: str) -> None:
    require_fixtures()
    got = {
        p.tags["serial"]: (p.tags["type"], p.time, dict(p.fields))
        for p in _devices(name)
        if p.measurement == "enphase_battery"
    }
    want = {
        serial: ("acb" if "max_power_w" in fields else "encharge", time, fields)
        for serial, (time, fields) in EXPECTED_BATTERIES[name].items()
    }
    assert got == want


def test_iq_batteries_charging() -> None:
    require_fixtures()
    points = _devices("8.2.127_with_3cts_and_battery_split")
    batteries = [p for p in points if p.measurement == "enphase_battery"]
    powers = {p.tags["serial"]: p.fields["power_w"] for p in batteries}
    assert powers == {
        "12345678901006": -136.0,
        "12345678901005": -128.0,
        "12345678901004": -128.0,
        "12345678901003": -128.0,
        "12345678901002": -121.0,
    }
    assert {p.fields["state"] for p in batteries} == {"charging"}
