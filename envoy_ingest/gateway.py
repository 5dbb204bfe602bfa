"""One gateway's settings (a ``[[gateways]]`` table or a row of the gateways
file) and its one identity.

The identity names the gateway wherever it must stay the same across restarts,
reloads and edits of other keys: its schedule phase and slot
(:mod:`envoy_ingest.worker.spread`), its shard (:mod:`envoy_ingest.shard`) and
the duplicate check (:mod:`envoy_ingest.gateways_file`). It is the serial when
the settings give one (``serial:122238082690``), else the normalized host
(``host:envoy.local``, see :mod:`envoy_ingest.origin`): every spelling of one
address is one gateway. The state files (``energy-<serial>.json``,
``tokens/<serial>.json``) are named by the serial once it is known, so they
never depend on how the host is written; the metrics and logs name the gateway
by its :attr:`GatewaySettings.label` (name, else serial, else normalized host).
"""

from __future__ import annotations

import re
from datetime import tzinfo
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from envoy_ingest.energy.localday import host_zone, zone
from envoy_ingest.origin import GatewayAddress
from envoy_ingest.settings_base import Section, load_secret_files

_FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")


class GatewaySettings(Section):
    host: str = Field(min_length=1)  # normalized (GatewayAddress): see origin.py
    name: str | None = None
    serial: str | None = None
    username: Literal["envoy", "installer"] = "envoy"
    password: SecretStr | None = None
    password_file: str | None = None
    token: SecretStr | None = None
    token_file: str | None = None
    enlighten_username: str | None = None
    enlighten_password: SecretStr | None = None
    enlighten_password_file: str | None = None
    verify_tls: bool = False
    tls_fingerprint: str | None = None
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=45.0, gt=0)
    timezone: str | None = None  # IANA name; None: the host's zone
    # Seconds between live reads of this gateway (1 to 59, 0 off); None: [schedule]'s.
    live_interval: int | None = Field(default=None, ge=0, le=59)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str | None) -> str | None:
        if v is None:
            return None
        zone(v.strip())  # raises ValueError naming the problem
        return v.strip()

    @property
    def zone(self) -> tzinfo:
        """The gateway's local time zone (its day counters restart at its midnight)."""
        return zone(self.timezone) if self.timezone else host_zone()

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        return str(GatewayAddress.parse(v))  # raises ValueError naming the problem

    @field_validator("serial")
    @classmethod
    def _serial(cls, v: str | None) -> str | None:
        return v.strip() or None if v is not None else None

    @field_validator("tls_fingerprint")
    @classmethod
    def _fingerprint(cls, v: str | None) -> str | None:
        if v is None:
            return None
        norm = v.replace(":", "").replace(" ", "").lower()
        if not _FINGERPRINT_RE.match(norm):
            raise ValueError("must be the certificate's SHA-256 fingerprint: 64 hex digits")
        return norm

    @model_validator(mode="after")
    def _secrets(self) -> GatewaySettings:
        load_secret_files(self, ("password", "token", "enlighten_password"))
        if (self.enlighten_username is None) != (self.enlighten_password is None):
            raise ValueError("enlighten_username and enlighten_password go together")
        return self

    @property
    def address(self) -> GatewayAddress:
        """Where the gateway listens: the forced scheme (if any), host and port."""
        return GatewayAddress.parse(self.host)

    @property
    def label(self) -> str:
        """How logs, messages and metrics name this gateway (never a secret)."""
        return self.name or self.serial or self.host

    @property
    def identity(self) -> str:
        """What stays the same for this gateway across restarts and edits of other
        keys (its schedule phase, its shard, duplicates): ``serial:<serial>`` when
        the settings give one, else ``host:<normalized host[:port]>``."""
        return f"serial:{self.serial}" if self.serial else f"host:{self.address.key}"
