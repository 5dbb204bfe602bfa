"""The ``envoy-ingest token`` command: fetch or refresh now, and say what each
gateway's token is (account type, expiry, whether the gateway accepts it). The
token itself is printed only when asked."""

from __future__ import annotations

import httpx

from envoy_ingest.commands import Out, print_line
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.tokens import TokenManager, duration_text
from envoy_ingest.errors import GatewayError, SettingsError, TokenError
from envoy_ingest.gateway import GatewaySettings
from envoy_ingest.origin import GatewayAddress
from envoy_ingest.settings import Settings


def _select(settings: Settings, gateway: str | None) -> list[GatewaySettings]:
    if gateway is None:
        return list(settings.gateways)
    try:  # a host in any spelling (https://Envoy.local is envoy.local)
        host = GatewayAddress.parse(gateway).key
    except ValueError:
        host = None
    chosen = [
        gw
        for gw in settings.gateways
        if gateway in {gw.name, gw.serial, gw.label} or gw.address.key == host
    ]
    if not chosen:
        raise SettingsError(f"--gateway {gateway!r}: no gateway with that name, serial or host")
    return chosen


async def token_command(
    settings: Settings,
    gateway: str | None,
    show: bool,
    out: Out = print_line,
    *,
    tokens: TokenManager | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """Fetch (or refresh) now and print each gateway's account type and expiry; 0 ok, 1 not.

    The token itself is printed only with ``show``. ``tokens`` and ``transport``
    are for tests.
    """
    status = 0
    manager = tokens if tokens is not None else TokenManager(settings)
    for gw in _select(settings, gateway):
        client = EnvoyClient(gw, manager, transport=transport)
        try:
            serial = gw.serial
            info = None
            try:
                info = await client.connect(authenticate=False)
                serial = info.serial
            except GatewayError as exc:
                if serial is None:
                    raise TokenError(
                        f"{gw.label}: cannot read the serial number from the gateway ({exc}); "
                        "set the gateway's serial"
                    ) from None
                out(f"{gw.label}: gateway not reachable ({exc}); fetching anyway")
            has_creds = manager.has_credentials(gw)
            if info is not None and not info.uses_jwt and gw.token is None and not has_creds:
                out(f"{gw.label}: firmware {info.firmware} uses digest auth: no token needed")
                continue
            if has_creds:
                tok = await manager.refresh_now(gw, serial)
            else:
                current = manager.current(gw, serial)
                if current is None:
                    raise manager.missing_token_error(gw, serial)
                tok = current
            left = tok.expires - manager.clock()
            state = (
                f"expires {tok.expiry_text} (in {duration_text(left)})"
                if left > 0
                else (f"EXPIRED on {tok.expiry_text}")
            )
            origin = "fetched from Enlighten now" if has_creds else "pasted; cannot be renewed"
            out(f"{gw.label} ({serial}): {tok.user} token, {state}, {origin}")
            if has_creds:
                out(f"  cached in {manager.cache_path(serial)}")
            if info is not None and info.uses_jwt:
                accepted = await client.check_jwt(tok.value)
                out("  the gateway accepts it" if accepted else "  the gateway REFUSES it")
                if not accepted:
                    status = 1
            if left <= 0:
                status = 1
            if show:
                out(tok.value)
        except (TokenError, GatewayError) as exc:
            out(f"{gw.label}: FAILED: {exc}")
            status = 1
        finally:
            await client.aclose()
    return status
