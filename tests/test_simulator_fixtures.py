"""Fixture mode: every recorded gateway served byte for byte, with its recorded
status, behind the auth of its firmware."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from envoy_ingest.simulator import Simulator, SimulatorConfig, path_to_fixture_name
from envoy_ingest.simulator.fixtures import LOG_SUFFIX
from tests.conftest import fixture_sets, require_fixtures
from tests.test_simulator import client

# The request paths real clients send, for the file names they map to.
KNOWN_PATHS = [
    "/info",
    "/home",
    "/inv",
    "/inventory",
    "/production",
    "/production.json",
    "/production.json?details=1",
    "/api/v1/production",
    "/api/v1/production/inverters",
    "/inventory.json",
    "/inventory.json?deleted=1",
    "/admin/lib/tariff",
    "/admin/lib/acb_config",
    "/ivp/meters",
    "/ivp/meters/readings",
    "/ivp/meters/reports",
    "/ivp/meters/gridReading",
    "/ivp/meters/pvReading",
    "/ivp/pdm/device_data",
    "/ivp/pdm/energy",
    "/ivp/sc/pvlimit",
    "/ivp/ss",
    "/ivp/ss/dry_contact_settings",
    "/ivp/ss/gen_config",
    "/ivp/ss/gen_schedule",
    "/ivp/ss/pel_settings",
    "/ivp/ensemble/inventory",
    "/ivp/ensemble/power",
    "/ivp/ensemble/secctrl",
    "/ivp/ensemble/status",
    "/ivp/ensemble/dry_contacts",
    "/ivp/ensemble/generator",
    "/ivp/ensemble/relay",
]
BY_NAME = {path_to_fixture_name(p): p for p in KNOWN_PATHS}


def test_path_to_fixture_name() -> None:
    assert path_to_fixture_name("/info") == "info"
    assert path_to_fixture_name("/production.json?details=1") == "production.json_details_1"
    assert path_to_fixture_name("/api/v1/production/inverters") == "api_v1_production_inverters"
    assert path_to_fixture_name("/ivp/ensemble/inventory") == "ivp_ensemble_inventory"
    assert path_to_fixture_name("/inventory.json?deleted=1") == "inventory.json_deleted_1"


def recorded_status(directory: Path, name: str) -> int:
    log = directory / f"{name}{LOG_SUFFIX}"
    return int(json.loads(log.read_text())["code"]) if log.is_file() else 200


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_every_recorded_answer_is_served_as_recorded(name: str) -> None:
    directory = require_fixtures() / name
    files = sorted(
        p.name
        for p in directory.iterdir()
        if p.is_file() and not p.name.endswith(LOG_SUFFIX) and not p.name.startswith("_")
    )
    info = (directory / "info").read_text()
    web_tokens = "<web-tokens>true</web-tokens>" in info
    with Simulator(SimulatorConfig(fixture=directory)) as sim, client(sim) as c:
        # The firmware decides the transport, whatever the config's family says.
        assert sim.family == ("modern" if web_tokens else "legacy")
        assert sim.url.startswith("https://" if web_tokens else "http://")
        assert f"<sn>{sim.serial}</sn>" in info
        for file in files:
            path = BY_NAME.get(file, "/" + file)
            r = c.get(path)
            assert r.status_code == recorded_status(directory, file), path
            assert r.content == (directory / file).read_bytes(), path
        # Without credentials only /info answers.
        plain = httpx.get(sim.url + "/api/v1/production/inverters", verify=False)
        assert plain.status_code == 401
        assert (
            httpx.get(sim.url + "/info", verify=False).content == (directory / "info").read_bytes()
        )


def test_details_fall_back_to_production_json() -> None:
    directory = require_fixtures() / "7.6.175_with_cts"
    with Simulator(SimulatorConfig(fixture=directory, family="legacy")) as sim, client(sim) as c:
        assert sim.family == "modern"  # inferred from /info
        r = c.get("/production.json?details=1")
        assert r.content == (directory / "production.json").read_bytes()
        assert c.get("/ivp/not/recorded").status_code == 404


def test_inventory_is_served_where_it_was_not_recorded() -> None:
    root = require_fixtures()
    with Simulator(SimulatorConfig(fixture=root / "7.6.175_with_cts")) as sim, client(sim) as c:
        inventory = c.get("/inventory.json").json()
        inverters = c.get("/api/v1/production/inverters").json()
        assert [g["type"] for g in inventory] == ["PCU", "ACB", "NSRB"]
        assert [d["serial_num"] for d in inventory[0]["devices"]] == [
            i["serialNumber"] for i in inverters
        ]
        assert c.get("/inventory.json?deleted=1").json() == inventory
    acb = root / "8.2.4382_ACB"
    with Simulator(SimulatorConfig(fixture=acb)) as sim, client(sim) as c:
        groups = {g["type"]: g["devices"] for g in c.get("/inventory.json").json()}
        assert len(groups["ACB"]) == 3 and groups["ACB"][0]["percentFull"] == 25
    only_deleted = root / "8.3.5433_tot_is_net_cons"
    with Simulator(SimulatorConfig(fixture=only_deleted)) as sim, client(sim) as c:
        body = (only_deleted / "inventory.json_deleted_1").read_bytes()
        assert c.get("/inventory.json").content == body
    with Simulator(SimulatorConfig(fixture=root / "3.9.36_bad_auth")) as sim, client(sim) as c:
        assert c.get("/inventory.json").status_code == 401  # refused like the inverters


def test_legacy_fixture_reboot_answers_zeros() -> None:
    directory = require_fixtures() / "5.0.62"
    with Simulator(SimulatorConfig(fixture=directory)) as sim, client(sim) as c:
        sim.reboot(5)
        prod = c.get("/production.json").json()
        assert prod["production"][0]["wNow"] == 0 and prod["production"][0]["whLifetime"] == 0
        assert c.get("/api/v1/production").json()["wattHoursLifetime"] == 0
