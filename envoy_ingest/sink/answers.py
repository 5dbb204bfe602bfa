"""What an InfluxDB writer answers, decided once for both APIs.

A writer sends one body of line protocol to the bucket (v2) or database (v1)
of a target and turns the server's answer into a :class:`WriteResult`; the
sink (:mod:`envoy_ingest.sink.delivery`) decides what to do with it:

===========================  ===========  =============================================
answer                       outcome      the sink
===========================  ===========  =============================================
2xx                          OK           deletes the batch from the spool
400, 422 (bad line, field    REJECTED     dead-letter file with the reason; never retried
type conflict, partial
write, outside retention)
413                          TOO_LARGE    splits the batch
401, 403, 404, other 4xx     REFUSED      error naming the config key; keeps spooling
429, 503 (+ Retry-After)     RETRY        waits Retry-After, else backoff
other 5xx, network errors    RETRY        exponential backoff with jitter
===========================  ===========  =============================================
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from envoy_ingest.point import Kind

# Longest server reason kept in a log line or error message.
MAX_REASON = 500
# Longest Retry-After honoured (seconds); beyond this we re-check sooner.
MAX_RETRY_AFTER = 3600.0


class Outcome(enum.Enum):
    OK = "ok"
    REJECTED = "rejected"
    TOO_LARGE = "too large"
    REFUSED = "refused"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class WriteResult:
    outcome: Outcome
    message: str = ""
    status: int | None = None
    retry_after: float | None = None
    network: str | None = None  # "timeout" or "connection" when no HTTP answer came

    @property
    def error_class(self) -> str:
        """For the ``write_errors`` metric: ``http_4xx``, ``http_5xx``, ``timeout``, ..."""
        if self.status is not None:
            return f"http_{self.status // 100}xx"
        return self.network or "error"


OK = WriteResult(Outcome.OK)


class Writer(Protocol):
    """Sends line protocol to one InfluxDB server (v1 or v2 API)."""

    name: str

    def destination(self, target: Kind) -> str:
        """How messages name where ``target`` goes, e.g. ``bucket 'solar'``."""

    async def write(self, target: Kind, body: bytes) -> WriteResult:
        """Send ``body`` (complete lines, precision s). Never raises for server trouble."""

    async def check(self) -> list[tuple[bool, str]]:
        """Reachable, authenticated, destination present: one line each."""

    async def aclose(self) -> None: ...


def display_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = when - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def classify(
    status: int,
    reason: str,
    headers: Mapping[str, str] | None,
    *,
    refused: Mapping[int, str],
) -> WriteResult:
    """Turn an HTTP answer into a :class:`WriteResult`.

    ``refused`` maps 401/403/404 to the message for the user (naming the key);
    ``reason`` is the server's own explanation.
    """
    reason = short(reason) or f"HTTP {status}"
    if 200 <= status < 300:
        return OK
    retry_after = parse_retry_after((headers or {}).get("Retry-After"))
    if status in (400, 422):
        return WriteResult(Outcome.REJECTED, f"{status}: {reason}", status)
    if status == 413:
        return WriteResult(Outcome.TOO_LARGE, f"413: {reason}", status)
    if status in (429, 503) or status >= 500:
        return WriteResult(Outcome.RETRY, f"{status}: {reason}", status, retry_after)
    hint = refused.get(status)
    message = f"{status}: {reason}" + (f"; {hint}" if hint else "")
    return WriteResult(Outcome.REFUSED, message, status, retry_after)


def unreachable(url: str, exc: BaseException) -> WriteResult:
    detail = short(str(exc)) or type(exc).__name__
    timed_out = "timeout" in type(exc).__name__.lower() or "timed out" in str(exc).lower()
    return WriteResult(
        Outcome.RETRY,
        f"cannot reach {display_url(url)}: {detail}",
        network="timeout" if timed_out else "connection",
    )
