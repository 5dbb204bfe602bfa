"""Token manager logic, fast: the simulator's firmware-7 gateway and Enphase cloud
served in-process (tests/support/fakes.py) on a fake clock. The same flows over
real HTTP against the running simulator are in test_tokens_sim.py."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from envoy_ingest.commands.token import token_command
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.tokens import BACKOFF_CAP, DAY, TokenManager, decode_token
from envoy_ingest.envoy.tokens.claims import unverified_claims
from envoy_ingest.errors import (
    CloudError,
    CloudLoginRefused,
    GatewayAuthError,
    MultiFactorAccount,
    SettingsError,
    TokenError,
)
from envoy_ingest.settings import Settings
from envoy_ingest.simulator.auth import TokenAuthority
from tests.support.fakes import T0, FakeClock, InProcessEnphase

SERIAL = "122238082690"  # the simulator's
EMAIL = "owner@example.com"
PASSWORD = "secret-password"  # the simulator's account
PATH = "/ivp/meters"  # a data request behind the token (and cheap for the simulator)


def make_token(clock: Callable[[], float], lifetime: float, user: str = "owner") -> str:
    now = clock()
    claims = {"exp": int(now + lifetime), "iat": int(now), "enphaseUser": user, "aud": SERIAL}
    return jwt.encode(claims, "test-key-that-is-long-enough-for-hs256", algorithm="HS256")


def production(body: Any) -> bool:
    """The gateway's data answer for PATH (its meters, not an error page)."""
    return isinstance(body, list) and [m["measurementType"] for m in body] == [
        "production",
        "net-consumption",
    ]


def settings_for(tmp_path: Path, **gw: Any) -> Settings:
    gateway = {"host": "envoy.local", **gw}
    return Settings(
        gateways=[gateway],
        state={"directory": tmp_path / "state"},
        enlighten={
            "login_url": "https://cloud.test/login/login.json",
            "token_url": "https://cloud.test/tokens",
            "timeout": 0.25,  # the cloud's "timeout" mode holds the request
            "request_spacing": 0,  # spacing is tested in test_tokens_fleet.py
        },
    )


def creds() -> dict[str, Any]:
    return {"enlighten_username": EMAIL, "enlighten_password": PASSWORD}


class Rig:
    """A manager, a client and the in-process gateway and cloud, on one fake clock."""

    def __init__(
        self,
        tmp_path: Path,
        lifetime: float = 365 * DAY,
        enphase: InProcessEnphase | None = None,
        **gw: Any,
    ) -> None:
        """``enphase``: the gateway and cloud of an earlier rig (a restart of the worker)."""
        self.enphase = enphase or InProcessEnphase(FakeClock(), lifetime=lifetime)
        self.clock = self.enphase.clock
        self.cloud = self.enphase.cloud
        self.sim = self.enphase.sim
        self.settings = settings_for(tmp_path, **(gw or creds()))
        self.tokens = self.manager()
        self.client = EnvoyClient(
            self.settings.gateways[0], self.tokens, transport=self.enphase.gateway_transport()
        )

    def manager(self) -> TokenManager:
        return TokenManager(
            self.settings,
            clock=self.clock,
            sleep=self.clock.sleep,
            rng=lambda: 0.5,
            cloud_transport=self.enphase.cloud_transport(),
        )

    async def aclose(self) -> None:
        await self.tokens.aclose()
        await self.client.aclose()
        self.enphase.close()


@pytest.fixture
async def rig(tmp_path: Path) -> Any:
    r = Rig(tmp_path)
    yield r
    await r.aclose()


# --- reading tokens ---------------------------------------------------------------


def test_decode_reads_expiry_and_user_without_the_signature() -> None:
    token = make_token(lambda: T0, 3600, user="installer")
    info = decode_token(token, "pasted")
    assert (info.expires, info.issued, info.user) == (T0 + 3600, T0, "installer")
    assert token not in repr(info)
    assert info.refresh_ahead(T0) == 360  # a tenth of an hour
    year = decode_token(make_token(lambda: T0, 365 * DAY), "x")
    assert year.refresh_ahead(T0) == 30 * DAY
    assert decode_token(make_token(lambda: T0, 20), "x").refresh_ahead(T0) == 2


@pytest.mark.parametrize("bad", ["not-a-jwt", "eyJhbGciOi.broken.token", "a.b"])
def test_malformed_pasted_token_is_a_settings_error_naming_the_key(
    tmp_path: Path, bad: str
) -> None:
    with pytest.raises(SettingsError) as err:
        TokenManager(settings_for(tmp_path, token=bad))
    assert "gateways[0].token" in str(err.value)
    assert bad not in str(err.value)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("a.b", "not three dot-separated parts"),
        ("a.b.c.d", "not three dot-separated parts"),
        ("e30.!!!.x", "a part is not base64url JSON"),  # "!!!" decodes to no JSON
        ("W10.e30.", "header or claims not a JSON object"),  # header: []
        ("e30.W10.", "header or claims not a JSON object"),  # claims: []
    ],
)
def test_malformed_token_reasons(bad: str, reason: str) -> None:
    with pytest.raises(ValueError, match=rf"^not a valid JWT \({reason}\)$"):
        decode_token(bad, "pasted")


def test_claims_read_as_pyjwt_reads_them() -> None:
    token = make_token(lambda: T0, 3600)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (
        unverified_claims(token)
        == claims
        == {
            "exp": int(T0 + 3600),
            "iat": int(T0),
            "enphaseUser": "owner",
            "aud": SERIAL,
        }
    )


def test_pasted_token_without_expiry_is_rejected(tmp_path: Path) -> None:
    token = jwt.encode({"enphaseUser": "owner"}, "k" * 32, algorithm="HS256")
    with pytest.raises(SettingsError, match=r"gateways\[0\]\.token: the token has no expiry"):
        TokenManager(settings_for(tmp_path, token=token))


# --- fetching -----------------------------------------------------------------------


async def test_login_and_token_fetch_then_bearer_requests(rig: Rig) -> None:
    info = await rig.client.connect()
    assert info.uses_jwt
    assert (rig.cloud.login_calls, rig.cloud.token_calls) == (1, 1)
    assert production(await rig.client.get(PATH))
    assert rig.client.auth_description.startswith("bearer token (owner, expires ")
    assert "Enlighten" in rig.client.auth_description
    left = rig.tokens.seconds_until_expiry(SERIAL)
    assert left is not None and 364 * DAY < left <= 365 * DAY
    # a fresh token from the cloud is trusted: no check_jwt
    assert rig.sim.request_count("/auth/check_jwt") == 0


async def test_wrong_password_is_clear_and_not_retried_soon(rig: Rig) -> None:
    rig.cloud.mode = "wrong_password"
    with pytest.raises(CloudLoginRefused) as err:
        await rig.client.connect()
    assert "enlighten_password" in str(err.value) and PASSWORD not in str(err.value)
    # the next cycles do not hammer Enlighten
    for _ in range(3):
        rig.clock.t += 60
        with pytest.raises(TokenError, match="next attempt in 6 hours"):
            await rig.client.connect()
    await rig.tokens.refresh_due()
    assert rig.cloud.login_calls == 1


async def test_multi_factor_account_says_to_paste_a_token(rig: Rig) -> None:
    rig.cloud.mode = "mfa"
    with pytest.raises(MultiFactorAccount) as err:
        await rig.client.connect()
    text = str(err.value)
    assert "multi-factor" in text and "entrez.enphaseenergy.com" in text and "token" in text
    assert text.startswith("gateways[0] (envoy.local): ")
    assert rig.cloud.token_calls == 0


@pytest.mark.parametrize("mode", ["http_400", "http_403", "http_500", "http_503", "timeout"])
async def test_cloud_errors_back_off_exponentially_with_jitter(rig: Rig, mode: str) -> None:
    rig.cloud.mode = mode
    with pytest.raises(CloudError) as err:
        await rig.client.connect()
    assert "next attempt in" in str(err.value)
    expect = "timed out" if mode == "timeout" else f"answered {mode[5:]}"
    assert expect in str(err.value)
    attempts = [rig.clock.t]
    # The background pass retries only when the backoff has run out.
    for _ in range(400):
        rig.clock.t += 30
        before = rig.cloud.login_calls
        await rig.tokens.refresh_due()
        if rig.cloud.login_calls > before:
            attempts.append(rig.clock.t)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    # rng() = 0.5: 3/4 of 60, 120, 240, ... s, each rounded up to the next 30 s step
    assert gaps[:5] == [60.0, 90.0, 180.0, 360.0, 720.0]
    assert all(b >= a for a, b in itertools.pairwise(gaps))
    assert len(attempts) < 12  # 3.3 hours of fake time: no hammering
    # once the cloud is back, the next attempt succeeds and resets the backoff
    rig.cloud.mode = "ok"
    rig.clock.t += BACKOFF_CAP
    await rig.tokens.refresh_due()
    assert rig.tokens.seconds_until_expiry(SERIAL) is not None
    await rig.client.connect()
    assert production(await rig.client.get(PATH))


async def test_cloud_failure_keeps_the_current_token_in_use(rig: Rig) -> None:
    rig.cloud.token_lifetime = 1000
    await rig.client.connect()
    rig.cloud.mode = "http_500"
    rig.clock.t += 950  # due for renewal (less than 100 s left)
    await rig.tokens.refresh_due()
    assert rig.cloud.token_calls == 1
    assert production(await rig.client.get(PATH))  # still the old token, no cloud call
    assert rig.cloud.login_calls == 2


async def test_short_lived_token_is_renewed_ahead_of_expiry_without_a_loop(tmp_path: Path) -> None:
    r = Rig(tmp_path, lifetime=20)
    try:
        await r.client.connect()
        lefts: list[float] = []

        def on_token_request() -> None:
            left = r.tokens.seconds_until_expiry(SERIAL)  # of the token being replaced
            assert left is not None
            lefts.append(left)

        r.enphase.on_token_request = on_token_request

        for _ in range(200):  # 100 s of fake time in 0.5 s steps, polling each step
            r.clock.t += 0.5
            await r.tokens.refresh_due()
            assert production(await r.client.get(PATH))  # never a gap
        # renewed about 2 s before each expiry, once per 18 s
        assert all(1.5 <= left <= 2.0 for left in lefts), lefts
        assert 5 <= r.cloud.token_calls - 1 <= 6
        assert r.sim.request_count("/auth/check_jwt") == 0
    finally:
        await r.aclose()


async def test_background_task_sleeps_until_the_renewal_time(tmp_path: Path) -> None:
    r = Rig(tmp_path, lifetime=20)
    try:
        await r.client.connect()
        stop = asyncio.Event()

        async def sleep(seconds: float) -> None:
            await r.clock.sleep(seconds)
            if r.clock.t > T0 + 100:
                await stop.wait()

        r.tokens._sleep = sleep
        await r.tokens.start()
        for _ in range(5000):  # the cloud answers from a thread: a few ms per renewal
            await asyncio.sleep(0.001)
            if r.clock.t > T0 + 100:
                break
        await r.tokens.aclose()
        assert r.clock.t > T0 + 100
        assert 5 <= r.cloud.token_calls - 1 <= 6  # ~100 s / 18 s, not a loop
        assert all(s >= 0.5 for s in r.clock.sleeps)
    finally:
        await r.aclose()


async def test_refused_token_gets_one_refresh_and_one_retry(rig: Rig) -> None:
    await rig.client.connect()
    assert rig.cloud.token_calls == 1
    rig.sim.revoke_tokens()  # the gateway rebooted and forgot the token
    assert production(await rig.client.get(PATH))
    assert rig.cloud.token_calls == 2
    assert rig.sim.request_count("/auth/check_jwt") == 1
    assert rig.sim.request_count(PATH) == 2  # the 401, then the retry


async def test_gateway_refusing_every_token_is_no_loop(rig: Rig) -> None:
    await rig.client.connect()
    # the gateway accepts nothing new: the cloud signs with a key it does not know
    rig.cloud.authority = TokenAuthority(SERIAL, clock=rig.clock)
    rig.sim.revoke_tokens()
    with pytest.raises(GatewayAuthError, match="again after re-validating"):
        await rig.client.get(PATH)
    assert rig.cloud.token_calls == 2
    for _ in range(30):  # 30 more cycles, a minute apart
        rig.clock.t += 60
        await rig.tokens.refresh_due()
        with pytest.raises((GatewayAuthError, TokenError)):
            await rig.client.get(PATH)
    # backoff: 45 s, 90 s, 180 s, 360 s, 720 s ... -> a handful of calls in 30 min
    assert rig.cloud.token_calls <= 7


async def test_401_with_a_token_the_gateway_still_accepts_is_retried_once(rig: Rig) -> None:
    await rig.client.connect()
    rig.sim.fail_next(PATH, 401)
    assert production(await rig.client.get(PATH))
    assert rig.cloud.token_calls == 1  # check_jwt said yes: no refresh
    assert rig.sim.request_count("/auth/check_jwt") == 1


# --- cache ---------------------------------------------------------------------------


async def test_cache_file_is_private_and_reused_after_restart(tmp_path: Path) -> None:
    r = Rig(tmp_path)
    await r.client.connect()
    await r.aclose()
    path = tmp_path / "state" / "tokens" / f"{SERIAL}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files
    assert json.loads(path.read_text())["token"] == r.enphase.issued[0]

    # restart: a new manager and client reuse it, validated once with check_jwt
    r2 = Rig(tmp_path, enphase=r.enphase)  # the same gateway, which still accepts the token
    calls = (r2.cloud.login_calls, r2.cloud.token_calls)
    r2.sim.clear_requests()
    await r2.client.connect()
    assert production(await r2.client.get(PATH))
    assert (r2.cloud.login_calls, r2.cloud.token_calls) == calls  # no cloud call
    assert r2.sim.request_count("/auth/check_jwt") == 1
    assert "cached" in r2.client.auth_description
    await r2.aclose()


async def test_cached_token_refused_at_start_is_replaced(tmp_path: Path) -> None:
    r = Rig(tmp_path)
    await r.client.connect()
    await r.aclose()
    r2 = Rig(tmp_path)  # its gateway knows no token: as after a reboot
    await r2.client.connect()
    assert r2.cloud.token_calls == 1
    assert r2.sim.request_count("/auth/check_jwt") == 1
    assert production(await r2.client.get(PATH))
    await r2.aclose()


async def test_cache_of_another_account_or_garbage_is_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "state" / "tokens"
    cache.mkdir(parents=True)
    (cache / f"{SERIAL}.json").write_text("{not json")
    r = Rig(tmp_path)
    await r.client.connect()
    assert r.cloud.token_calls == 1
    await r.aclose()


# --- pasted tokens ---------------------------------------------------------------------


async def test_pasted_token_warnings_at_30_7_1_days_once_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    token = make_token(clock, 40 * DAY)
    settings = settings_for(tmp_path, token=token)
    tokens = TokenManager(settings, clock=clock, sleep=clock.sleep)
    caplog.set_level(logging.WARNING, logger="envoy_ingest")
    for _ in range(45 * 4):  # 45 days in 6-hour steps
        await tokens.refresh_due()
        clock.t += DAY / 4
    messages = [r.getMessage() for r in caplog.records]
    warnings = [m for m in messages if "expires in" in m]
    assert len(warnings) == 3, warnings
    assert "30 days" in warnings[0] and "7 days" in warnings[1] and "24 hours" in warnings[2]
    expired = [m for m in messages if "expired on" in m]
    assert len(expired) == 1
    assert "entrez.enphaseenergy.com" in expired[0] and "token_file" in expired[0]
    assert all(token not in m for m in messages)


async def test_expired_pasted_token_says_what_to_do(tmp_path: Path) -> None:
    clock = FakeClock(T0 - 10 * DAY)
    enphase = InProcessEnphase(clock)
    token = enphase.issue(DAY)  # ten days ago, for a day
    clock.t = T0
    settings = settings_for(tmp_path, token=token)
    tokens = TokenManager(settings, clock=clock)
    async with EnvoyClient(
        settings.gateways[0], tokens, transport=enphase.gateway_transport()
    ) as client:
        with pytest.raises(TokenError, match=r"expired on .*get a new one at https://entrez"):
            await client.connect()


async def test_pasted_token_is_validated_once_and_used(tmp_path: Path) -> None:
    clock = FakeClock()
    enphase = InProcessEnphase(clock)
    sim = enphase.sim
    token = enphase.issue(300 * DAY)
    settings = settings_for(tmp_path, token=token, serial=SERIAL)
    tokens = TokenManager(settings, clock=clock)
    await tokens.start()
    left = tokens.seconds_until_expiry(SERIAL)
    assert left is not None and abs(left - 300 * DAY) < 2
    async with EnvoyClient(
        settings.gateways[0], tokens, transport=enphase.gateway_transport()
    ) as client:
        await client.connect()
        for _ in range(3):
            await client.get(PATH)
        assert sim.request_count("/auth/check_jwt") == 1
        assert "pasted" in client.auth_description
        # the gateway refuses the token for a while (starting up)
        sim.fail_next(PATH, 401)
        sim.fail_next("/auth/check_jwt", 401, count=2)
        with pytest.raises(GatewayAuthError, match="refuses the pasted token"):
            await client.get(PATH)
        with pytest.raises(GatewayAuthError, match="refuses the pasted token"):
            await client.get(PATH)  # checked again each cycle: one check_jwt, no data request
        assert (sim.request_count("/auth/check_jwt"), sim.request_count(PATH)) == (3, 4)
        # it was only the gateway starting up: it accepts the token again
        assert production(await client.get(PATH))
    await tokens.aclose()


# --- one refresh per account ---------------------------------------------------------------


async def test_one_refresh_at_a_time_per_account(tmp_path: Path) -> None:
    clock = FakeClock()
    enphase = InProcessEnphase(clock)
    cloud = enphase.cloud
    settings = settings_for(tmp_path, **creds())
    tokens = TokenManager(settings, clock=clock, cloud_transport=enphase.cloud_transport())
    clients = [
        EnvoyClient(settings.gateways[0], tokens, transport=enphase.gateway_transport())
        for _ in range(5)
    ]
    await asyncio.gather(*(c.connect() for c in clients))
    assert cloud.token_calls == 1 and cloud.login_calls == 1
    for c in clients:
        await c.aclose()


async def test_gateways_sharing_an_account_refresh_one_at_a_time(tmp_path: Path) -> None:
    clock = FakeClock()
    in_flight = {"now": 0, "max": 0}
    serials: list[str] = []
    enphase = InProcessEnphase(clock)
    cloud = enphase.cloud

    async def handler(request: httpx.Request) -> httpx.Response:
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])
        await asyncio.sleep(0.01)
        if request.url.path == "/tokens":
            serials.append(json.loads(request.content)["serial_num"])
        try:
            return await enphase.cloud_handler(request)
        finally:
            in_flight["now"] -= 1

    settings = Settings(
        gateways=[{"host": f"10.0.0.{i}", **creds()} for i in range(3)],
        state={"directory": tmp_path},
        enlighten={
            "login_url": "https://c.test/login/login.json",
            "token_url": "https://c.test/tokens",
        },
    )
    tokens = TokenManager(settings, clock=clock, cloud_transport=httpx.MockTransport(handler))

    async def accept(token: str) -> bool:
        return True

    await asyncio.gather(
        *(tokens.token_for(gw, f"SERIAL{i}", accept) for i, gw in enumerate(settings.gateways))
    )
    assert in_flight["max"] == 1  # never two cloud calls at once for one account
    assert sorted(serials) == ["SERIAL0", "SERIAL1", "SERIAL2"]
    assert cloud.login_calls == 1  # the session serves the account's gateways


async def test_renewal_never_happens_in_a_poll(rig: Rig) -> None:
    rig.cloud.token_lifetime = 1000
    await rig.client.connect()
    rig.clock.t += 990  # due for renewal, still valid
    for _ in range(3):
        assert production(await rig.client.get(PATH))
    assert rig.cloud.token_calls == 1  # the background pass renews, not the poll
    await rig.tokens.refresh_due()
    assert rig.cloud.token_calls == 2


@pytest.mark.parametrize("with_creds", [False, True])
async def test_background_task_idles_with_a_long_token(tmp_path: Path, with_creds: bool) -> None:
    clock = FakeClock()
    gw: dict[str, Any] = {"token": make_token(clock, 20 * DAY), "serial": SERIAL}
    if with_creds:
        gw.update(creds())
    stop = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        if clock.t >= T0 + 10 * DAY:
            await stop.wait()

    tokens = TokenManager(settings_for(tmp_path, **gw), clock=clock, sleep=sleep)
    await tokens.start()
    for _ in range(5000):
        await asyncio.sleep(0)
        if clock.t >= T0 + 10 * DAY:
            break
    await tokens.aclose()
    assert clock.t >= T0 + 10 * DAY
    # an hour at a time (the 30-day warning at start): no busy loop, no renewal yet
    assert 240 <= len(clock.sleeps) <= 242
    assert min(clock.sleeps) >= 0.5


# --- the token command ------------------------------------------------------------------------


async def test_token_command_fetches_and_shows_only_when_asked(rig: Rig) -> None:
    transport = rig.enphase.gateway_transport()
    lines: list[str] = []
    status = await token_command(
        rig.settings, None, False, out=lines.append, tokens=rig.tokens, transport=transport
    )
    assert status == 0
    text = "\n".join(lines)
    assert "owner token, expires" in text and "fetched from Enlighten now" in text
    assert "the gateway accepts it" in text
    assert all(t not in text for t in rig.enphase.issued)
    lines.clear()
    status = await token_command(
        rig.settings, "envoy.local", True, out=lines.append, tokens=rig.tokens, transport=transport
    )
    assert status == 0 and rig.enphase.issued[-1] in lines
    with pytest.raises(SettingsError, match="--gateway 'nope'"):
        await token_command(rig.settings, "nope", False, out=lines.append, tokens=rig.tokens)
