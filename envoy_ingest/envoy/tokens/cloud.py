"""The Enphase cloud: log in to Enlighten, then ask Entrez for a gateway's JWT.

::

    POST login_url   form user[email], user[password]
         -> {"message": "success", "session_id": "...", ...}   (no session_id: multi-factor)
    POST token_url   JSON {"session_id": ..., "serial_num": ..., "username": ...}
         -> the JWT itself, as plain text

Both calls verify TLS (``[enlighten].verify_tls``) and time out
(``[enlighten].timeout``). A fleet never bursts: the calls of one client (the
whole process has one) start at least ``[enlighten].request_spacing`` seconds
apart, whichever account they are for. Error messages name the URL setting to check and
never carry the password, the session id or the token, nor any answer body.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from envoy_ingest.errors import CloudError, CloudLoginRefused, MultiFactorAccount
from envoy_ingest.settings import EnlightenSettings
from envoy_ingest.telemetry.logging import register_secret

TOKEN_PAGE = "https://entrez.enphaseenergy.com"  # noqa: S105 - a web page, not a secret


class Session:
    """An Enlighten session id (a secret: it never shows in a repr)."""

    __slots__ = ("_id", "username")

    def __init__(self, session_id: str, username: str) -> None:
        register_secret(session_id)  # from now on the log redactor masks it
        self._id = session_id
        self.username = username

    @property
    def id(self) -> str:
        return self._id

    def __repr__(self) -> str:
        return f"Session(username={self.username!r}, id='***')"


class EnlightenClient:
    def __init__(
        self,
        settings: EnlightenSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._clock = clock
        self._sleep = sleep
        self._turn = asyncio.Lock()
        self._next_call = float("-inf")

    async def _wait_turn(self) -> None:
        """Wait until ``request_spacing`` seconds have passed since the last call started."""
        spacing = self.settings.request_spacing
        async with self._turn:
            wait = min(self._next_call - self._clock(), spacing)  # (the clock may jump back)
            if wait > 0:
                await self._sleep(wait)
            self._next_call = self._clock() + spacing

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self._transport,
            verify=self.settings.verify_tls,
            timeout=self.settings.timeout,
            follow_redirects=False,
            trust_env=True,  # the cloud may sit behind the user's proxy
        )

    async def _post(self, what: str, key: str, url: str, **kwargs: Any) -> httpx.Response:
        await self._wait_turn()
        try:
            async with self._client() as client:
                return await client.post(url, **kwargs)
        except httpx.TimeoutException:
            raise CloudError(
                f"Enlighten {what} at {url} timed out after {self.settings.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            reason = str(exc).strip() or type(exc).__name__
            raise CloudError(
                f"cannot reach Enlighten {what} at {url} ({reason}); check [enlighten].{key} "
                "and the network"
            ) from None

    async def login(self, username: str, password: str) -> Session:
        """Log in. Raises CloudLoginRefused, MultiFactorAccount or CloudError."""
        url = self.settings.login_url
        response = await self._post(
            "login",
            "login_url",
            url,
            data={"user[email]": username, "user[password]": password},
        )
        status = response.status_code
        if status in (401, 422):
            raise CloudLoginRefused(
                f"Enlighten refused the login of {username}: check enlighten_username and "
                "enlighten_password"
            )
        if status != 200:
            raise CloudError(
                f"Enlighten login answered {status} {response.reason_phrase}; if this persists, "
                f"Enphase may have moved it: check [enlighten].login_url ({url})"
            )
        try:
            body = json.loads(response.text)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise CloudError(
                f"Enlighten login at {url} answered something that is not a JSON object; "
                "check [enlighten].login_url"
            )
        session_id = body.get("session_id")
        if isinstance(session_id, str) and session_id:
            return Session(session_id, username)
        message = str(body.get("message", "")).lower()
        if any(word in message for word in ("fail", "invalid", "incorrect", "wrong")):
            raise CloudLoginRefused(
                f"Enlighten refused the login of {username}: check enlighten_username and "
                "enlighten_password"
            )
        raise MultiFactorAccount(
            f"the Enlighten account {username} uses multi-factor login, so envoy-ingest "
            f"cannot fetch tokens for it: get a token at {TOKEN_PAGE} and paste it as the "
            "gateway's token (or token_file)"
        )

    async def fetch_token(self, session: Session, serial: str) -> str:
        """The JWT for gateway ``serial`` (not checked here; the caller decodes it)."""
        url = self.settings.token_url
        response = await self._post(
            "token request",
            "token_url",
            url,
            json={"session_id": session.id, "serial_num": serial, "username": session.username},
        )
        status = response.status_code
        if status != 200:
            raise CloudError(
                f"Enlighten token request for gateway {serial} answered {status} "
                f"{response.reason_phrase}; if this persists, Enphase may have moved it: "
                f"check [enlighten].token_url ({url})"
            )
        token = response.text.strip()
        if not token:
            raise CloudError(f"Enlighten token request for gateway {serial} answered an empty body")
        return token
