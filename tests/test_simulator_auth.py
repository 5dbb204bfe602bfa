"""Who the simulated gateway lets in: digest below firmware 7, JWTs from 7 on,
the fake Enphase cloud in each of its modes, and the pinned certificate."""

from __future__ import annotations

import hashlib
import ssl
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest

from envoy_ingest.envoy.passwords import envoy_password, installer_password
from envoy_ingest.simulator import FakeCloud, Simulator, SimulatorConfig

EMAIL, PASSWORD = "owner@example.com", "secret-password"


@pytest.fixture(scope="module")
def modern() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(family="modern", inverters=2)) as sim:
        yield sim


@pytest.fixture
def cloud(modern: Simulator) -> Iterator[FakeCloud]:
    cloud = modern.cloud
    yield cloud
    cloud.mode = "ok"
    cloud.installer = False
    cloud.token_lifetime = 365 * 86400


def bearer(sim: Simulator, token: str, path: str = "/api/v1/production") -> httpx.Response:
    return httpx.get(sim.url + path, verify=False, headers={"Authorization": f"Bearer {token}"})


def refused(response: httpx.Response) -> bool:
    """The gateway's refusal: 401 with an HTML page pointing at /home, never JSON."""
    return (
        response.status_code == 401
        and response.headers["content-type"].startswith("text/html")
        and "/home" in response.text
    )


def login(cloud: FakeCloud, email: str = EMAIL, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(cloud.login_url, data={"user[email]": email, "user[password]": password})


def fetch_token(cloud: FakeCloud, serial: str) -> str:
    session = login(cloud).json()["session_id"]
    body = {"session_id": session, "serial_num": serial, "username": EMAIL}
    r = httpx.post(cloud.token_url, json=body)
    assert r.status_code == 200
    return r.text


# --- legacy: digest ------------------------------------------------------------------


def test_legacy_digest_users_and_passwords() -> None:
    with Simulator(SimulatorConfig(family="legacy", inverters=2)) as sim:
        assert sim.url.startswith("http://") and sim.cert_fingerprint is None
        path = sim.url + "/api/v1/production/inverters"
        r = httpx.get(path)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith('Digest realm="enphaseenergy.com"')
        for user, password in (
            ("envoy", envoy_password(sim.serial)),
            ("installer", installer_password(sim.serial)),
        ):
            assert httpx.get(path, auth=httpx.DigestAuth(user, password)).status_code == 200
        assert httpx.get(path, auth=httpx.DigestAuth("envoy", "wrong")).status_code == 401
        assert httpx.get(path, auth=httpx.DigestAuth("owner", "x")).status_code == 401
        assert httpx.get(sim.url + "/production.json").status_code == 200  # public
        assert httpx.get(path, headers={"Authorization": "Bearer x"}).status_code == 401


def test_digest_challenge_is_reused_by_the_client() -> None:
    """httpx answers later requests with the first challenge: one request each."""
    with Simulator(SimulatorConfig(family="legacy", inverters=2)) as sim:
        auth = httpx.DigestAuth("envoy", envoy_password(sim.serial))
        with httpx.Client(base_url=sim.url, auth=auth) as c:
            for _ in range(3):
                assert c.get("/inventory.json").status_code == 200
        assert sim.request_count("/inventory.json") == 4  # one challenge, then three


# --- modern: JWT -----------------------------------------------------------------------


def test_issued_token_is_accepted_and_check_jwt_sets_a_session(
    modern: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = float(int(time.time()))
    monkeypatch.setattr(modern.authority, "clock", lambda: now)
    token = modern.issue_token(lifetime=60, user="installer")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["enphaseUser"] == "installer"
    assert claims["exp"] == now + 60
    assert bearer(modern, token).status_code == 200
    r = bearer(modern, token, "/auth/check_jwt")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    session = r.cookies["sessionId"]
    assert session
    # The session cookie alone is enough afterwards, as on a real gateway.
    r = httpx.get(modern.url + "/api/v1/production", verify=False, cookies={"sessionId": session})
    assert r.status_code == 200


def test_anything_not_issued_here_is_refused(modern: Simulator) -> None:
    assert refused(httpx.get(modern.url + "/production.json", verify=False))
    assert httpx.get(modern.url + "/info", verify=False).status_code == 200  # no auth
    good = jwt.decode(modern.issue_token(), options={"verify_signature": False})
    forged = jwt.encode(good, "not-the-secret-of-this-gateway-at-all", algorithm="HS256")
    expired = modern.authority.issue(lifetime=-10)
    with Simulator(SimulatorConfig(family="modern", serial="999999999999")) as other:
        foreign = other.issue_token()
        for token in (forged, expired, foreign, "garbage"):
            assert refused(bearer(modern, token)), token
            assert refused(bearer(modern, token, "/auth/check_jwt"))
        # A cloud token asked for another gateway's serial does not open this one.
        assert refused(bearer(modern, fetch_token(modern.cloud, other.serial)))


def test_revoked_tokens_are_refused_new_ones_work(modern: Simulator) -> None:
    pasted = modern.issue_token()
    fetched = fetch_token(modern.cloud, modern.serial)
    session = bearer(modern, pasted, "/auth/check_jwt").cookies["sessionId"]
    assert bearer(modern, fetched).status_code == 200
    modern.revoke_tokens()
    for token in (pasted, fetched):
        assert refused(bearer(modern, token))
        assert refused(bearer(modern, token, "/auth/check_jwt"))
    r = httpx.get(modern.url + "/api/v1/production", verify=False, cookies={"sessionId": session})
    assert refused(r)
    assert bearer(modern, modern.issue_token()).status_code == 200
    assert bearer(modern, fetch_token(modern.cloud, modern.serial)).status_code == 200


def test_short_lived_token_expires(modern: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # The gateway's token clock, stepped by hand: no sleep, and a slow first
    # request on a loaded machine cannot outlive the token.
    now = [float(int(time.time()))]
    monkeypatch.setattr(modern.authority, "clock", lambda: now[0])
    token = modern.issue_token(lifetime=2)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert exp == now[0] + 2
    now[0] = exp - 0.5
    assert bearer(modern, token).status_code == 200
    now[0] = exp
    assert refused(bearer(modern, token))


def test_certificate_fingerprint_is_the_served_one(modern: Simulator) -> None:
    host, port = modern.host.rsplit(":", 1)
    pem = ssl.get_server_certificate((host, int(port)))
    der = ssl.PEM_cert_to_DER_cert(pem)
    assert modern.cert_fingerprint == hashlib.sha256(der).hexdigest()
    assert modern.cert_fingerprint is not None and len(modern.cert_fingerprint) == 64
    assert modern.url == f"https://{modern.host}"


# --- the fake Enphase cloud ------------------------------------------------------------


def test_cloud_login_and_token(cloud: FakeCloud, modern: Simulator) -> None:
    before = (cloud.login_calls, cloud.token_calls)
    r = login(cloud)
    assert r.status_code == 200 and r.json()["session_id"]
    token = httpx.post(
        cloud.token_url,
        json={"session_id": r.json()["session_id"], "serial_num": modern.serial, "username": EMAIL},
    ).text
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["enphaseUser"] == "owner"
    assert claims["exp"] - claims["iat"] == 365 * 86400
    assert bearer(modern, token).status_code == 200
    assert (cloud.login_calls, cloud.token_calls) == (before[0] + 1, before[1] + 1)


def test_cloud_installer_and_short_tokens(cloud: FakeCloud, modern: Simulator) -> None:
    cloud.installer = True
    claims = jwt.decode(fetch_token(cloud, modern.serial), options={"verify_signature": False})
    assert claims["enphaseUser"] == "installer"
    assert claims["exp"] - claims["iat"] == 12 * 3600
    cloud.installer = False
    cloud.token_lifetime = 20
    claims = jwt.decode(fetch_token(cloud, modern.serial), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 20


def test_cloud_refusals(cloud: FakeCloud, modern: Simulator) -> None:
    assert login(cloud, password="nope").status_code == 401
    assert login(cloud, email="stranger@example.com").status_code == 401
    session = login(cloud).json()["session_id"]
    cloud.mode = "wrong_password"
    r = login(cloud)
    assert r.status_code == 401 and "session_id" not in r.json()
    body = {"session_id": session, "serial_num": modern.serial, "username": EMAIL}
    assert httpx.post(cloud.token_url, json=body).status_code == 401  # sessions end too
    cloud.mode = "mfa"
    r = login(cloud)
    assert r.status_code == 200 and r.json()["message"] == "success"
    assert "session_id" not in r.json()
    cloud.mode = "ok"
    bad = {"session_id": "made-up", "serial_num": modern.serial, "username": EMAIL}
    assert httpx.post(cloud.token_url, json=bad).status_code == 401
    assert httpx.post(cloud.token_url, content=b"not json").status_code == 400
    with pytest.raises(ValueError):
        cloud.mode = "sunny"


@pytest.mark.parametrize("status", [400, 403, 500])
def test_cloud_http_errors(cloud: FakeCloud, status: int) -> None:
    cloud.mode = f"http_{status}"
    assert login(cloud).status_code == status
    assert httpx.post(cloud.token_url, json={}).status_code == status


def test_cloud_timeout_holds_the_request(cloud: FakeCloud) -> None:
    cloud.mode = "timeout"
    began = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        httpx.post(cloud.login_url, data={"user[email]": EMAIL}, timeout=0.3)
    assert time.monotonic() - began < 2


def test_standalone_cloud_issues_its_own_tokens() -> None:
    with FakeCloud() as cloud:
        cloud.accounts["me@example.com"] = "pw"
        session = login(cloud, "me@example.com", "pw").json()["session_id"]
        body = {"session_id": session, "serial_num": "123456789012", "username": "me@example.com"}
        token = httpx.post(cloud.token_url, json=body).text
        assert jwt.decode(token, options={"verify_signature": False})["aud"] == "123456789012"
