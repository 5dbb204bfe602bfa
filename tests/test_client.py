"""EnvoyClient against the simulator: scheme detection, TLS pinning, digest, Bearer,
retries. A few cases the simulator cannot stage use httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from envoy_ingest.envoy.client import EnvoyClient, http_date, loads, parse_body
from envoy_ingest.envoy.passwords import installer_password
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.errors import (
    CertificateMismatch,
    GatewayAuthError,
    GatewayResponseError,
    GatewayUnreachable,
    TokenError,
)
from envoy_ingest.gateway import GatewaySettings
from envoy_ingest.settings import Settings
from envoy_ingest.simulator import Simulator, SimulatorConfig
from tests.conftest import require_fixtures

PROTECTED = "/api/v1/production/inverters"  # digest on legacy firmware


@pytest.fixture(scope="module")
def legacy() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(family="legacy", inverters=4)) as sim:
        yield sim


@pytest.fixture(scope="module")
def modern() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(family="modern", inverters=4)) as sim:
        yield sim


def gw(host: str, **kw: Any) -> GatewaySettings:
    return GatewaySettings(host=host, **kw)


def client(settings: GatewaySettings, backoff: float = 0.01, **kw: Any) -> EnvoyClient:
    """A client with its token manager, as the worker makes them."""
    tokens = TokenManager(Settings(gateways=[settings]))
    return EnvoyClient(settings, tokens, backoff=backoff, **kw)


# --- scheme detection --------------------------------------------------------------------


async def test_legacy_gateway_is_found_over_http_after_https_fails(legacy: Simulator) -> None:
    async with client(gw(legacy.host)) as c:
        info = await c.connect()
        assert (c.scheme, c.base_url) == ("http", f"http://{legacy.host}")
        assert info.serial == legacy.serial and not info.uses_jwt
        assert c.info is info
        assert c.auth_description == "digest as envoy (default password)"


async def test_modern_gateway_is_found_over_https(modern: Simulator) -> None:
    token = modern.issue_token()
    modern.clear_requests()
    async with client(gw(modern.host, token=token)) as c:
        info = await c.connect()
        assert (c.scheme, c.base_url) == ("https", modern.url)
        assert info.uses_jwt
        assert c.auth_description.startswith("bearer token (owner, expires ")
    # a pasted token is checked once before its first use
    assert modern.requests == [("GET", "/info"), ("GET", "/auth/check_jwt")]


async def test_scheme_in_host_forces_it(legacy: Simulator, modern: Simulator) -> None:
    legacy.clear_requests()
    async with client(gw(f"http://{legacy.host}")) as c:
        await c.connect()
        assert c.scheme == "http"
    assert legacy.requests == [("GET", "/info")]  # no https attempt first
    async with client(gw(f"http://{modern.host}")) as c:
        with pytest.raises(GatewayUnreachable, match=r"no answer at .*\(http: "):
            await c.connect()  # forced http to an https-only port: no https fallback


async def test_unreachable_gateway_says_what_was_tried() -> None:
    async with client(gw("127.0.0.1:9", connect_timeout=1)) as c:
        with pytest.raises(GatewayUnreachable) as err:
            await c.connect()
    text = str(err.value)
    assert "https: " in text and "http: " in text and "127.0.0.1:9" in text
    assert "check host" in text


# --- TLS --------------------------------------------------------------------------------------


async def test_pinned_fingerprint_that_matches(modern: Simulator) -> None:
    fp = modern.cert_fingerprint
    assert fp is not None
    pretty = ":".join(fp[i : i + 2] for i in range(0, 64, 2)).upper()
    async with client(gw(modern.host, token=modern.issue_token(), tls_fingerprint=pretty)) as c:
        await c.connect()
        assert await c.get("/api/v1/production")


async def test_pinned_fingerprint_mismatch_sends_nothing(modern: Simulator) -> None:
    token = modern.issue_token()
    modern.clear_requests()
    async with client(gw(modern.host, token=token, tls_fingerprint="ab" * 32)) as c:
        with pytest.raises(CertificateMismatch) as err:
            await c.connect()
    text = str(err.value)
    assert modern.cert_fingerprint is not None
    assert modern.cert_fingerprint in text and "ab" * 32 in text and "tls_fingerprint" in text
    assert token not in text
    assert modern.requests == []  # checked after the handshake, before any HTTP


async def test_pinned_gateway_never_falls_back_to_http(legacy: Simulator) -> None:
    legacy.clear_requests()
    async with client(gw(legacy.host, tls_fingerprint="ab" * 32)) as c:
        with pytest.raises(GatewayUnreachable, match="only https is tried"):
            await c.connect()
    assert legacy.requests == []


async def test_redirects_are_never_followed() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/info":
            return httpx.Response(200, text=INFO_LEGACY)
        return httpx.Response(302, headers={"location": "/home"}, text="moved")

    async with client(gw("http://envoy"), transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(GatewayResponseError, match=r"redirect to /home \(not followed"):
            await c.get("/production.json")
    assert seen == ["/info", "/production.json"]


INFO_LEGACY = (
    "<envoy_info><time>1</time><device><sn>121426016034</sn><pn>800-00069-r05</pn>"
    "<software>R3.9.36</software></device></envoy_info>"
)


# --- digest (firmware < 7) ---------------------------------------------------------------------


async def test_digest_as_envoy_with_the_default_password(legacy: Simulator) -> None:
    async with client(gw(legacy.host)) as c:
        await c.connect()
        legacy.clear_requests()
        body = await c.get(PROTECTED)
        assert isinstance(body, list) and len(body) >= 4
        assert isinstance(await c.get("/api/v1/production"), dict)
        assert isinstance(await c.get(PROTECTED), list)
    # the password only after the gateway asks for it, then the challenge is reused
    assert legacy.requests == [
        ("GET", PROTECTED),
        ("GET", PROTECTED),
        ("GET", "/api/v1/production"),
        ("GET", PROTECTED),
    ]


async def test_digest_as_installer(legacy: Simulator) -> None:
    async with client(gw(legacy.host, username="installer")) as c:
        await c.connect()
        assert isinstance(await c.get(PROTECTED), list)
        assert c.auth_description == "digest as installer (default password)"
    pw = installer_password(legacy.serial)
    async with client(gw(legacy.host, username="installer", password=pw)) as c:
        await c.connect()
        assert isinstance(await c.get(PROTECTED), list)
        assert c.auth_description == "digest as installer (configured password)"


async def test_wrong_digest_password_is_an_auth_error(legacy: Simulator) -> None:
    async with client(gw(legacy.host, password="wrong-one")) as c:
        await c.connect()
        with pytest.raises(GatewayAuthError) as err:
            await c.get(PROTECTED)
    assert "digest as envoy" in str(err.value) and "wrong-one" not in str(err.value)
    assert "wrong-one" not in repr(c._digest)


# --- retries ----------------------------------------------------------------------------------


async def test_dropped_connections_and_503_are_retried(legacy: Simulator) -> None:
    async with client(gw(legacy.host)) as c:
        await c.connect()
        legacy.drop_next("/api/v1/production", count=2)
        assert isinstance(await c.get("/api/v1/production"), dict)
        legacy.fail_next("/api/v1/production", status=503, count=2)
        assert isinstance(await c.get("/api/v1/production"), dict)
    assert legacy.request_count("/api/v1/production") >= 6


async def test_retries_stop_at_the_deadline() -> None:
    with Simulator(SimulatorConfig(family="legacy", inverters=1)) as sim:
        async with client(gw(sim.host), backoff=0.2) as c:
            await c.connect()
            sim.fail_next("/api/v1/production", status=503, count=100)
            loop = asyncio.get_running_loop()
            started = time.monotonic()
            with pytest.raises(GatewayResponseError, match="503"):
                await c.get("/api/v1/production", deadline=loop.time() + 1.0)
            assert time.monotonic() - started < 1.2
            assert 3 <= sim.request_count("/api/v1/production") <= 4  # 0.2 + 0.4 s backoff


async def test_slow_gateway_never_outlives_the_deadline(legacy: Simulator) -> None:
    legacy.latency = 2.0
    try:
        async with client(gw(f"http://{legacy.host}")) as c:
            loop = asyncio.get_running_loop()
            started = time.monotonic()
            with pytest.raises(GatewayUnreachable):
                await c.connect(deadline=loop.time() + 0.3)
            assert time.monotonic() - started < 1.0
    finally:
        legacy.latency = 0.0


# --- fetch ------------------------------------------------------------------------------------


async def test_fetch_is_sequential_and_leaves_failures_out(legacy: Simulator) -> None:
    async with client(gw(legacy.host)) as c:
        await c.connect()
        legacy.clear_requests()
        legacy.fail_next("/inventory.json", status=500)
        snap = await c.fetch(["/api/v1/production", "/inventory.json", "/nope", PROTECTED])
        assert set(snap) == {"/api/v1/production", PROTECTED}
        assert set(c.last_errors) == {"/inventory.json", "/nope"}
        assert c.last_errors["/inventory.json"].startswith("/inventory.json answered 500")
        assert "404" in c.last_errors["/nope"]


async def test_fetch_stops_once_the_gateway_is_gone() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/info":
            return httpx.Response(200, text=INFO_LEGACY)
        raise httpx.ConnectError("connection refused")

    async with client(gw("http://envoy"), transport=httpx.MockTransport(handler)) as c:
        await c.connect()
        snap = await c.fetch(["/a", "/b", "/c"])
    assert snap == {} and calls == ["/info", "/a"]
    assert c.last_errors["/a"].startswith("cannot connect")
    assert c.last_errors["/c"].startswith("not tried: ")


def test_parse_body_json_text_and_html() -> None:
    def resp(text: str, ctype: str) -> httpx.Response:
        return httpx.Response(200, text=text, headers={"content-type": ctype})

    assert parse_body(resp('{"a": 1}', "application/json"), "x") == {"a": 1}
    assert parse_body(resp("[1]", "text/html"), "x") == [1]
    assert parse_body(resp("<html>hi</html>", "text/html"), "x") == "<html>hi</html>"
    assert parse_body(resp("[not json", "text/html"), "x") == "[not json"
    with pytest.raises(GatewayResponseError, match="does not parse"):
        parse_body(resp("{oops", "application/json"), "x")


# --- Bearer (firmware >= 7) ---------------------------------------------------------------------


async def test_bearer_with_a_pasted_token(modern: Simulator) -> None:
    token = modern.issue_token(lifetime=600)
    async with client(gw(modern.host, token=token)) as c:
        await c.connect()
        snap = await c.fetch(["/production.json?details=1", "/ivp/meters"])
        assert isinstance(snap["/production.json?details=1"], dict)
        assert token not in repr(c) and token not in c.auth_description


async def test_modern_gateway_without_a_token_says_how_to_get_one(modern: Simulator) -> None:
    async with client(gw(modern.host)) as c:
        with pytest.raises(TokenError, match="needs a token: set token"):
            await c.connect()


async def test_pasted_token_refused_is_an_auth_error(modern: Simulator) -> None:
    other = Simulator(SimulatorConfig(family="modern", serial="999999999999"))
    token = other.issue_token()  # signed by another gateway
    async with client(gw(modern.host, token=token)) as c:
        # checked with /auth/check_jwt before its first use, as every pasted token
        with pytest.raises(GatewayAuthError, match="refuses the pasted token"):
            await c.connect()


# --- JSON and Date, fast and exactly as before ---------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (1 is not 1.0; nan is nan)."""
    return repr(a) == repr(b)


@pytest.mark.parametrize(
    "body",
    [
        b'{"wattsNow": 512, "whLifetime": 1.5e7, "ok": true, "none": null, "s": "\\u00e9"}',
        b"[NaN, Infinity, -Infinity]",  # orjson refuses these; json reads them
        b"[1e400, -1e400, 1.5e-400]",  # out of range: json makes inf and 0.0
        b"[18446744073709551616, -9223372036854775809, 123456789012345678901234567890]",
        b"[18446744073709551615, -9223372036854775808, 9223372036854775807]",  # 64 bits
        b'{"serial": "1234567890123456789012", "n": 1}',  # a long run in a string
        b'\xef\xbb\xbf{"bom": 1}',
        '{"utf16": [1, 2.5]}'.encode("utf-16"),
        '{"utf32": "x"}'.encode("utf-32-be"),
        b'["\\ud800 lone surrogate"]',
        b'{"a": 1, "a": 2}',
        b" [0.1, -0.0, 1E3, 2e-5] ",
    ],
)
def test_loads_gives_exactly_what_json_gives(body: bytes) -> None:
    assert _same(loads(body), json.loads(body))
    response = httpx.Response(200, content=body, headers={"content-type": "application/json"})
    assert _same(parse_body(response, "x"), json.loads(body))


@pytest.mark.parametrize("body", [b"{oops", b"[1]\x00", b"\xff\xfe\xfd", b"[01]"])
def test_loads_refuses_what_json_refuses(body: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(body)
    with pytest.raises(ValueError):
        loads(body)


def test_loads_reads_every_recorded_answer_as_json_does() -> None:
    root = require_fixtures()
    checked = 0
    for file in sorted(root.glob("*/*")):
        raw = file.read_bytes()
        if file.name.endswith("_log.json") or raw.lstrip()[:1] not in (b"{", b"["):
            continue
        try:
            expected = json.loads(raw)
        except ValueError:
            continue
        assert _same(loads(raw), expected), file
        checked += 1
    assert checked > 200


def _old_date(header: str) -> float | None:
    """What the client did before: email.utils for every Date."""
    try:
        return parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


@pytest.mark.parametrize(
    "header",
    [
        "Mon, 30 Nov 2026 05:14:05 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Thu, 29 Feb 2024 23:59:59 GMT",
        "Thu, 29 Feb 2023 12:00:00 GMT",  # no such day
        "Tue, 31 Nov 2026 05:14:05 GMT",
        "Mon, 30 Nov 2026 24:00:00 GMT",
        "Mon, 30 Nov 2026 23:59:60 GMT",
        "Mon, 30 Nov 0026 05:14:05 GMT",  # email.utils: 2026
        "Mon, 30 Nov 0100 05:14:05 GMT",
        "Fri, 01 Jan 1970 00:00:00 GMT",
        "Wed, 30 Nov 2026 05:14:05 GMT",  # the wrong weekday is not checked
        "Mon, 30 nov 2026 05:14:05 GMT",
        "Mon, 30 Nov 2026 05:14:05 +0100",
        "Mon, 30 Nov 2026 05:14:05 UTC",
        "Mon, 30 Nov 2026 05:14:05 -0000",  # naive: local time
        "Mon, 3 Nov 2026 05:14:05 GMT",
        "Monday, 30-Nov-26 05:14:05 GMT",
        "Mon Nov 30 05:14:05 2026",
        "Mon, 30 Nov 2026 05:14 GMT",
        "Mon, 30 Nov 2026 0５:14:05 GMT",
        "Mon, ab Nov 2026 05:14:05 GMT",
        "Mon, 30 Nov 2026 05:14:05 GMT extra",
        "garbage",
    ],
)
def test_http_date_is_what_email_utils_says(header: str) -> None:
    assert http_date(header) == _old_date(header)


def test_http_date_of_the_usual_form() -> None:
    assert http_date("Mon, 30 Nov 2026 05:14:05 GMT") == 1796015645.0
    assert http_date("Tue, 31 Nov 2026 05:14:05 GMT") is None
