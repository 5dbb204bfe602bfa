"""The worker on recorded battery and System Controller sites (the simulator
serving the recorded answers): the generator's configuration probed once, the
settings read at the first devices cycle and then once an hour, the dry
contacts' settings kept between reads, and optional endpoints that answer 404
or 401 learned and not asked again."""

from __future__ import annotations

from pathlib import Path

from envoy_ingest.envoy.capabilities import (
    DRY_CONTACT_SETTINGS,
    DRY_CONTACTS,
    GEN_CONFIG,
    GENERATOR,
    SECCTRL,
    TARIFF,
)
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.settings import Settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.worker.poller import CycleResult, GatewayPoller
from tests.conftest import require_fixtures
from tests.support.fakes import ListSink


class Steady:
    """The poller's steady clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _poller(sim: Simulator, tmp_path: Path, steady: Steady) -> GatewayPoller:
    gw: dict[str, object] = {"host": sim.host}
    if sim.url.startswith("https://"):
        gw["token"] = sim.issue_token(lifetime=365 * 86400)
    settings = Settings(gateways=[gw], state={"directory": tmp_path})
    g = settings.gateways[0]
    return GatewayPoller(g, EnvoyClient(g, TokenManager(settings)), ListSink(), steady=steady)


def _measurements(result: CycleResult, name: str) -> list[dict[str, object]]:
    return [{**p.tags, **p.fields} for p in result.points if p.measurement == name]


async def test_generator_site_reads_settings_hourly_and_keeps_them(tmp_path: Path) -> None:
    root = require_fixtures()
    steady = Steady()
    with Simulator(SimulatorConfig(fixture=root / "8.3.5169_with_generator")) as sim:
        poller = _poller(sim, tmp_path, steady)
        try:
            assert (await poller.poll("totals")).ok
            assert sim.request_count(GEN_CONFIG) == 1  # the probe's follow-up
            assert poller.caps is not None and poller.caps.generator
            results = []
            for _ in range(3):
                results.append(await poller.poll("devices"))
                steady.now += 300
            assert all(r.ok for r in results)
            assert sim.request_count(DRY_CONTACTS) == 3
            assert sim.request_count(GENERATOR) == 3
            assert sim.request_count(DRY_CONTACT_SETTINGS) == 1  # at the first cycle
            assert sim.request_count(TARIFF) == 0  # no batteries: no storage settings
            assert sim.request_count(SECCTRL) == 0
            # every cycle: the contacts with the kept settings' load names and modes
            for result in results:
                contacts = _measurements(result, "enphase_dry_contact")
                assert [c.get("load") for c in contacts] == [
                    "AC/Water heater",
                    "Mini split/Range",
                    None,
                    None,
                ]
                assert {c["mode"] for c in contacts} == {"manual"}
                assert len(_measurements(result, "enphase_generator")) == 1
                (grid,) = [
                    p
                    for p in result.points
                    if p.measurement == "enphase_system" and "grid_connected" in p.fields
                ]
                assert grid.fields == {"grid_connected": True, "grid_mode": "grid-tied"}
            steady.now += 3600
            assert (await poller.poll("devices")).ok
            assert sim.request_count(DRY_CONTACT_SETTINGS) == 2  # an hour later
            assert sim.request_count(GEN_CONFIG) == 1
        finally:
            await poller.aclose()


async def test_missing_and_refused_endpoints_are_learned(tmp_path: Path) -> None:
    """8.1.41 has no /admin/lib/tariff (404); a refused dry contact status (401,
    while the other endpoints answer) is learned too; both are asked once."""
    root = require_fixtures()
    steady = Steady()
    with Simulator(SimulatorConfig(fixture=root / "8.1.41")) as sim:
        sim.fail_next(DRY_CONTACTS, 401, count=1000)
        poller = _poller(sim, tmp_path, steady)
        try:
            assert (await poller.poll("totals")).ok
            for _ in range(3):
                result = await poller.poll("devices")
                assert result.ok
                assert _measurements(result, "enphase_battery")
                steady.now += 3600
            assert sim.request_count(TARIFF) == 1
            assert sim.request_count(DRY_CONTACTS) == 2  # asked, retried once on 401
            assert sim.request_count(DRY_CONTACT_SETTINGS) == 3  # hourly, still answers
            assert sim.request_count(SECCTRL) == 3
            assert poller.caps is not None
            assert poller.caps.absent == frozenset({TARIFF, DRY_CONTACTS})
            assert DRY_CONTACTS not in poller.caps.devices_paths
            assert poller.caps.settings_paths == (DRY_CONTACT_SETTINGS,)
            # the settings alone still describe the contacts
            contacts = _measurements(result, "enphase_dry_contact")
            assert [c["contact"] for c in contacts] == ["NC1", "NC2", "NO1", "NO2"]
            assert all("status" not in c for c in contacts)
        finally:
            await poller.aclose()
