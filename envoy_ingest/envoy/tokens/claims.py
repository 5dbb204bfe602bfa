"""What a JWT says: its expiry, issue time and account type, read without
checking the signature (the gateway checks it).

The claims are read here rather than with pyjwt's ``decode(...,
verify_signature=False)``: importing pyjwt loads cryptography's native library
(about 10 MB of resident memory in every worker) for signatures never checked.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from envoy_ingest.telemetry.logging import register_secret

DAY = 86400.0
MAX_REFRESH_AHEAD = 30 * DAY


@dataclass(frozen=True, slots=True)
class TokenInfo:
    value: str = field(repr=False)
    expires: float
    issued: float | None
    user: str  # "owner", "installer", or what the token says
    source: str  # "pasted", "cached" or "Enlighten"

    def lifetime(self, obtained: float) -> float:
        return self.expires - (self.issued if self.issued is not None else obtained)

    def refresh_ahead(self, obtained: float) -> float:
        """Renew when less than this is left: ``min(30 days, lifetime / 10)``."""
        return min(MAX_REFRESH_AHEAD, max(self.lifetime(obtained), 0.0) / 10)

    @property
    def expiry_text(self) -> str:
        return datetime.fromtimestamp(self.expires, UTC).strftime("%Y-%m-%d %H:%M UTC")

    def describe(self) -> str:
        origin = "from Enlighten" if self.source == "Enlighten" else self.source
        return f"{self.user}, expires {self.expiry_text}, {origin}"


def decode_token(value: str, source: str) -> TokenInfo:
    """Read ``exp``, ``iat`` and ``enphaseUser`` without checking the signature.

    Raises ``ValueError`` with a reason that never contains the token.
    """
    register_secret(value)  # from now on the log redactor masks it
    claims = unverified_claims(value)
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise ValueError("the token has no expiry (exp claim)")
    iat = claims.get("iat")
    issued = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else None
    user = claims.get("enphaseUser")
    return TokenInfo(value, float(exp), issued, str(user) if user else "unknown", source)


def unverified_claims(value: str) -> dict[str, Any]:
    """The claims of a compact JWT (``header.payload.signature``, each base64url),
    as pyjwt's unverified decode reads them: header and payload must be JSON
    objects, the signature valid base64url. ``ValueError`` never quotes the token."""
    parts = value.split(".")
    if len(parts) != 3:
        raise ValueError("not a valid JWT (not three dot-separated parts)")
    try:
        header, payload, _ = (base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in parts)
        objects = [json.loads(header), json.loads(payload)]
    except (binascii.Error, ValueError, RecursionError):
        raise ValueError("not a valid JWT (a part is not base64url JSON)") from None
    if not all(isinstance(o, dict) for o in objects):
        raise ValueError("not a valid JWT (header or claims not a JSON object)")
    claims: dict[str, Any] = objects[1]
    return claims


def duration_text(seconds: float) -> str:
    """``3 days``, ``5 hours``, ``12 minutes``, ``40 s``."""
    if seconds >= 2 * DAY:
        return f"{seconds / DAY:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{max(seconds, 0):.0f} s"
