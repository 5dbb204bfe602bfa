"""A gateway that serves no device endpoint at all (recorded 4.2.27 answers 404 to
every inverter and inventory path): the worker learns it once, says so once, and
the devices job stops asking, instead of failing every 5 minutes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from envoy_ingest.envoy.capabilities import API_V1_INVERTERS, INVENTORY
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.settings import Settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.worker.poller import GatewayPoller
from tests.support.fakes import ListSink

NOON = 1718971200


async def test_no_device_endpoint_is_learned_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = SimulatorConfig(family="legacy", firmware="4.2.27", start_time=NOON, time_scale=0)
    with Simulator(cfg) as sim:
        for path in ("/api/v1/production/inverters", "/inventory.json"):
            sim.fail_next(path, 404, count=1000)  # any query
        settings = Settings(gateways=[{"host": sim.host}], state={"directory": tmp_path})
        gw = settings.gateways[0]
        sink = ListSink()
        poller = GatewayPoller(gw, EnvoyClient(gw, TokenManager(settings)), sink)
        caplog.set_level(logging.WARNING, logger="envoy_ingest")
        try:
            totals = await poller.poll("totals")
            assert totals.ok and totals.points
            assert poller.caps is not None
            assert poller.caps.devices_paths == (API_V1_INVERTERS, INVENTORY)
            sim.clear_requests()
            results = [await poller.poll("devices") for _ in range(3)]
            assert [(r.ok, r.points) for r in results] == [(True, [])] * 3
            # asked once, then never again
            assert sim.request_count("/api/v1/production/inverters") == 1
            assert sim.request_count("/inventory.json") == 1
            learned = poller.caps
            assert learned.devices_paths == () and learned.totals_extra_paths == ()
            assert "devices: none (the gateway serves no device endpoint)" in learned.describe()
            said = [
                r.getMessage() for r in caplog.records if "no device endpoint" in r.getMessage()
            ]
            assert len(said) == 1
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
            # the totals job goes on as before, without the devices' paths
            sim.clear_requests()
            assert (await poller.poll("totals")).ok
            assert [p for _, p in sim.requests] == ["/api/v1/production"]
        finally:
            await poller.aclose()


async def test_a_device_endpoint_that_fails_otherwise_is_not_learned(tmp_path: Path) -> None:
    cfg = SimulatorConfig(family="legacy", start_time=NOON, time_scale=0)
    with Simulator(cfg) as sim:
        settings = Settings(gateways=[{"host": sim.host}], state={"directory": tmp_path})
        gw = settings.gateways[0]
        client = EnvoyClient(gw, TokenManager(settings), backoff=0.01)
        poller = GatewayPoller(gw, client, ListSink())
        try:
            assert (await poller.poll("totals")).ok
            sim.fail_next("/api/v1/production/inverters", 404)
            sim.fail_next("/inventory.json", 503, count=3)  # busy, not absent
            assert not (await poller.poll("devices")).ok
            assert poller.caps is not None and poller.caps.device_endpoints
            result = await poller.poll("devices")
            assert result.ok and result.points
        finally:
            await poller.aclose()
