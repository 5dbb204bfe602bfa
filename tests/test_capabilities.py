"""Capability detection and the request plan, on every recorded gateway and on
the odd answers the recorded ones do not show."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NamedTuple

import pytest

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
    METERS,
    METERS_READINGS,
    PRODUCTION_JSON,
    SECCTRL,
    TARIFF,
    Capabilities,
    detect,
    device_data_usable,
    probe_paths,
    requests_per_hour,
)
from envoy_ingest.envoy.firmware import GatewayInfo, parse_version
from tests import fixtures_io as fx
from tests.conftest import fixture_sets, require_fixtures

ENSEMBLE = (ENSEMBLE_INVENTORY,)
PLAIN = (API_V1_INVERTERS, INVENTORY)
CT = (*PLAIN, METERS_READINGS)  # enabled CTs: their energies every 5 minutes (+12 an hour)
SC = (SECCTRL,)  # battery sites: the battery system's energy and reserve (+12 an hour)
DRY = (DRY_CONTACTS,)  # System Controller sites: the dry contacts (+12 an hour)
TARIFF_HOURLY = (TARIFF,)  # battery sites: the storage settings, hourly (+1)
SC_HOURLY = (TARIFF, DRY_CONTACT_SETTINGS)  # batteries and a System Controller (+2)


class Expected(NamedTuple):
    source: str | None
    production_ct: bool
    consumption_ct: bool
    phase_count: int | None
    acb: int
    encharge: int
    device_data: bool
    totals: tuple[str, ...]
    devices: tuple[str, ...]
    per_hour: float
    #: read once an hour (and at the first devices cycle)
    settings: tuple[str, ...] = ()
    #: System Controller, Meter Collar, Combiner controller, generator
    site: tuple[bool, bool, bool, bool] = (False, False, False, False)


API = (API_V1_PRODUCTION,)
PJ = (PRODUCTION_JSON,)
PJ_IQ = (PRODUCTION_JSON, ENSEMBLE_POWER)  # IQ battery power every minute
CONTROLLER = (True, False, False, False)

# What each recorded gateway is, read off its answers by hand.
EXPECTED: dict[str, Expected] = {
    "3.17.3": Expected("api_v1", False, False, None, 0, 0, False, API, PLAIN, 84),
    "3.9.36": Expected("api_v1", False, False, None, 0, 0, False, API, PLAIN, 84),
    "3.9.36_bad_auth": Expected("api_v1", False, False, None, 0, 0, False, API, PLAIN, 84),
    "4.10.35": Expected("eim", True, True, 2, 0, 0, False, PJ, CT, 96),
    "4.2.33": Expected("eim", True, False, 2, 0, 0, False, PJ, CT, 96),
    "5.0.62": Expected("api_v1", False, False, None, 0, 0, False, API, PLAIN, 84),
    "7.3.130": Expected("eim", True, True, None, 0, 0, False, PJ, PLAIN, 84),
    "7.3.466_with_cts_3phase": Expected("eim", True, True, 3, 0, 0, False, PJ, CT, 96),
    # IQ batteries and a System Controller: + secctrl, dry contacts, 2 hourly = +26
    "7.3.517": Expected(
        "eim",
        True,
        True,
        None,
        0,
        3,
        False,
        PJ_IQ,
        PLAIN + ENSEMBLE + SC + DRY,
        182,
        SC_HOURLY,
        CONTROLLER,
    ),
    "7.6.114_without_cts": Expected("api_v1", False, False, None, 0, 0, False, API, PLAIN, 84),
    "7.6.175_with_cts": Expected("eim", True, True, 1, 0, 0, False, PJ, CT, 96),
    # an IQ battery without a System Controller: + secctrl, tariff hourly = +13
    "7.6.185_with_cts_and_battery_3t": Expected(
        "eim",
        True,
        True,
        1,
        0,
        1,
        False,
        PJ_IQ,
        (*PLAIN, *ENSEMBLE, METERS_READINGS, *SC),
        181,
        TARIFF_HOURLY,
    ),
    "8.1.41": Expected(
        "eim",
        True,
        True,
        None,
        0,
        2,
        False,
        PJ_IQ,
        PLAIN + ENSEMBLE + SC + DRY,
        182,
        SC_HOURLY,
        CONTROLLER,
    ),
    "8.2.127_with_3cts_and_battery_split": Expected(
        "eim",
        True,
        True,
        2,
        0,
        5,
        False,
        PJ_IQ,
        (*PLAIN, *ENSEMBLE, METERS_READINGS, *SC, *DRY),
        194,
        SC_HOURLY,
        CONTROLLER,
    ),
    "8.2.4264_metered_noct": Expected("inverters", False, False, None, 0, 0, False, PJ, PLAIN, 84),
    # a System Controller without batteries: + ensemble inventory, dry contacts,
    # their settings hourly = +25
    "8.2.4345_with_device_data": Expected(
        "eim",
        True,
        True,
        1,
        0,
        0,
        True,
        PJ,
        (INVENTORY, DEVICE_DATA, *ENSEMBLE, METERS_READINGS, *DRY),
        121,
        (DRY_CONTACT_SETTINGS,),
        CONTROLLER,
    ),
    "8.2.4382_ACB": Expected(
        "eim",
        True,
        True,
        1,
        3,
        1,
        False,
        PJ_IQ,
        (*PLAIN, *ENSEMBLE, METERS_READINGS, *SC),
        181,
        TARIFF_HOURLY,
    ),
    "8.3.1598_collar": Expected(
        "eim",
        True,
        True,
        2,
        0,
        2,
        False,
        PJ_IQ,
        (*PLAIN, *ENSEMBLE, METERS_READINGS, *SC),
        181,
        TARIFF_HOURLY,
        (False, True, True, False),
    ),
    # AC Batteries only: + secctrl, tariff hourly = +13
    "8.3.5169_ACB_inventory": Expected(
        "eim",
        True,
        True,
        1,
        2,
        0,
        True,
        PJ,
        (*PLAIN, DEVICE_DATA, METERS_READINGS, *SC),
        121,
        TARIFF_HOURLY,
    ),
    # a System Controller and a generator, no batteries: + ensemble inventory, dry
    # contacts, generator, dry contact settings hourly = +37
    "8.3.5169_with_generator": Expected(
        "eim",
        True,
        True,
        2,
        0,
        0,
        True,
        PJ,
        (INVENTORY, DEVICE_DATA, *ENSEMBLE, METERS_READINGS, *DRY, GENERATOR),
        133,
        (DRY_CONTACT_SETTINGS,),
        (True, False, False, True),
    ),
    "8.3.5433_tot_is_net_cons": Expected(
        "eim", True, True, 2, 0, 0, True, PJ, (INVENTORY, DEVICE_DATA, METERS_READINGS), 96
    ),
}


def test_every_recorded_set_has_an_expectation() -> None:
    require_fixtures()
    assert sorted(EXPECTED) == fixture_sets()


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_detect_on_recorded_gateway(name: str) -> None:
    require_fixtures()
    caps = fx.capabilities(fx.set_dir(name))
    want = EXPECTED[name]
    assert caps.production_source == want.source
    assert caps.production_ct is want.production_ct
    assert caps.consumption_ct is want.consumption_ct
    assert caps.phase_count == want.phase_count
    assert caps.acb_count == want.acb
    assert caps.encharge_count == want.encharge
    assert caps.device_data is want.device_data
    assert caps.totals_paths == want.totals
    assert caps.devices_paths == want.devices
    assert caps.settings_paths == want.settings
    site = (caps.system_controller, caps.collar, caps.combiner, caps.generator)
    assert site == want.site
    assert requests_per_hour(caps) == want.per_hour
    # The totals job makes one request a minute, plus IQ battery power where there is some.
    assert caps.totals_paths[1:] == ((ENSEMBLE_POWER,) if caps.encharge_count else ())
    assert caps.devices_extra_paths == caps.totals_paths[1:]
    assert ENSEMBLE_POWER not in caps.devices_paths


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_probe_asks_only_what_the_firmware_can_have(name: str) -> None:
    require_fixtures()
    info = fx.info(fx.set_dir(name))
    paths = probe_paths(info)
    assert paths[:2] == [PRODUCTION_JSON, API_V1_PRODUCTION]
    assert (METERS in paths) is (info.imeter is not False)
    assert (ENSEMBLE_INVENTORY in paths) is (info.version >= (5,))
    assert (DEVICE_DATA in paths) is (info.version >= (8,))
    assert len(paths) <= 5


def test_firmware_faults_on_recorded_gateways() -> None:
    require_fixtures()
    html = fx.capabilities(fx.set_dir("3.9.36"))
    assert html.production_json is False  # HTML with 200
    stale = fx.capabilities(fx.set_dir("8.2.4264_metered_noct"))
    assert stale.api_v1_stale is True and stale.production_source == "inverters"
    collar = fx.capabilities(fx.set_dir("8.3.1598_collar"))
    assert collar.api_v1_zero is True
    # Enabled CTs only, by eid (load, evse, pv3p are disabled; readings list one more).
    assert collar.cts == (
        ("704643328", "production"),
        ("704643584", "net-consumption"),
        ("704643840", "storage"),
        ("704644352", "backfeed"),
    )
    assert collar.storage_ct_eids == ("704643840",)
    assert collar.batteries == frozenset({"encharge"})
    mixed = fx.capabilities(fx.set_dir("8.2.4382_ACB"))
    assert mixed.batteries == frozenset({"acb", "encharge"})
    assert mixed.totals_extra_paths == ENSEMBLE
    assert fx.capabilities(fx.set_dir("5.0.62")).totals_extra_paths == (API_V1_INVERTERS,)


#: Recorded sets whose ``/ivp/meters`` enables a net-consumption CT (8.3.5433 has
#: a total-consumption CT instead; 4.2.33's is disabled; 7.3.130, 7.3.517 and
#: 8.1.41 were recorded without ``/ivp/meters``).
GRID_CT = {
    "4.10.35",
    "7.3.466_with_cts_3phase",
    "7.6.175_with_cts",
    "7.6.185_with_cts_and_battery_3t",
    "8.2.127_with_3cts_and_battery_split",
    "8.2.4345_with_device_data",
    "8.2.4382_ACB",
    "8.3.1598_collar",
    "8.3.5169_ACB_inventory",
    "8.3.5169_with_generator",
}


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_ct_energies_cost_at_most_12_requests_an_hour(name: str) -> None:
    """Reading the CTs' energies adds ``/ivp/meters/readings`` to the devices job
    (12 requests an hour) where it was not read already for a storage CT."""
    require_fixtures()
    caps = fx.capabilities(fx.set_dir(name))
    assert caps.grid_ct is (name in GRID_CT)
    before = replace(caps, cts=tuple(ct for ct in caps.cts if ct[1] == "storage"))
    extra = requests_per_hour(caps) - requests_per_hour(before)
    assert extra == (0 if caps.storage_ct or not caps.cts else 12)
    assert (METERS_READINGS in caps.devices_paths) is bool(caps.cts)
    assert METERS_READINGS not in caps.totals_paths + caps.totals_extra_paths


# --- answers the recorded gateways do not show -----------------------------------


def _info(software: str = "D8.2.4382", imeter: bool | None = True) -> GatewayInfo:
    return GatewayInfo("123", software, parse_version(software), imeter=imeter)


def _pj(**sections: Any) -> dict[str, Any]:
    return {"production": [{"type": "inverters", "activeCount": 10, "wNow": 1}], **sections}


def test_probe_paths_for_old_unmetered_firmware() -> None:
    assert probe_paths(_info("D5.0.62", imeter=False)) == [
        PRODUCTION_JSON,
        API_V1_PRODUCTION,
        ENSEMBLE_INVENTORY,
    ]
    assert probe_paths(_info("R3.9.36", imeter=None)) == [
        PRODUCTION_JSON,
        API_V1_PRODUCTION,
        METERS,
    ]


def test_consumption_ct_without_production_ct_polls_production_json_only() -> None:
    meters = [{"eid": 1, "state": "enabled", "measurementType": "net-consumption", "phaseCount": 1}]
    consumption = [{"type": "eim", "measurementType": "net-consumption", "activeCount": 1}]
    probe = {
        PRODUCTION_JSON: _pj(consumption=consumption),
        API_V1_PRODUCTION: {"wattsNow": 1, "wattHoursToday": 2, "wattHoursSevenDays": 3},
        METERS: meters,
    }
    caps = detect(_info(), probe)
    assert (caps.production_source, caps.production_ct, caps.consumption_ct) == (
        "inverters",
        False,
        True,
    )
    assert caps.totals_paths == (PRODUCTION_JSON,)


def test_html_production_json_and_zero_api_v1_still_read_api_v1() -> None:
    """3.x right after a reboot: api/v1 all zero and production.json HTML."""
    probe = {
        PRODUCTION_JSON: "<html>error</html>",
        API_V1_PRODUCTION: {"wattsNow": 0, "wattHoursToday": 0, "wattHoursSevenDays": 0},
    }
    caps = detect(_info("R3.9.36", imeter=None), probe)
    assert caps.api_v1_zero is True
    assert caps.production_source == "api_v1"
    assert caps.totals_paths == (API_V1_PRODUCTION,)


def test_zero_api_v1_falls_back_to_production_json_inverters() -> None:
    probe = {
        PRODUCTION_JSON: _pj(),
        API_V1_PRODUCTION: {"wattsNow": 5, "wattHoursToday": 0, "wattHoursSevenDays": 0},
    }
    caps = detect(_info("D8.3.5422", imeter=False), probe)
    assert caps.production_source == "inverters"


def test_nothing_answered() -> None:
    caps = detect(_info(), {})
    # imeter on >= 8.2.4264 and no enabled CT known: /api/v1/production counts as stale.
    assert caps == Capabilities(firmware=(8, 2, 4382), imeter=True, api_v1_stale=True)
    assert caps.production_source is None
    assert caps.totals_paths == (API_V1_PRODUCTION,)
    assert caps.devices_paths == PLAIN
    assert requests_per_hour(caps, totals_interval=30, devices_interval=600) == 120 + 12


def test_meter_errors_and_disabled_cts_mean_no_ct() -> None:
    for meters in ([], {"error": "404 - Not Found"}, "<html/>", [{"state": "disabled"}]):
        caps = detect(_info(), {PRODUCTION_JSON: _pj(), METERS: meters})
        assert not caps.metered
        assert caps.phase_count is None


def test_numbers_as_strings_in_meters_and_storage() -> None:
    meters = [
        {"eid": "7", "state": "Enabled", "measurementType": "storage", "phaseCount": "3"},
        {"eid": 8, "state": "enabled", "measurementType": "production", "phaseCount": 1},
    ]
    storage = [{"type": "acb", "activeCount": "2", "percentFull": "40", "wNow": "5"}]
    caps = detect(_info(), {PRODUCTION_JSON: _pj(storage=storage), METERS: meters})
    assert caps.storage_ct_eids == ("7",)
    assert caps.phase_count == 3
    assert caps.acb_count == 2
    assert METERS_READINGS in caps.devices_paths


def test_acb_without_percent_full_is_not_a_battery() -> None:
    storage = [{"type": "acb", "activeCount": 3, "wNow": 0, "whNow": 0, "state": "idle"}]
    assert detect(_info(), {PRODUCTION_JSON: _pj(storage=storage)}).acb_count == 0


def test_phase_count_from_lines_when_meters_do_not_say() -> None:
    zero = {"wNow": 0.0, "whLifetime": 0.0, "rmsVoltage": 0.0}
    live = {"wNow": 1.0, "whLifetime": 10.0, "rmsVoltage": 120.0}
    eim = {"type": "eim", "activeCount": 1, "lines": [live, live, zero]}
    caps = detect(_info(), {PRODUCTION_JSON: {"production": [eim]}})
    assert caps.phase_count == 2
    assert caps.production_source == "eim"


def test_device_data_usable() -> None:
    pcu = {"devName": "pcu", "sn": "1", "active": True}
    assert device_data_usable({"a": pcu, "deviceCount": 1, "deviceDataLimit": 50})
    assert not device_data_usable({"a": pcu, "deviceCount": 50, "deviceDataLimit": 50})
    assert not device_data_usable({"a": pcu})
    gone = {**pcu, "active": False}
    assert not device_data_usable({"a": gone, "deviceCount": 1, "deviceDataLimit": 50})
    assert not device_data_usable(
        {"a": {**pcu, "devName": "acb"}, "deviceCount": 1, "deviceDataLimit": 50}
    )
    assert not device_data_usable("<html/>")
    assert not device_data_usable([pcu])


def test_ensemble_inventory_errors_mean_no_iq_battery() -> None:
    for body in ([], {"error": "404 - Not Found"}, [{"type": "ENCHARGE", "devices": []}]):
        caps = detect(_info(), {PRODUCTION_JSON: _pj(), ENSEMBLE_INVENTORY: body})
        assert caps.encharge_count == 0
        assert ENSEMBLE_POWER not in caps.devices_paths
