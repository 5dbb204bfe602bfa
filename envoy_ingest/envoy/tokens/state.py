"""What the token manager keeps: per Enlighten account (credentials, backoff, the
login session) and per gateway serial (the token in use and what the gateway
said of it). Secrets never appear in a repr."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from envoy_ingest.backoff import Backoff
from envoy_ingest.envoy.tokens.claims import TokenInfo
from envoy_ingest.envoy.tokens.cloud import Session
from envoy_ingest.gateway import GatewaySettings


@dataclass(slots=True)
class Account:
    username: str
    password: str = field(repr=False)
    backoff: Backoff = field(repr=False)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    retry_at: float = 0.0
    last_error: str | None = None
    session: Session | None = field(default=None, repr=False)
    session_at: float = 0.0


@dataclass(slots=True)
class Entry:
    serial: str
    index: int  # in settings.gateways, for messages naming the key
    gw: GatewaySettings
    current: TokenInfo | None = None
    obtained: float = 0.0
    validated: bool = False  # the gateway accepted it (check_jwt or a request)
    refused: bool = False  # the gateway refused it
    replaces_refused: bool = False  # fetched because the gateway refused the previous one

    @property
    def where(self) -> str:
        return f"gateways[{self.index}] ({self.gw.label})"
