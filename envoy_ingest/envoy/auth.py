"""How to get in: digest passwords below firmware 7, a Bearer header from 7 on.

Nothing here does I/O. The secrets live in the auth objects and never in
their ``repr``.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx

from envoy_ingest.envoy.passwords import default_password
from envoy_ingest.settings import GatewaySettings


def digest_password(gw: GatewaySettings, serial: str) -> str:
    """The password of ``gw.username``: the configured one, else the factory one."""
    if gw.password is not None:
        return gw.password.get_secret_value()
    return default_password(serial, gw.username)


class GatewayDigestAuth(httpx.DigestAuth):
    """httpx's digest auth (sent only after the gateway asks for it), with a safe repr."""

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username, password)
        self.username = username

    def __repr__(self) -> str:
        return f"GatewayDigestAuth(username={self.username!r}, password='***')"


def digest_auth(gw: GatewaySettings, serial: str) -> GatewayDigestAuth:
    return GatewayDigestAuth(gw.username, digest_password(gw, serial))


def describe_digest(gw: GatewaySettings) -> str:
    """For ``check``: which login is used (never the password)."""
    source = "configured password" if gw.password is not None else "default password"
    return f"digest as {gw.username} ({source})"


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <JWT>`` on every request."""

    def __init__(self, token: str) -> None:
        self._token = token

    @property
    def token(self) -> str:
        return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(token='***')"
