"""The request plan of battery and System Controller sites (issue 18): what it
adds per recorded gateway, the probe's follow-up, optional endpoints learned
absent."""

from __future__ import annotations

from dataclasses import replace

import pytest

from envoy_ingest.envoy.capabilities import (
    DRY_CONTACT_SETTINGS,
    DRY_CONTACTS,
    ENSEMBLE_INVENTORY,
    GEN_CONFIG,
    GENERATOR,
    PRODUCTION_JSON,
    SECCTRL,
    TARIFF,
    detect,
    followup_paths,
    probe_paths,
    requests_per_hour,
)
from tests import fixtures_io as fx
from tests.conftest import fixture_sets, require_fixtures
from tests.test_capabilities import EXPECTED, PLAIN, _info, _pj

#: Requests an hour before the battery, grid and site fields (issue 18).
PER_HOUR_BEFORE = {
    "7.3.517": 156,
    "7.6.185_with_cts_and_battery_3t": 168,
    "8.1.41": 156,
    "8.2.127_with_3cts_and_battery_split": 168,
    "8.2.4345_with_device_data": 96,
    "8.2.4382_ACB": 168,
    "8.3.1598_collar": 168,
    "8.3.5169_ACB_inventory": 108,
    "8.3.5169_with_generator": 96,
}


NEW_PATHS = (SECCTRL, DRY_CONTACTS, GENERATOR, TARIFF, DRY_CONTACT_SETTINGS)


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_site_fields_budget(name: str) -> None:
    """Sites without batteries and without a System Controller, collar or combiner
    ask for nothing new; the others at most 40 requests an hour more."""
    require_fixtures()
    caps = fx.capabilities(fx.set_dir(name))
    plan = (*caps.totals_paths, *caps.devices_paths, *caps.settings_paths)
    if not caps.batteries and not caps.ensemble_controller:
        assert name not in PER_HOUR_BEFORE
        assert not set(plan) & set(NEW_PATHS)
        assert ENSEMBLE_INVENTORY not in plan
        return
    extra = requests_per_hour(caps) - PER_HOUR_BEFORE[name]
    assert 0 < extra <= 40
    # learned absent (404 / 401 / 403): asked no more
    learned = replace(caps, absent=frozenset(NEW_PATHS))
    assert not set(learned.devices_paths + learned.settings_paths) & set(NEW_PATHS)
    assert requests_per_hour(learned) <= PER_HOUR_BEFORE[name] + 12  # inventory only


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_followup_probe_only_where_a_system_controller_is(name: str) -> None:
    """The generator's configuration is asked once at start, only on System
    Controller sites; /ivp/ensemble/generator says present: 1 where none is."""
    require_fixtures()
    d = fx.set_dir(name)
    info = fx.info(d)
    first = fx.snapshot(d, probe_paths(info))
    followup = followup_paths(info, first)
    assert followup == ([GEN_CONFIG] if EXPECTED[name].site[0] else [])
    assert len(probe_paths(info)) + len(followup) <= 6


def test_generator_configuration() -> None:
    inventory = [{"type": "ENPOWER", "devices": [{"serial_num": "1"}]}]
    config = {"gen_type": "Standby", "start_method": "auto"}
    for body, want in (
        (config, True),
        ({}, False),
        ({"error": "404 - Not Found"}, False),
        ("<html/>", False),
        ([config], False),
    ):
        probe = {PRODUCTION_JSON: _pj(), ENSEMBLE_INVENTORY: inventory, GEN_CONFIG: body}
        assert detect(_info(), probe).generator is want, body
    # a generator is configured only through a System Controller
    probe = {PRODUCTION_JSON: _pj(), ENSEMBLE_INVENTORY: [], GEN_CONFIG: config}
    assert detect(_info(), probe).generator is False
    assert followup_paths(_info(), {ENSEMBLE_INVENTORY: [{"type": "ENPOWER", "devices": []}]}) == []


def test_controllers_and_batteries_in_the_plan() -> None:
    inventory = [
        {"type": "ENCHARGE", "devices": [{"serial_num": "2"}]},
        {"type": "enpower", "devices": [{"serial_num": "1"}]},
        {"type": "COLLAR", "devices": "x"},
    ]
    caps = detect(_info(), {PRODUCTION_JSON: _pj(), ENSEMBLE_INVENTORY: inventory})
    assert (caps.system_controller, caps.collar, caps.combiner) == (True, False, False)
    assert caps.devices_paths == (*PLAIN, ENSEMBLE_INVENTORY, SECCTRL, DRY_CONTACTS)
    assert caps.settings_paths == (TARIFF, DRY_CONTACT_SETTINGS)
    assert caps.settings_kept_paths == (DRY_CONTACT_SETTINGS,)
    assert "IQ System Controller" in caps.describe()
    assert "hourly: /admin/lib/tariff /ivp/ss/dry_contact_settings" in caps.describe()
    assert requests_per_hour(caps) == 120 + 12 * 5 + 2
    # secctrl only from ensemble firmware (an ACB site on 4.x has none)
    old = detect(_info("D4.10.35"), {PRODUCTION_JSON: _pj(storage=[_ACB])})
    assert old.acb_count == 1 and SECCTRL not in old.devices_paths
    assert old.settings_paths == (TARIFF,)
    # a gateway that serves no device endpoint gets no hourly read either
    assert replace(caps, device_endpoints=False).settings_paths == ()


_ACB = {"type": "acb", "activeCount": 1, "percentFull": 40, "wNow": 5}
