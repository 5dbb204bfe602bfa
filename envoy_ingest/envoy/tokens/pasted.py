"""The pasted tokens (``token`` / ``token_file``) of the settings' gateways, and the
warnings before they expire (30, 7 and 1 days ahead, and once when they have)
for those that cannot be renewed from Enlighten."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from envoy_ingest.envoy.tokens.claims import TokenInfo, decode_token, duration_text
from envoy_ingest.envoy.tokens.cloud import TOKEN_PAGE
from envoy_ingest.envoy.tokens.policy import pasted_wakes, pasted_warnings
from envoy_ingest.errors import SettingsError
from envoy_ingest.gateway import GatewaySettings

log = logging.getLogger("envoy_ingest.envoy.tokens")
_NONE: frozenset[float] = frozenset()  # no warning given yet

#: Whether a gateway's tokens are renewed from Enlighten (then no warnings).
Renewable = Callable[[GatewaySettings], bool]


class PastedTokens:
    """The pasted token of each gateway that has one, by its index in the settings."""

    def __init__(self, gateways: Sequence[GatewaySettings]) -> None:
        self.gateways = gateways
        self._tokens: dict[int, TokenInfo] = {}
        # A set is stored only once a warning is given: a fleet has thousands of tokens.
        self._warned: dict[int, set[float]] = {}
        for i, gw in enumerate(gateways):
            if gw.token is None:
                continue
            try:
                self._tokens[i] = decode_token(gw.token.get_secret_value(), "pasted")
            except ValueError as exc:
                raise SettingsError(
                    f"gateways[{i}].token: {exc}; paste the whole token from {TOKEN_PAGE}"
                ) from None
        # Looked up per poll (seconds to expiry) in O(1) for fleets of thousands.
        self._serials: dict[str, int] = {}
        for i, gw in enumerate(gateways):
            if gw.serial and i in self._tokens:
                self._serials.setdefault(gw.serial, i)

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def __contains__(self, index: int) -> bool:
        return index in self._tokens

    def get(self, index: int) -> TokenInfo | None:
        return self._tokens.get(index)

    def of_serial(self, serial: str) -> TokenInfo | None:
        """The pasted token of the gateway configured with ``serial``, if any."""
        i = self._serials.get(serial)
        return None if i is None else self._tokens[i]

    def wakes(self, renewable: Renewable) -> list[float]:
        """When the warnings not given yet fall due."""
        times: list[float] = []
        for i, tok in self._tokens.items():
            if not renewable(self.gateways[i]):
                times += pasted_wakes(tok.expires, self._warned.get(i) or _NONE)
        return times

    def warn(self, now: float, renewable: Renewable) -> None:
        """Give the warnings due at ``now`` (each once)."""
        for i, tok in self._tokens.items():
            gw = self.gateways[i]
            if renewable(gw):
                continue  # renewed from Enlighten when it runs out
            left = tok.expires - now
            new = pasted_warnings(left, self._warned.get(i) or _NONE)
            if not new:
                continue
            self._warned.setdefault(i, set()).update(new)
            where = f"gateways[{i}] ({gw.label})"
            if left <= 0:
                log.error(
                    "%s: the pasted token expired on %s; the gateway will refuse it. Get a "
                    "new one at %s, set it as token (or token_file) and restart, or set "
                    "enlighten_username and enlighten_password to fetch tokens automatically",
                    where,
                    tok.expiry_text,
                    TOKEN_PAGE,
                )
            else:
                log.warning(
                    "%s: the pasted token expires in %s (%s); get a new one at %s and set it "
                    "as token (or token_file), or set enlighten_username and "
                    "enlighten_password to fetch tokens automatically",
                    where,
                    duration_text(left),
                    tok.expiry_text,
                    TOKEN_PAGE,
                )
