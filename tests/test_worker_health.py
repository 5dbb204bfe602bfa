"""/healthz, /readyz, /gateways and /metrics of a running worker: a gateway that
stops answering shows in /gateways and /metrics, never in /healthz."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from envoy_ingest.settings import load_settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.worker import Worker
from tests.support.servers import free_port


def test_health_follows_the_gateway_and_metrics_count_the_polls(tmp_path: Path) -> None:
    port = free_port()
    sim = Simulator(SimulatorConfig(family="legacy", cts="1phase", inverters=3)).start()
    host, serial = sim.host, sim.serial
    path = tmp_path / "settings.toml"
    path.write_text(
        f'[[gateways]]\nhost = "{sim.host}"\nname = "home"\n'
        f'[file]\ndirectory = "{tmp_path / "data"}"\n[state]\ndirectory = "{tmp_path / "st"}"\n'
        "[schedule]\ntotals_interval = 1\ndevices_interval = 2\njitter = 0\n"
        f'[health]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
    )
    worker = Worker(load_settings(path))
    seen: dict[str, Any] = {}

    async def observe() -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            await asyncio.sleep(3.5)
            healthy = await http.get("/healthz")
            seen["healthy"] = (healthy.status_code, healthy.json())
            seen["ready"] = (await http.get("/readyz")).status_code
            seen["metrics"] = (await http.get("/metrics")).text
            seen["gateways"] = (await http.get("/gateways")).json()
            sim.stop()  # the gateway goes away
            await asyncio.sleep(4)  # more than three totals intervals
            still = await http.get("/healthz")
            seen["still"] = (still.status_code, still.json())
            seen["gateways_after"] = (await http.get("/gateways")).json()
            seen["metrics_after"] = (await http.get("/metrics")).text
        worker.stop()

    async def go() -> None:
        await asyncio.gather(worker.run_forever(), observe())

    try:
        asyncio.run(go())
    finally:
        sim.stop()
    status, body = seen["healthy"]
    assert status == 200, body
    metrics = str(seen["metrics"])
    assert 'envoy_ingest_polls_total{gateway="home",job="totals",outcome="ok"}' in metrics
    assert 'envoy_ingest_points_written_total{measurement="enphase_system"}' in metrics
    assert (
        'envoy_ingest_requests_total{endpoint="/production.json?details=1",status="200"}'
    ) in metrics
    assert seen["ready"] == 200
    home = seen["gateways"]["gateways"]["home"]
    assert home["host"] == host
    assert home["serial"] == serial
    assert home["firmware"] == "5.0.62"
    assert home["healthy"] is True and home["last_error"] is None
    assert (
        f'envoy_ingest_gateway_info{{firmware="5.0.62",gateway="home",serial="{serial}"}} 1.0'
        in metrics
    )
    status, body = seen["still"]
    assert status == 200, body  # a dead gateway never makes the worker unhealthy
    assert body["gateways"] == {"total": 1, "failing": 1}
    home = seen["gateways_after"]["gateways"]["home"]
    assert home["healthy"] is False
    assert home["jobs"]["totals"]["healthy"] is False
    assert home["last_error"]["job"] in ("totals", "devices")
    assert 'envoy_ingest_gateway_up{gateway="home"} 0.0' in str(seen["metrics_after"])
