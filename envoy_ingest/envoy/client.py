"""EnvoyClient: find the gateway, log in as its firmware wants, read endpoints.

::

    client = EnvoyClient(gw, tokens)
    info = await client.connect()                 # https, else http; /info
    snap = await client.fetch(paths, deadline=t)  # one request at a time
    await client.aclose()

Firmware < 7: digest auth (httpx sends it only after the gateway asks).
Firmware >= 7: ``Authorization: Bearer <JWT>`` from the token manager, whether
the token was pasted or fetched.

Deadlines are event-loop times (``asyncio.get_running_loop().time() + seconds``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from envoy_ingest.envoy import transport as _transport
from envoy_ingest.envoy.auth import GatewayDigestAuth, describe_digest, digest_auth
from envoy_ingest.envoy.firmware import GatewayInfo, parse_info
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.errors import (
    CertificateMismatch,
    GatewayAuthError,
    GatewayError,
    GatewayResponseError,
    GatewayUnreachable,
    TokenError,
)
from envoy_ingest.gateway import GatewaySettings
from envoy_ingest.telemetry import metrics

log = logging.getLogger(__name__)

CHECK_JWT = "/auth/check_jwt"
MAX_PARSED_URLS = 16

_DIGITS_AS_ZEROS = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_NUMBER = b"0" * 19  # 19 digits or more: perhaps beyond 64 bits


def loads(body: bytes) -> Any:
    """``json.loads(body)``, the same result three to four times faster.

    orjson parses what it can; json the rest, so that nothing differs: what
    orjson refuses (NaN and Infinity, a BOM, UTF-16/32, lone surrogates) and
    integers beyond 64 bits (which orjson makes floats; a run of 19 digits
    anywhere sends the body to json, rarely and only costing time).
    """
    if _LONG_NUMBER not in body.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def parse_body(response: _transport.Answer, what: str) -> Any:
    """JSON bodies decoded (``dict``/``list``); anything else is the text.

    JSON is parsed from the bytes (UTF-8, or the UTF-16/32 that json detects):
    decoding to text first would cost a charset lookup per request.
    """
    body = response.content
    is_json = "json" in response.headers.get("content-type", "").lower()
    if is_json or body.lstrip()[:1] in (b"{", b"["):
        try:
            return loads(body)
        except ValueError:  # UnicodeDecodeError too
            if is_json:
                raise GatewayResponseError(f"{what} answered JSON that does not parse") from None
    return response.text


_MONTHS = {
    name: i + 1
    for i, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    )
}
_WEEKDAYS = frozenset(("Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"))


def http_date(header: str) -> float | None:
    """``Date: Mon, 30 Nov 2026 05:14:05 GMT`` as a Unix time; None if it does not parse.

    The form every server sends is read directly; any other goes to
    ``email.utils.parsedate_to_datetime`` (a dozen times slower), with the
    same result either way.
    """
    parts = header.split(" ")
    if (
        len(parts) == 6
        and parts[0] in _WEEKDAYS
        and parts[5] == "GMT"
        and len(parts[1]) == 2
        and len(parts[3]) == 4
        and len(parts[4]) == 8
        and parts[4][2] == ":" == parts[4][5]
        and (month := _MONTHS.get(parts[2])) is not None
    ):
        clock = parts[4]
        digits = (parts[1], parts[3], clock[:2], clock[3:5], clock[6:])
        if all(d.isascii() and d.isdigit() for d in digits):
            day, year, hour, minute, second = map(int, digits)
            if year < 100:  # email.utils reads 0026 as 2026
                return _parsed_date(header)
            with contextlib.suppress(ValueError):
                return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()
            return None
    return _parsed_date(header)


def _parsed_date(header: str) -> float | None:
    with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
        return parsedate_to_datetime(header).timestamp()
    return None


class EnvoyClient:
    def __init__(
        self,
        gw: GatewaySettings,
        tokens: TokenManager,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: float = 1.0,
        limit: _transport.InFlightLimit | None = None,
    ) -> None:
        self.gw = gw
        self.tokens = tokens
        self.backoff = backoff
        self.limit = limit
        self.base_url: str | None = None
        self.scheme: str | None = None
        self.info: GatewayInfo | None = None
        self.last_errors: dict[str, str] = {}
        self.not_found: set[str] = set()  # paths of the last fetch that answered 404
        self.refused: set[str] = set()  # paths of the last fetch that answered 401 / 403
        self._http = _transport.build_client(gw, transport)
        self._digest: GatewayDigestAuth | None = None
        self._gateway_date: tuple[float, float] | None = None  # (Date, monotonic then)
        # The few URLs asked every cycle, prepared once (about 400 bytes each).
        self._targets: dict[str, _transport.Target] = {}

    def __repr__(self) -> str:
        return f"EnvoyClient({self.gw.label!r}, base_url={self.base_url!r})"

    @property
    def label(self) -> str:
        return self.gw.label

    # --- connecting ----------------------------------------------------------------

    async def connect(
        self, *, deadline: float | None = None, authenticate: bool = True
    ) -> GatewayInfo:
        """Find the scheme, read ``/info``; on firmware >= 7 make sure a token is usable."""
        address = self.gw.address
        forced, hostport = address.scheme, address.key
        if forced:
            schemes = [forced]
            if forced == "http" and self.gw.tls_fingerprint:
                log.warning("%s: tls_fingerprint is ignored: host forces http", self.label)
        elif self.gw.tls_fingerprint:
            schemes = ["https"]  # a pinned certificate makes no sense over http
        else:
            schemes = ["https", "http"]
        failures: list[str] = []
        for scheme in schemes:
            base = address.base_url(scheme)
            try:
                response = await self._send(base + "/info", deadline=deadline)
            except _transport.TransportFailure as exc:
                failures.append(f"{scheme}: {exc.reason}")
                continue
            _transport.check_status(self.gw, "/info", response)
            info = parse_info(response.text)
            break
        else:
            hint = "check host and that the gateway is on the network"
            if self.gw.tls_fingerprint and not forced:
                hint += " (with tls_fingerprint set, only https is tried)"
            raise GatewayUnreachable(
                f"gateway {self.label}: no answer at {hostport} ({'; '.join(failures)}); {hint}"
            )
        self.base_url, self.scheme, self.info = base, scheme, info
        self._digest = None
        if self.gw.serial and self.gw.serial != info.serial:
            log.warning(
                "%s: the settings say serial %s but the gateway reports %s; using %s",
                self.label,
                self.gw.serial,
                info.serial,
                info.serial,
            )
        log.debug("%s: %s, firmware %s, serial %s", self.label, base, info.firmware, info.serial)
        if authenticate and info.uses_jwt:
            await self._token()
        return info

    def _require_info(self) -> tuple[str, GatewayInfo]:
        if self.base_url is None or self.info is None:
            raise GatewayError(f"gateway {self.label}: not connected (call connect() first)")
        return self.base_url, self.info

    def _note_date(self, header: str | None) -> None:
        if header and (date := http_date(header)) is not None:
            self._gateway_date = (date, time.monotonic())

    @property
    def gateway_now(self) -> float | None:
        """The gateway's clock: the ``Date`` of its latest answer, plus the time since."""
        if self._gateway_date is None:
            return None
        date, received = self._gateway_date
        return date + (time.monotonic() - received)

    def _target(self, url: str) -> _transport.Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= MAX_PARSED_URLS:
                self._targets.clear()  # a new base (scheme fallback, new address)
            target = self._targets[url] = _transport.Target(url)
        return target

    async def _send(
        self,
        url: str,
        *,
        deadline: float | None = None,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> _transport.Answer:
        started = time.monotonic()
        status: int | str = "error"
        try:
            response = await _transport.send(
                self._http,
                self.gw,
                self._target(url),
                headers=headers,
                auth=auth,
                deadline=deadline,
                backoff=self.backoff,
                limit=self.limit,
            )
            status = response.status_code
            self._note_date(response.headers.get("date"))
            return response
        except Exception as exc:
            status = type(exc).__name__
            raise
        finally:
            metrics.record_request(self._target(url).path, status, time.monotonic() - started)

    # --- tokens ----------------------------------------------------------------------

    async def check_jwt(self, token: str, *, deadline: float | None = None) -> bool:
        """Does the gateway accept ``token``? (``/auth/check_jwt``: 200 yes, 401/403 no)."""
        base, _ = self._require_info()
        response = await self._send(
            base + CHECK_JWT, deadline=deadline, headers={"Authorization": f"Bearer {token}"}
        )
        if response.status_code in (401, 403):
            return False
        _transport.check_status(self.gw, CHECK_JWT, response)
        return True

    async def _token(self, deadline: float | None = None) -> str:
        _, info = self._require_info()

        async def check(token: str) -> bool:
            return await self.check_jwt(token, deadline=deadline)

        return await self.tokens.token_for(self.gw, info.serial, check)

    @property
    def auth_description(self) -> str:
        """How we log in, for ``check`` (never a secret)."""
        if self.info is None:
            return "not connected"
        if not self.info.uses_jwt:
            return describe_digest(self.gw)
        return self.tokens.describe(self.info.serial)

    # --- reading ---------------------------------------------------------------------

    async def get(self, path: str, *, deadline: float | None = None) -> Any:
        """One endpoint's parsed body. Raises GatewayAuthError / GatewayResponseError /
        GatewayUnreachable (and TokenError when no token can be had)."""
        if self.info is None:
            await self.connect(deadline=deadline)
        base, info = self._require_info()
        url = base + path
        if not info.uses_jwt:
            if self._digest is None:
                self._digest = digest_auth(self.gw, info.serial)
            response = await self._send(url, deadline=deadline, auth=self._digest)
            if response.status_code in (401, 403):
                raise GatewayAuthError(
                    f"gateway {self.label}: {path}: the gateway refused "
                    f"{describe_digest(self.gw)} ({response.status_code}); check the "
                    "gateway's username and password"
                )
        else:
            response = await self._bearer_get(path, url, info, deadline)
        _transport.check_status(self.gw, path, response)
        return parse_body(response, f"gateway {self.label}: {path}")

    async def _bearer_get(
        self, path: str, url: str, info: GatewayInfo, deadline: float | None
    ) -> _transport.Answer:
        token = await self._token(deadline)
        response = await self._send(url, deadline=deadline, headers=_bearer(token))
        if response.status_code == 401:

            async def check(candidate: str) -> bool:
                return await self.check_jwt(candidate, deadline=deadline)

            retry = await self.tokens.unauthorized(self.gw, info.serial, token, check)
            log.info("%s: %s answered 401; retrying once", self.label, path)
            response = await self._send(url, deadline=deadline, headers=_bearer(retry))
            if response.status_code == 401:
                if retry != token:
                    self.tokens.rejected(info.serial, retry)
                raise GatewayAuthError(
                    f"gateway {self.label}: {path}: refused (401) again after re-validating "
                    "the token; giving up for this cycle"
                )
            token = retry
        if response.status_code == 403:
            raise GatewayAuthError(
                f"gateway {self.label}: {path}: forbidden (403) for this token's account type"
            )
        if 200 <= response.status_code < 300:
            self.tokens.accepted(info.serial, token)
        return response

    async def fetch(self, paths: Sequence[str], *, deadline: float | None = None) -> dict[str, Any]:
        """Read ``paths`` one after the other (the gateway is weak).

        Failed endpoints are absent from the result; :attr:`last_errors` says why
        (:attr:`not_found`: those that answered 404; :attr:`refused`: 401 or 403).
        Once the gateway stops answering, the remaining paths are not tried.
        """
        self.last_errors = {}
        self.not_found = set()
        self.refused = set()
        snapshot: dict[str, Any] = {}
        for i, path in enumerate(paths):
            try:
                snapshot[path] = await self.get(path, deadline=deadline)
            except CertificateMismatch:
                raise
            except (GatewayUnreachable, TokenError) as exc:
                self.last_errors[path] = self._reason(exc, path)
                for rest in paths[i + 1 :]:
                    self.last_errors[rest] = "not tried: " + self.last_errors[path]
                break
            except GatewayError as exc:
                self.last_errors[path] = self._reason(exc, path)
                if isinstance(exc, GatewayResponseError) and exc.status == 404:
                    self.not_found.add(path)
                elif isinstance(exc, GatewayAuthError):
                    self.refused.add(path)
        return snapshot

    def _reason(self, exc: Exception, path: str) -> str:
        text = str(exc)
        for prefix in (f"gateway {self.label}: {path}: ", f"gateway {self.label}: "):
            text = text.removeprefix(prefix)
        return text

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> EnvoyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
