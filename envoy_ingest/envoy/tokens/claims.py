"""What a JWT says: its expiry, issue time and account type, read with pyjwt
without checking the signature (the gateway checks it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import jwt

from envoy_ingest.service.logging import register_secret

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
    try:
        claims = jwt.decode(value, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise ValueError(f"not a valid JWT ({type(exc).__name__})") from None
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise ValueError("the token has no expiry (exp claim)")
    iat = claims.get("iat")
    issued = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else None
    user = claims.get("enphaseUser")
    return TokenInfo(value, float(exp), issued, str(user) if user else "unknown", source)


def duration_text(seconds: float) -> str:
    """``3 days``, ``5 hours``, ``12 minutes``, ``40 s``."""
    if seconds >= 2 * DAY:
        return f"{seconds / DAY:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{max(seconds, 0):.0f} s"
