"""The header filter (telemetry/logging.py) is installed once, by the logging set-up,
not by each client; secrets in httpx's and httpcore's lines stay redacted however
many clients were built."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.envoy.transport import build_client
from envoy_ingest.settings import Settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.telemetry.logging import (
    HEADER_LOGGERS,
    _DropHeaders,
    _Handler,
    clear_secrets,
    setup_logging,
)

EMAIL = "owner@example.com"
PASSWORD = "secret-password"  # the simulator's account


def header_filters() -> list[int]:
    """How many header filters each of httpcore's header loggers has."""
    return [
        sum(isinstance(f, _DropHeaders) for f in logging.getLogger(n).filters)
        for n in HEADER_LOGGERS
    ]


@pytest.fixture
def fresh_process() -> Iterator[None]:
    """Logging as a new process has it: no handler of ours, no header filter."""
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    saved = {n: list(logging.getLogger(n).filters) for n in HEADER_LOGGERS}
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _Handler)]
    for name in HEADER_LOGGERS:
        logger = logging.getLogger(name)
        logger.filters[:] = [f for f in logger.filters if not isinstance(f, _DropHeaders)]
    clear_secrets()
    yield
    clear_secrets()
    root.handlers[:] = saved_root[1]
    root.setLevel(saved_root[0])
    logging.captureWarnings(False)
    for name, filters in saved.items():
        logging.getLogger(name).filters[:] = filters


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(family="modern", inverters=2)) as s:
        yield s


def settings(sim: Simulator, tmp_path: Path) -> Settings:
    return Settings(
        gateways=[{"host": sim.host, "enlighten_username": EMAIL, "enlighten_password": PASSWORD}],
        state={"directory": tmp_path / "state"},
        enlighten={
            "login_url": sim.cloud.login_url,
            "token_url": sim.cloud.token_url,
            "request_spacing": 0,
        },
    )


async def check_jwt(sim: Simulator, token: str) -> None:
    """Ask the gateway through httpx (hence httpcore, which logs the answer's
    headers): its ``Set-Cookie: sessionId=...`` is a secret."""
    async with httpx.AsyncClient(verify=False) as http:
        answer = await http.get(
            f"https://{sim.host}/auth/check_jwt", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200 and "sessionid" in answer.headers["set-cookie"].lower()
        await http.get(f"https://{sim.host}/info", params={"token": token})


@pytest.mark.usefixtures("fresh_process")
def test_the_filter_is_installed_once_by_the_logging_set_up() -> None:
    gw = Settings(gateways=[{"host": "10.0.0.5"}]).gateways[0]
    for _ in range(3):
        build_client(gw)
    assert header_filters() == [0, 0, 0, 0]  # building a client installs nothing
    setup_logging("info", stream=io.StringIO())
    assert header_filters() == [1, 1, 1, 1]
    setup_logging("debug", stream=io.StringIO())  # again (as a reload would)
    for _ in range(5):
        build_client(gw)
    assert header_filters() == [1, 1, 1, 1]


@pytest.mark.usefixtures("fresh_process")
async def test_secrets_in_httpx_and_httpcore_lines_stay_redacted_after_many_clients(
    sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = settings(sim, tmp_path)
    tokens = TokenManager(s)
    token = (await tokens.refresh_now(s.gateways[0], sim.serial)).value
    caplog.set_level(logging.DEBUG)
    # Without the logging set-up nothing filters httpcore's header lines: a handler
    # other than ours (here the test's) would see the session id.
    await check_jwt(sim, token)
    assert any(session in caplog.text for session in sim.authority._sessions)
    caplog.clear()

    out = io.StringIO()
    setup_logging("debug", "text", out)
    clients = [EnvoyClient(s.gateways[0], tokens) for _ in range(4)]
    for _ in range(4):
        build_client(s.gateways[0])
    async with clients[0] as client:
        await client.connect()  # the gateway's own transport, then httpx's
    await check_jwt(sim, token)
    await tokens.aclose()
    sessions = set(sim.authority._sessions)
    assert len(sessions) >= 2
    logged = out.getvalue()
    assert "HTTP Request: GET https://" in logged  # httpx logged the requests
    assert "receive_response_headers.complete (headers not logged)" in logged  # httpcore
    assert "receive_response_headers.complete (headers not logged)" in caplog.text
    for secret in (token, *sessions):
        assert secret not in logged
    for session in sessions:  # the headers are dropped at the logger, before any handler
        assert session not in caplog.text
    assert header_filters() == [1, 1, 1, 1]
