"""Connect to a gateway and probe what it offers: shared by discover and check."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from envoy_ingest.envoy.capabilities import Capabilities, detect, followup_paths, probe_paths
from envoy_ingest.envoy.client import EnvoyClient
from envoy_ingest.envoy.firmware import GatewayInfo
from envoy_ingest.envoy.tokens import TokenManager
from envoy_ingest.gateway import GatewaySettings
from envoy_ingest.settings import Settings


@contextlib.asynccontextmanager
async def probed(
    gw: GatewaySettings, tokens: TokenManager
) -> AsyncIterator[tuple[EnvoyClient, GatewayInfo, Capabilities]]:
    """A connected client with the gateway's identity and capabilities; closed after."""
    client = EnvoyClient(gw, tokens)
    try:
        info = await client.connect()
        probe = await client.fetch(probe_paths(info))
        probe.update(await client.fetch(followup_paths(info, probe)))
        caps = detect(info, probe)
        yield client, info, caps
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def started_tokens(settings: Settings) -> AsyncIterator[TokenManager]:
    """The settings' token manager, started (renewing) and closed after."""
    tokens = TokenManager(settings)
    await tokens.start()
    try:
        yield tokens
    finally:
        await tokens.aclose()
