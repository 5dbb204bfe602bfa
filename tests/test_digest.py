"""Digest GETs (firmware < 7) on the gateway's own connection, once the gateway has
challenged: a prepared head signed by httpx's own digest code, no httpx request or
response; a new challenge goes back to httpx's flow. Against recorded legacy
gateways served by the simulator, the Authorization headers captured server-side."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.passwords import envoy_password
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.errors import GatewayAuthError
from envoy_ingest.gateway import GatewaySettings
from envoy_ingest.settings import Settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.simulator.auth import DigestAuth
from tests.conftest import require_fixtures

PROTECTED = "/api/v1/production/inverters"


@pytest.fixture
def fixed_cnonce(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx's client nonce made from the count alone, so that two runs compare."""

    def cnonce(self: httpx.DigestAuth, nonce_count: int, nonce: bytes) -> bytes:
        return b"%016x" % nonce_count

    monkeypatch.setattr(httpx.DigestAuth, "_get_client_nonce", cnonce)


def capture(sim: Simulator, monkeypatch: pytest.MonkeyPatch, seen: list[str | None]) -> str:
    """One fixed challenge from the gateway's digest (its nonce stays valid: no
    second boundary), returned; the ``Authorization`` of every protected request
    (``None``: none sent) appended to ``seen``."""
    digest = sim.app.digest
    fixed = digest.challenge()
    monkeypatch.setattr(digest, "challenge", lambda: fixed)
    check = digest.verify

    def verify(method: str, path: str, header: str | None) -> str | None:
        seen.append(header)
        return check(method, path, header)

    monkeypatch.setattr(digest, "verify", verify)
    return fixed


def serve(name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Simulator, list[str | None]]:
    """A recorded legacy gateway and what it was asked (see :func:`capture`)."""
    sim = Simulator(SimulatorConfig(fixture=require_fixtures() / name)).start()
    assert sim.family == "legacy"
    seen: list[str | None] = []
    capture(sim, monkeypatch, seen)
    return sim, seen


@pytest.fixture
def legacy5(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Simulator, list[str | None]]]:
    sim, seen = serve("5.0.62", monkeypatch)
    with sim:
        yield sim, seen


def client(sim: Simulator, **kw: Any) -> EnvoyClient:
    settings = GatewaySettings(host=sim.host, **kw)
    return EnvoyClient(settings, TokenManager(Settings(gateways=[settings])), backoff=0.01)


def field(header: str | None, name: str) -> str:
    assert header is not None
    found = re.search(rf'{name}="?([^",]*)', header)
    assert found is not None, header
    return found.group(1)


def counting(monkeypatch: pytest.MonkeyPatch, cls: type[Any]) -> list[int]:
    """How many ``cls`` objects get made from now on (``[n]``)."""
    made = [0]
    init = cls.__init__

    def counted(self: Any, *args: Any, **kw: Any) -> None:
        made[0] += 1
        init(self, *args, **kw)

    monkeypatch.setattr(cls, "__init__", counted)
    return made


@pytest.mark.parametrize("name", ["5.0.62", "3.9.36"])
async def test_signed_requests_are_the_ones_httpx_sends(
    name: str, monkeypatch: pytest.MonkeyPatch, fixed_cnonce: None
) -> None:
    sim, seen = serve(name, monkeypatch)
    with sim:
        recorded = (require_fixtures() / name / "api_v1_production_inverters").read_bytes()
        async with client(sim) as c:
            await c.connect()
            first = await c.get(PROTECTED)  # challenged, then httpx's flow
            requests = counting(monkeypatch, httpx.Request)
            responses = counting(monkeypatch, httpx.Response)
            later = [await c.get(PROTECTED) for _ in range(3)]
            assert requests == [0] and responses == [0]
        ours = list(seen)
        assert (
            first
            == later[0]
            == later[1]
            == later[2]
            == httpx.Response(200, content=recorded).json()
        )
        assert sim.request_count(PROTECTED) == 5
        # The same four GETs through httpx's own client and digest auth.
        seen.clear()
        auth = httpx.DigestAuth("envoy", envoy_password(sim.serial))
        async with httpx.AsyncClient(base_url=sim.url, auth=auth) as reference:
            for _ in range(4):
                assert (await reference.get(PROTECTED)).status_code == 200
    assert ours == seen
    assert ours[0] is None
    assert [field(h, "nc") for h in ours[1:]] == ["00000001", "00000002", "00000003", "00000004"]
    assert {field(h, "uri") for h in ours[1:]} == {PROTECTED}
    assert {field(h, "username") for h in ours[1:]} == {"envoy"}


async def test_a_stale_nonce_is_answered_by_one_new_challenge(
    legacy5: tuple[Simulator, list[str | None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, seen = legacy5
    async with client(sim) as c:
        await c.connect()
        await c.get(PROTECTED)
        await c.get(PROTECTED)
        old = field(seen[-1], "nonce")
        # The gateway forgets its nonces (a new secret, as after a reboot).
        monkeypatch.setattr(sim.app, "digest", DigestAuth(sim.serial))
        seen.clear()
        fresh = capture(sim, monkeypatch, seen)
        sim.clear_requests()
        assert isinstance(await c.get(PROTECTED), list)
        assert sim.request_count(PROTECTED) == 2  # the stale one, then the new challenge's
        assert isinstance(await c.get(PROTECTED), list)
    new = field(fresh, "nonce")
    assert new != old
    assert [(field(h, "nonce"), field(h, "nc")) for h in seen] == [
        (old, "00000003"),
        (new, "00000001"),
        (new, "00000002"),
    ]


async def test_retries_on_the_signed_path_advance_the_count(
    legacy5: tuple[Simulator, list[str | None]],
) -> None:
    sim, seen = legacy5
    async with client(sim) as c:
        await c.connect()
        await c.get(PROTECTED)
        seen.clear()
        sim.fail_next(PROTECTED, 503)  # answered before the auth check
        sim.drop_next(PROTECTED)
        assert isinstance(await c.get(PROTECTED), list)
    assert sim.request_count(PROTECTED) == 2 + 3
    assert [field(h, "nc") for h in seen] == ["00000004"]  # the 2nd and 3rd never checked


async def test_wrong_password_is_the_same_error_on_the_signed_path(
    legacy5: tuple[Simulator, list[str | None]],
) -> None:
    sim, _ = legacy5
    async with client(sim, password="wrong-one") as c:
        await c.connect()
        errors = []
        for _ in range(2):  # httpx's flow; then signed, refused, and httpx's flow again
            sim.clear_requests()
            with pytest.raises(GatewayAuthError) as err:
                await c.get(PROTECTED)
            errors.append(str(err.value))
            assert sim.request_count(PROTECTED) == 2
    expected = (
        f"gateway {sim.host}: {PROTECTED}: the gateway refused digest as envoy "
        "(configured password) (401); check the gateway's username and password"
    )
    assert errors == [expected, expected]
    assert "wrong-one" not in repr(c._digest)
