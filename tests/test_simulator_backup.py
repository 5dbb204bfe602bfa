"""The simulator's backup site: batteries that charge by day and discharge by
night, a storage CT whose counters are the truth, the IQ System Controller's
grid relay, an outage (a fault plan) the batteries and generator carry, the
storage settings; and sites without them answer as before."""

from __future__ import annotations

import json
from typing import Any

import pytest

from envoy_ingest.energy.localday import day_of, midnight, zone
from envoy_ingest.errors import SettingsError
from envoy_ingest.simulator import SimulatorConfig
from envoy_ingest.simulator.faults import true_day
from envoy_ingest.simulator.model import Model
from envoy_ingest.simulator.render_totals import STORAGE_EID
from envoy_ingest.simulator.site import build_site
from envoy_ingest.simulator.synthetic import SyntheticGateway

TZ = "Europe/Berlin"
BERLIN = zone(TZ)
DAY0 = day_of(1_749_945_600, BERLIN)


def at(day: int, hour: float) -> float:
    return midnight(DAY0 + day, BERLIN) + hour * 3600


def gateway(**cfg: Any) -> SyntheticGateway:
    config = SimulatorConfig(tz=TZ, time_scale=0, start_time=at(0, 18), **cfg)
    start = at(0, 18)
    return SyntheticGateway(Model(build_site(config, start), start), config.software)


def backup_site() -> SyntheticGateway:
    return gateway(
        batteries="iq", cts="1phase", storage_ct=True, system_controller=True, generator=True
    )


def answer(gw: SyntheticGateway, path: str, t: float) -> Any:
    a = gw.answer(path, t)
    assert a.status == 200, path
    return json.loads(a.body)


def test_an_outage_is_carried_by_the_batteries_and_the_generator() -> None:
    gw = backup_site()
    gw.faults.outage(at(1, 1), at(1, 6))
    model = gw.model
    before, after = model.reading(at(1, 1) - 60), model.reading(at(1, 6))
    inside = [model.reading(t) for t in range(int(at(1, 1)), int(at(1, 6)), 60)]
    assert before.grid_connected and after.grid_connected
    assert not any(r.grid_connected or r.net_w for r in inside)
    # nothing imported or exported while the relay is open
    assert inside[-1].import_lifetime == inside[0].import_lifetime
    assert inside[-1].export_lifetime == inside[0].export_lifetime
    # the night's batteries ran down to the generator's start level: it ran, and stopped
    running = [r.generator_w > 0 for r in inside]
    assert running[0] and not running[-1]
    assert min(r.soc for r in inside) >= 5.0


def test_battery_energy_is_what_the_charge_says() -> None:
    """No losses in the model: charged minus discharged is the stored energy's change."""
    gw = backup_site()
    gw.faults.outage(at(1, 1), at(1, 6))
    model = gw.model
    for day in (1, 2):
        energy = true_day(model, DAY0 + day)
        a, b = model.day_start(DAY0 + day), model.day_start(DAY0 + day + 1)
        stored = (b.soc - a.soc) / 100 * model.site.storage_wh
        assert energy.battery_charged - energy.battery_discharged == pytest.approx(stored)
        assert energy.battery_charged > 3000 and energy.battery_discharged > 3000
    # charging by day, from the surplus; discharging by night
    assert all(model.reading(at(2, h)).battery_w < -500 for h in (9, 10, 11))
    assert all(model.reading(at(d, 20)).battery_w > 500 for d in (1, 2))


def test_the_storage_ct_counts_the_battery() -> None:
    gw = backup_site()
    t = at(1, 11)
    r = gw.model.reading(t)
    meters = answer(gw, "/ivp/meters", t)
    assert [m["measurementType"] for m in meters] == ["production", "net-consumption", "storage"]
    (storage,) = [x for x in answer(gw, "/ivp/meters/readings", t) if x["eid"] == STORAGE_EID]
    assert storage["actEnergyRcvd"] == round(r.charged_lifetime, 3)
    assert storage["actEnergyDlvd"] == round(r.discharged_lifetime, 3)
    assert storage["activePower"] == round(r.battery_w, 3) < 0  # negative: charging
    power = answer(gw, "/ivp/ensemble/power", t)["devices:"]
    assert sum(d["real_power_mw"] for d in power) / 1000 == pytest.approx(r.battery_w, abs=0.01)


def test_the_system_controller_relay_and_the_generator_answer_the_outage() -> None:
    gw = backup_site()
    gw.faults.outage(at(1, 1), at(1, 6))

    def relay(t: float) -> tuple[str, str]:
        groups = {g["type"]: g["devices"] for g in answer(gw, "/ivp/ensemble/inventory", t)}
        (controller,) = groups["ENPOWER"]
        return controller["mains_oper_state"], controller["Enpwr_grid_mode"]

    assert relay(at(1, 0.5)) == ("closed", "multimode-ongrid")
    assert relay(at(1, 3)) == ("open", "multimode-offgrid")
    assert relay(at(1, 6)) == ("closed", "multimode-ongrid")
    assert answer(gw, "/ivp/ensemble/generator", at(1, 0.5))["oper_state"] == "open"
    assert answer(gw, "/ivp/ensemble/generator", at(1, 1) + 60)["oper_state"] == "closed"
    assert answer(gw, "/ivp/ss/gen_config", at(1, 3))["gen_type"] == "Standby"
    contacts = answer(gw, "/ivp/ensemble/dry_contacts", at(1, 3))["dry_contacts"]
    assert [c["status"] for c in contacts] == ["open", "closed"]  # the load is shed


def test_storage_settings_follow_the_fault_plan() -> None:
    gw = backup_site()
    gw.faults.storage_mode(at(1, 12), "backup", 100.0)

    def settings(t: float) -> tuple[str, float]:
        s = answer(gw, "/admin/lib/tariff", t)["tariff"]["storage_settings"]
        return s["mode"], s["reserved_soc"]

    assert settings(at(1, 11)) == ("self-consumption", 15.0)
    assert settings(at(1, 13)) == ("backup", 100.0)


def test_sites_without_them_answer_as_before() -> None:
    gw = gateway(batteries="iq", cts="1phase")
    t = at(1, 11)
    assert [g["type"] for g in answer(gw, "/ivp/ensemble/inventory", t)] == ["ENCHARGE"]
    assert len(answer(gw, "/ivp/meters", t)) == 2
    assert gw.answer("/ivp/ensemble/generator", t).status == 404
    assert gw.answer("/admin/lib/tariff", t).status == 404
    assert gw.answer("/ivp/ss/gen_config", t).status == 404
    assert gw.answer("/ivp/ensemble/dry_contacts", t).status == 404
    with pytest.raises(ValueError, match="synthetic gateway"):
        type(gw.faults)().outage(t, t + 60)


def test_a_backup_site_needs_its_parts() -> None:
    with pytest.raises(SettingsError, match="storage_ct"):
        SimulatorConfig(batteries="iq", storage_ct=True)
    with pytest.raises(SettingsError, match="generator"):
        SimulatorConfig(batteries="iq", generator=True)
