"""The normalizers on answers the recorded sets do not show, or show only once:
garbage, numbers as strings, firmware faults. They never raise, and leave out
what they cannot read instead of writing 0."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from envoy_ingest import normalize
from envoy_ingest.envoy.capabilities import (
    API_V1_INVERTERS,
    API_V1_PRODUCTION,
    DEVICE_DATA,
    DRY_CONTACT_SETTINGS,
    DRY_CONTACTS,
    ENSEMBLE_INVENTORY,
    ENSEMBLE_POWER,
    GENERATOR,
    INVENTORY,
    METERS_READINGS,
    PRODUCTION_JSON,
    SECCTRL,
    TARIFF,
    Capabilities,
    detect,
    probe_paths,
)
from envoy_ingest.point import Point
from tests import fixtures_io as fx
from tests.conftest import fixture_sets, require_fixtures
from tests.contract import CODES, COUNTS, FLAGS, STATES

NOW = 1_700_000_000
ALL_PATHS = (
    PRODUCTION_JSON,
    API_V1_PRODUCTION,
    API_V1_INVERTERS,
    INVENTORY,
    DEVICE_DATA,
    ENSEMBLE_INVENTORY,
    ENSEMBLE_POWER,
    METERS_READINGS,
    SECCTRL,
    TARIFF,
    DRY_CONTACTS,
    DRY_CONTACT_SETTINGS,
    GENERATOR,
)
GARBAGE: list[Any] = [
    "<html><body>401</body></html>",
    {"error": "404 - Not Found"},
    [],
    {},
    None,
    42,
    [None, "x", 3],
    {"production": "x", "consumption": {"a": 1}, "storage": [None]},
]


def _all(snapshot: dict[str, Any], caps: Capabilities) -> list[Point]:
    return [*normalize.totals(snapshot, caps, NOW), *normalize.devices(snapshot, caps, NOW)]


def _check_types(points: list[Point]) -> None:
    for point in points:
        assert type(point.time) is int
        for key, value in point.fields.items():
            if key in COUNTS or key in CODES:
                assert type(value) is int
            elif key in FLAGS:
                assert type(value) is bool
            elif key in ("state", "battery_state"):
                assert value in ("charging", "discharging", "idle", "full")
            elif key in STATES:
                assert type(value) is str and value
            else:
                assert type(value) is float, (key, value)


def _caps(name: str) -> Capabilities:
    return fx.capabilities(fx.set_dir(name))


def _full_snapshot(name: str) -> dict[str, Any]:
    d = fx.set_dir(name)
    caps = fx.capabilities(d)
    return fx.snapshot(d, [*caps.totals_paths, *caps.devices_paths, *caps.settings_paths])


# --- garbage ------------------------------------------------------------------


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_empty_snapshot_writes_nothing(name: str) -> None:
    require_fixtures()
    assert _all({}, _caps(name)) == []


@pytest.mark.parametrize("body", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_everywhere_writes_nothing(body: Any) -> None:
    require_fixtures()
    for name in fixture_sets():
        assert _all(dict.fromkeys(ALL_PATHS, body), _caps(name)) == []


def _stringify(value: Any) -> Any:
    """Every number as a string, as some 8.3 builds send them."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return {k: _stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    return value


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_numbers_as_strings_read_the_same(name: str) -> None:
    require_fixtures()
    d = fx.set_dir(name)
    info = fx.info(d)
    probe = fx.snapshot(d, probe_paths(info))
    caps = detect(info, probe)
    assert detect(info, _stringify(probe)) == caps
    snapshot = _full_snapshot(name)
    assert _all(_stringify(snapshot), caps) == _all(snapshot, caps)


def _mutate(value: Any, rng: random.Random) -> Any:
    """Drop keys, swap values for the wrong type, truncate lists."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            roll = rng.random()
            if roll < 0.08:
                continue
            out[k] = rng.choice(GARBAGE) if roll < 0.16 else _mutate(v, rng)
        return out
    if isinstance(value, list):
        items = [_mutate(v, rng) for v in value]
        return items[: rng.randint(0, len(items))] if rng.random() < 0.1 else items
    if rng.random() < 0.05:
        return rng.choice(["", "nan", "inf", "-1e400", True, -1, 2**64, 1.5e308])
    return value


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_mutated_answers_never_raise(name: str) -> None:
    require_fixtures()
    caps = _caps(name)
    snapshot = _full_snapshot(name)
    rng = random.Random(name)
    for _ in range(60):
        _check_types(_all(_mutate(copy.deepcopy(snapshot), rng), caps))


# --- firmware faults and leave-out rules ------------------------------------------


def test_3x_all_zero_after_reboot_writes_nothing() -> None:
    require_fixtures()
    caps = _caps("3.9.36")
    zero = {"wattsNow": 0, "wattHoursToday": 0, "wattHoursSevenDays": 0, "wattHoursLifetime": 0}
    assert normalize.totals({API_V1_PRODUCTION: zero}, caps, NOW) == []
    # The same answer from a newer firmware is written: it answers 503 after a reboot.
    newer = Capabilities(firmware=(7, 6, 114), production_source="api_v1")
    (point,) = normalize.totals({API_V1_PRODUCTION: zero}, newer, NOW)
    assert point.fields == {
        "production_w": 0.0,
        "production_today_wh": 0.0,
        "production_7d_wh": 0.0,
        "production_lifetime_wh": 0.0,
    }


def test_unreported_values_are_left_out() -> None:
    """Production from the inverters entry: no today / 7 days on most firmware."""
    caps = Capabilities(firmware=(8, 3, 5422), production_json=True, production_source="inverters")
    body = {"production": [{"type": "inverters", "activeCount": 3, "wNow": 5, "readingTime": 9}]}
    (point,) = normalize.totals({PRODUCTION_JSON: body}, caps, NOW)
    assert point.fields == {"production_w": 5.0, "inverters": 3}
    assert point.time == 9


def _eim(kind: str, w: float, lifetime: float, **extra: Any) -> dict[str, Any]:
    return {
        "type": "eim",
        "measurementType": kind,
        "activeCount": 1,
        "readingTime": 100,
        "wNow": w,
        "whLifetime": lifetime,
        "whToday": 1.0,
        "whLastSevenDays": 2.0,
        "rmsCurrent": 3.0,
        "rmsVoltage": 240.0,
        **extra,
    }


FAULTY = Capabilities(firmware=(8, 3, 5433), production_json=True, production_source="eim")


def test_total_is_net_without_production_leaves_total_out() -> None:
    production = {**_eim("production", 0, 0), "activeCount": 0}  # CT not measuring
    body = {
        "production": [production],
        "consumption": [_eim("total-consumption", 10, 50), _eim("net-consumption", 10, 50)],
    }
    points = normalize.totals({PRODUCTION_JSON: body}, FAULTY, NOW)
    (system,) = [p for p in points if p.measurement == "enphase_system"]
    assert not any(k.startswith("consumption") for k in system.fields)
    assert system.fields["net_w"] == 10.0
    assert {p.tags["flow"] for p in points if p.measurement == "enphase_meter"} == set()


def _lines(*pairs: tuple[float, float]) -> list[dict[str, float]]:
    return [
        {"wNow": w, "whLifetime": lt, "rmsCurrent": 1.0, "rmsVoltage": 120.0} for w, lt in pairs
    ]


def test_total_is_net_repairs_only_affected_phases() -> None:
    body = {
        "production": [_eim("production", 3, 30, lines=_lines((1, 10), (2, 20)))],
        "consumption": [
            _eim("total-consumption", 8, 80, lines=_lines((4, 40), (9, 99))),
            _eim("net-consumption", 8, 80, lines=_lines((4, 40), (4, 40))),
        ],
    }
    points = normalize.totals({PRODUCTION_JSON: body}, FAULTY, NOW)
    meters = {
        (p.tags["flow"], p.tags["phase"]): dict(p.fields)
        for p in points
        if p.measurement == "enphase_meter"
    }
    assert meters["consumption", "l1"] == {"power_w": 5.0, "lifetime_wh": 50.0, "voltage_v": 120.0}
    assert meters["consumption", "l2"] == {
        "power_w": 9.0,
        "lifetime_wh": 99.0,
        "current_a": 1.0,
        "voltage_v": 120.0,
    }
    (system,) = [p for p in points if p.measurement == "enphase_system"]
    assert (system.fields["consumption_w"], system.fields["consumption_lifetime_wh"]) == (
        11.0,
        110.0,
    )


def test_fault_rule_only_from_8_3_5433() -> None:
    body = {
        "production": [_eim("production", 3, 30)],
        "consumption": [_eim("total-consumption", 8, 80), _eim("net-consumption", 8, 80)],
    }
    older = Capabilities(firmware=(8, 2, 4382), production_json=True, production_source="eim")
    (system,) = [p for p in normalize.totals({PRODUCTION_JSON: body}, older, NOW) if not p.tags]
    assert system.fields["consumption_w"] == 8.0


def test_inactive_production_ct_writes_no_production() -> None:
    """fw 5.3.5528: a production CT sometimes reports activeCount 0 with bogus numbers;
    the inverters entry would be a step change, so production is left out."""
    caps = Capabilities(firmware=(7, 6, 175), production_json=True, production_source="eim")
    body = {
        "production": [
            {"type": "inverters", "activeCount": 7, "wNow": 751, "whLifetime": 702919},
            {**_eim("production", 99, 99), "activeCount": 0},
        ]
    }
    (point,) = normalize.totals({PRODUCTION_JSON: body}, caps, NOW)
    assert point.fields == {"inverters": 7}


def test_battery_totals_need_every_battery() -> None:
    caps = Capabilities(firmware=(8, 1, 41), encharge_count=2)
    inventory = [
        {
            "type": "ENCHARGE",
            "devices": [
                {"serial_num": "a", "percentFull": 50, "encharge_capacity": 1000},
                {"serial_num": "b", "percentFull": 100, "encharge_capacity": 3000},
            ],
        }
    ]
    power = {"devices:": [{"serial_num": "a", "real_power_mw": -5000, "soc": 50}]}
    (point,) = normalize.totals({ENSEMBLE_INVENTORY: inventory, ENSEMBLE_POWER: power}, caps, NOW)
    # b's power is missing: no battery_w; b's charge from the inventory.
    assert point.fields == {"batteries": 2, "battery_soc_pct": 87.5}
    assert point.time == NOW


def test_acb_status_and_removed_devices() -> None:
    caps = Capabilities(firmware=(8, 3, 5169), acb_count=1)
    inventory = [
        {
            "type": "ACB",
            "devices": [
                {"serial_num": "1", "admin_state": "0", "percentFull": 9},
                {
                    "serial_num": "2",
                    "admin_state": 2,
                    "charge_status": "unknown",
                    "sleep_enabled": True,
                    "communicating": "true",
                    "last_rpt_date": "77",
                },
            ],
        },
        {"type": "PCU", "devices": [{"serial_num": "3", "producing": 0, "last_rpt_date": 0}]},
    ]
    points = normalize.devices({INVENTORY: inventory}, caps, NOW)
    assert [(p.measurement, dict(p.tags), p.time, dict(p.fields)) for p in points] == [
        ("enphase_inverter", {"serial": "3"}, NOW, {"producing": False}),
        ("enphase_battery", {"serial": "2", "type": "acb"}, 77, {"communicating": True}),
    ]


def test_device_data_failing_this_time_falls_back_to_the_v1_list() -> None:
    require_fixtures()
    d = fx.set_dir("8.3.5169_ACB_inventory")
    caps = fx.capabilities(d)
    snapshot = fx.snapshot(d, [API_V1_INVERTERS])
    inverters = [p for p in normalize.devices(snapshot, caps, NOW) if not p.tags.get("type")]
    assert {p.tags["serial"]: p.fields["power_w"] for p in inverters} == {
        "122013000000": 1.0,
        "122012100000": 2.0,
        "122012200000": 3.0,
    }
