"""How to get in: digest passwords below firmware 7, a Bearer header from 7 on.

Nothing here does I/O. The secrets live in the auth objects and never in
their ``repr``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import NamedTuple, cast

import httpx

from envoy_ingest.envoy.passwords import default_password
from envoy_ingest.gateway import GatewaySettings


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

    def authorization(self, method: str, raw_path: bytes) -> str | None:
        """The ``Authorization`` value httpx's flow would send now for ``method``
        ``raw_path`` (advancing the nonce count as it does), or ``None`` while no
        challenge is known (the first request goes without, as in httpx)."""
        challenge = self._last_challenge
        if challenge is None:
            return None
        # httpx reads only ``method`` and ``url.raw_path`` of the request.
        request = cast(httpx.Request, _Signed(method, _RawPath(raw_path)))
        return self._build_auth_header(request, challenge)

    def __repr__(self) -> str:
        return f"GatewayDigestAuth(username={self.username!r}, password='***')"


class _RawPath(NamedTuple):
    raw_path: bytes


class _Signed(NamedTuple):
    """The part of a request that a digest signs."""

    method: str
    url: _RawPath


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
