"""/healthz and /metrics of a running worker: healthy while the gateway answers,
503 with a reason once it has not answered for three of its intervals."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import httpx

from envoy_ingest.settings import load_settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.worker import Worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_health_follows_the_gateway_and_metrics_count_the_polls(tmp_path: Path) -> None:
    port = free_port()
    sim = Simulator(SimulatorConfig(family="legacy", cts="1phase", inverters=3)).start()
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
            seen["metrics"] = (await http.get("/metrics")).text
            sim.stop()  # the gateway goes away
            await asyncio.sleep(7)  # more than three totals and devices intervals
            sick = await http.get("/healthz")
            seen["sick"] = (sick.status_code, sick.json())
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
    status, body = seen["sick"]
    assert status == 503
    assert "home" in str(body["reason"])
