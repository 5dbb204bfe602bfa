"""The exception hierarchy. Every error a user sees names the config key or the
gateway and says what to do; none carries a secret."""

from __future__ import annotations


class EnvoyIngestError(Exception):
    """Base of every error raised by envoy-ingest."""


class SettingsError(EnvoyIngestError):
    """A bad setting: the message names the key and the problem (exit code 2)."""


# --- gateway side -----------------------------------------------------------


class GatewayError(EnvoyIngestError):
    """Something went wrong talking to a gateway."""


class GatewayUnreachable(GatewayError):
    """Neither https nor http answered (connect error, TLS error, timeout)."""


class GatewayAuthError(GatewayError):
    """The gateway refused our credentials (401/403)."""


class GatewayResponseError(GatewayError):
    """The gateway answered, but not with something usable (5xx, HTML, bad JSON).
    ``status``: the HTTP status when that was the trouble."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CertificateMismatch(GatewayError):
    """The gateway's TLS certificate does not match the pinned fingerprint."""


# --- Enphase cloud / tokens ---------------------------------------------------


class TokenError(EnvoyIngestError):
    """A JWT could not be obtained, parsed or validated."""


class MultiFactorAccount(TokenError):
    """The Enlighten account uses multi-factor login: a token must be pasted."""


class CloudError(TokenError):
    """The Enphase cloud answered with an error or did not answer."""


class CloudLoginRefused(CloudError):
    """Enlighten refused the e-mail address / password (not worth retrying soon)."""


# --- sink side ----------------------------------------------------------------


class SinkError(EnvoyIngestError):
    """A sink could not accept or deliver points."""


class SpoolCorrupt(SinkError):
    """The spool file is damaged (not a database, or malformed): move it aside."""


class SpoolInUse(SinkError):
    """Another envoy-ingest process holds the spool's lock."""
