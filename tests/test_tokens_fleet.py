"""Enlighten at fleet scale: the gateways of one account share one login, their
token fetches are serialized, and every call to the cloud starts
``[enlighten].request_spacing`` seconds after the one before, whatever the
account: never a burst. The simulator's Enphase cloud answers in-process on a
fake clock, which moves only when the client waits for its turn."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.gateway import GatewaySettings
from envoy_ingest.settings import Settings
from envoy_ingest.simulator.cloud import LOGIN_PATH, TOKEN_PATH
from tests.support.fakes import T0, FakeClock, InProcessEnphase

ACCOUNTS = {"owner@example.com": "secret-password", "school@example.com": "other-password"}


def fleet(tmp_path: Path, per_account: dict[str, int]) -> Settings:
    gateways = []
    for a, (user, n) in enumerate(per_account.items()):
        for i in range(n):
            serial = f"1222380{a}{i:04d}"
            gateways.append(
                {
                    "host": f"10.{a}.0.{i + 1}",
                    "serial": serial,
                    "enlighten_username": user,
                    "enlighten_password": ACCOUNTS[user],
                }
            )
    return Settings(
        gateways=gateways,
        state={"directory": tmp_path / "state"},
        enlighten={
            "login_url": "https://cloud.test/login/login.json",
            "token_url": "https://cloud.test/tokens",
        },
    )


class Recorder:
    """The cloud's transport, recording when each call started and how many overlapped."""

    def __init__(self, enphase: InProcessEnphase, clock: FakeClock) -> None:
        self.enphase, self.clock = enphase, clock
        self.calls: list[tuple[float, str]] = []
        self.in_flight: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = (await request.aread()).decode()
        user = next(u for u in ACCOUNTS if u in body or u.replace("@", "%40") in body)
        self.calls.append((self.clock(), request.url.path))
        self.in_flight[user] = self.in_flight.get(user, 0) + 1
        self.peak[user] = max(self.peak.get(user, 0), self.in_flight[user])
        try:
            await asyncio.sleep(0.01)  # real time in flight, for others to overlap if they could
            return await self.enphase.cloud_handler(request)
        finally:
            self.in_flight[user] -= 1


async def fetch_all(tmp_path: Path, per_account: dict[str, int]) -> tuple[Recorder, Any]:
    clock = FakeClock()
    enphase = InProcessEnphase(clock)
    enphase.cloud.accounts.update(ACCOUNTS)
    recorder = Recorder(enphase, clock)
    settings = fleet(tmp_path, per_account)
    tokens = TokenManager(
        settings,
        clock=clock,
        sleep=clock.sleep,
        cloud_transport=httpx.MockTransport(recorder.handle),
    )

    async def never_checked(token: str) -> bool:
        raise AssertionError("a token fresh from Enlighten is trusted")

    gws: list[GatewaySettings] = settings.gateways
    try:
        # Every gateway asks at once, as at the first cycle after a start.
        got = await asyncio.gather(
            *(tokens.token_for(g, g.serial or "", never_checked) for g in gws)
        )
    finally:
        await tokens.aclose()
        enphase.close()
    assert len(set(got)) == len(gws)  # one token per gateway
    return recorder, enphase.cloud


async def test_fifty_gateways_of_one_account_one_login_fetches_spaced(tmp_path: Path) -> None:
    recorder, cloud = await fetch_all(tmp_path, {"owner@example.com": 50})
    assert cloud.login_calls == 1
    assert cloud.token_calls == 50
    assert [path for _, path in recorder.calls] == [LOGIN_PATH] + [TOKEN_PATH] * 50
    # The default spacing: calls start exactly 1 s apart (the clock moves only then) ...
    assert [t - T0 for t, _ in recorder.calls] == [float(i) for i in range(51)]
    # ... and one at a time for the account.
    assert recorder.peak == {"owner@example.com": 1}


async def test_two_accounts_one_login_each_never_a_burst(tmp_path: Path) -> None:
    recorder, cloud = await fetch_all(tmp_path, {"owner@example.com": 10, "school@example.com": 10})
    assert cloud.login_calls == 2
    assert cloud.token_calls == 20
    starts = [t for t, _ in recorder.calls]
    assert starts == [T0 + i for i in range(22)]  # logins too are spaced
    assert recorder.peak == {"owner@example.com": 1, "school@example.com": 1}
