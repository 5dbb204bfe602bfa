"""The token manager over real HTTP: the simulated firmware-7 gateway and its fake
Enphase cloud. Cloud and gateway use real time; the manager's backoff uses a fake
clock where the test needs hours to pass."""

from __future__ import annotations

import asyncio
import logging
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from envoy_ingest.commands.token import token_command
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.errors import CloudError, CloudLoginRefused, MultiFactorAccount, TokenError
from envoy_ingest.settings import Settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from tests.support.fakes import FakeClock

EMAIL = "owner@example.com"
PASSWORD = "secret-password"  # the simulator's account


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(family="modern", inverters=2)) as s:
        yield s


def settings(sim: Simulator, tmp_path: Path, **gw: Any) -> Settings:
    gateway = {"host": sim.host, "enlighten_username": EMAIL, "enlighten_password": PASSWORD}
    return Settings(
        gateways=[{**gateway, **gw}],
        state={"directory": tmp_path / "state"},
        enlighten={
            "login_url": sim.cloud.login_url,
            "token_url": sim.cloud.token_url,
            "timeout": 0.5,
            "request_spacing": 0,  # spacing is tested in test_tokens_fleet.py
        },
    )


async def test_login_token_and_polling(sim: Simulator, tmp_path: Path) -> None:
    s = settings(sim, tmp_path)
    tokens = TokenManager(s)
    await tokens.start()
    async with EnvoyClient(s.gateways[0], tokens) as client:
        info = await client.connect()
        assert info.serial == sim.serial
        snap = await client.fetch(["/production.json?details=1", "/inventory.json"])
        assert set(snap) == {"/production.json?details=1", "/inventory.json"}
    await tokens.aclose()
    assert (sim.cloud.login_calls, sim.cloud.token_calls) == (1, 1)
    cache = tmp_path / "state" / "tokens" / f"{sim.serial}.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("mode", "error", "text"),
    [
        ("wrong_password", CloudLoginRefused, "check enlighten_username and enlighten_password"),
        ("mfa", MultiFactorAccount, "multi-factor"),
        ("http_400", CloudError, "answered 400"),
        ("http_403", CloudError, "answered 403"),
        ("http_500", CloudError, "answered 500"),
        ("timeout", CloudError, "timed out after 0.5 s"),
    ],
)
async def test_cloud_failures(
    sim: Simulator, tmp_path: Path, mode: str, error: type[Exception], text: str
) -> None:
    sim.cloud.mode = mode
    clock = FakeClock(time.time())
    tokens = TokenManager(settings(sim, tmp_path), clock=clock, rng=lambda: 0.5)
    async with EnvoyClient(tokens.settings.gateways[0], tokens) as client:
        with pytest.raises(error, match=text):
            await client.connect()
        calls = sim.cloud.login_calls
        # later cycles within the backoff make no cloud call
        clock.t += 10
        await tokens.refresh_due()
        with pytest.raises(TokenError, match="next attempt in"):
            await client.connect()
        assert sim.cloud.login_calls == calls
        # after it (6 hours at most), one more attempt
        clock.t += 6 * 3600
        await tokens.refresh_due()
        assert sim.cloud.login_calls == calls + 1


async def test_short_lived_token_renewed_in_the_background_with_no_gap(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.cloud.token_lifetime = 2  # renewed 0.2 s before it runs out
    s = settings(sim, tmp_path)
    tokens = TokenManager(s)
    await tokens.start()
    try:
        async with EnvoyClient(s.gateways[0], tokens) as client:
            await client.connect()
            started = time.monotonic()
            polls = 0
            while time.monotonic() - started < 3.0:
                await client.get("/api/v1/production")  # raises on any refusal
                polls += 1
                await asyncio.sleep(0.1)
    finally:
        await tokens.aclose()
    assert polls > 15
    assert 2 <= sim.cloud.token_calls <= 4  # one at start, then one per ~1.8 s: no loop
    assert sim.request_count("/auth/check_jwt") == 0


async def test_revoked_token_one_refresh_no_loop(sim: Simulator, tmp_path: Path) -> None:
    s = settings(sim, tmp_path)
    tokens = TokenManager(s)
    async with EnvoyClient(s.gateways[0], tokens) as client:
        await client.connect()
        await client.get("/api/v1/production")
        sim.revoke_tokens()  # as after a reboot
        for _ in range(5):
            await client.get("/api/v1/production")
    assert sim.cloud.token_calls == 2
    assert sim.request_count("/auth/check_jwt") == 1


async def fetch_then_restart(sim: Simulator, tmp_path: Path, between: Callable[[], None]) -> str:
    """A first run fetches and caches a token; ``between``; a second run polls once.
    Returns how the second run authenticated."""
    s = settings(sim, tmp_path)
    async with EnvoyClient(s.gateways[0], TokenManager(s)) as client:
        await client.connect()
    between()
    second = TokenManager(s)  # a restart
    await second.start()
    try:
        async with EnvoyClient(s.gateways[0], second) as client:
            await client.connect()
            await client.get("/api/v1/production")
            return client.auth_description
    finally:
        await second.aclose()


async def test_restart_reuses_the_cached_token_without_the_cloud(
    sim: Simulator, tmp_path: Path
) -> None:
    def fetched_once() -> None:
        assert sim.cloud.token_calls == 1

    assert "cached" in await fetch_then_restart(sim, tmp_path, fetched_once)
    assert (sim.cloud.login_calls, sim.cloud.token_calls) == (1, 1)
    assert sim.request_count("/auth/check_jwt") == 1  # validated once at start


async def test_a_damaged_token_cache_is_moved_aside_and_the_token_fetched_again(
    sim: Simulator, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "state" / "tokens"

    def damage() -> None:  # a power cut on an SD card
        (cache,) = cache_dir.glob("*.json")
        cache.write_bytes(b'{"token": "eyJ\x00 half a file')

    await fetch_then_restart(sim, tmp_path, damage)
    (cache,) = cache_dir.glob("*.json")
    (moved,) = cache_dir.glob("*.json.corrupt-*")
    assert moved.read_bytes() == b'{"token": "eyJ\x00 half a file'
    assert sim.cloud.token_calls == 2 and cache.is_file()  # fetched again, cached again


def current(tokens: TokenManager, s: Settings, sim: Simulator) -> str:
    info = tokens.current(s.gateways[0], sim.serial)
    assert info is not None
    return info.value


async def test_no_secret_in_any_log_line(
    sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore, asyncio
    sim.cloud.token_lifetime = 2
    s = settings(sim, tmp_path)
    tokens = TokenManager(s)
    await tokens.start()
    seen_tokens: set[str] = set()
    try:
        async with EnvoyClient(s.gateways[0], tokens) as client:
            await client.connect()
            for i in range(13):
                await client.get("/api/v1/production")
                seen_tokens.add(current(tokens, s, sim))
                if i == 2:
                    sim.revoke_tokens()
                await asyncio.sleep(0.2)
        lines: list[str] = []
        assert await token_command(s, None, False, out=lines.append) == 0
        for mode in ("http_500", "wrong_password"):
            sim.cloud.mode = mode
            with pytest.raises(TokenError) as err:
                await tokens.refresh_now(s.gateways[0], sim.serial)
            lines.append(str(err.value))
    finally:
        await tokens.aclose()
    seen_tokens.add(current(tokens, s, sim))
    assert len(seen_tokens) >= 3
    sessions = set(sim.cloud._sessions) | set(sim.authority._sessions)
    assert sessions
    secrets = {PASSWORD, *seen_tokens, *sessions}
    text = "\n".join(
        [r.getMessage() for r in caplog.records]
        + [caplog.text]
        + lines
        + [repr(tokens.__dict__), repr(tokens._entries), repr(tokens._accounts)]
    )
    assert "HTTP Request" in text  # httpx did log
    assert "receive_response_headers" in text  # httpcore did log
    for secret in secrets:
        for part in (secret, secret.split(".")[-1]):
            assert part not in text
