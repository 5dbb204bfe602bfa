"""Logging: readable lines by default, JSON lines on request, secrets redacted.

``setup_logging(level, fmt)`` configures the root logger once per process (a
second call replaces the first) and installs, once, the filter that drops
httpcore's header lines (``Set-Cookie: sessionId=...``) at their loggers
(:func:`install_header_redaction`). Every record that reaches its handler passes
:class:`RedactingFilter` first, which rewrites the message (with its args
merged in), the exception text and the stack text, so that no secret reaches
any output at any level:

- each value given to :func:`register_secret` (the settings' passwords and
  tokens, a token fetched from Enlighten), also URL- and JSON-escaped;
- anything shaped like a JWT (``eyJ...``);
- ``Authorization`` header values, ``Bearer ...``, and ``password=``,
  ``token=``, ``"secret": "..."`` and similar key/value pairs.

Each is replaced by ``***``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import urllib.parse
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

__all__ = [
    "REDACTED",
    "JsonFormatter",
    "RedactingFilter",
    "TextFormatter",
    "install_header_redaction",
    "redact",
    "register_secret",
    "setup_logging",
]

REDACTED = "***"

#: Secrets shorter than this are not searched for: replacing every "42" in the
#: logs would hide more than it protects. No real password or token is this short.
MIN_SECRET_LENGTH = 4

LogFormat = Literal["text", "json"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# Libraries that log every request or job run at INFO: shown only with debug.
_CHATTY = ("httpx", "httpcore", "apscheduler", "urllib3")

_KEYS = (
    r"password|passwd|pwd|passphrase|secret|client_secret|token|access_token|refresh_token"
    r"|session_id|sessionid|api_?key|apikey|x-api-key"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer x / {'Authorization': 'Digest username="envoy", ...'}
    # (a quoted value up to its closing quote, else the rest of the line)
    (
        re.compile(
            r"""(?i)(\b(?:proxy-)?authorization["']?\s*[:=]\s*)(?:(["'])(?:(?!\2).)*\2|[^\r\n]+)"""
        ),
        r"\1\2" + REDACTED + r"\2",
    ),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{12,}"), r"\1\2" + REDACTED),
    # a JWT, or the start of one: base64url of '{"' is 'eyJ'
    (re.compile(r"\beyJ[A-Za-z0-9_-]{6,}(?:\.[A-Za-z0-9_-]*){0,2}"), REDACTED),
    # key=value (query strings, forms, reprs) and "key": "value" (JSON, dicts)
    (
        re.compile(
            rf"""(?i)(\b(?:{_KEYS})(?:\s*=\s*|["']\s*:\s*))"""
            r"""(?:(["'])(?:(?!\2).)*\2|[^\s"'&,;)}\]]+)"""
        ),
        r"\1\2" + REDACTED + r"\2",
    ),
)


class _Secrets:
    """The registered secrets as one alternation, longest first.

    Compiled when next needed, not at each :meth:`add`: a fleet registers
    thousands of tokens at start, and recompiling the growing alternation each
    time cost minutes of CPU.
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._dirty = False
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        value = value.strip()
        if len(value) < MIN_SECRET_LENGTH:
            return
        forms = {
            value,
            urllib.parse.quote(value, safe=""),
            urllib.parse.quote_plus(value),
            json.dumps(value)[1:-1],
            repr(value)[1:-1],
        }
        with self._lock:
            if forms <= self._values:
                return
            self._values |= forms
            self._dirty = True

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None
            self._dirty = False

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._dirty:
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
                self._dirty = False
            return self._pattern

    def sub(self, text: str) -> str:
        pattern = self._pattern if not self._dirty else self._compiled()
        return pattern.sub(REDACTED, text) if pattern is not None else text


_SECRETS = _Secrets()


def register_secret(value: str | None) -> None:
    """Never let ``value`` appear in the logs from now on (empty and very short ignored)."""
    if value:
        _SECRETS.add(value)


def clear_secrets() -> None:
    """Forget every registered secret (for tests)."""
    _SECRETS.clear()


def redact(text: str) -> str:
    """``text`` with every registered secret and secret-looking value replaced by ``***``."""
    text = _SECRETS.sub(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record in place so that formatters only see redacted text.

    The message is merged with its args first (an arg may be the secret), the
    exception and stack are formatted and redacted into ``exc_text`` and
    ``stack_info``, which every :class:`logging.Formatter` uses as they are.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _MARK, False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what can be shown
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, key, redact(value))
        setattr(record, _MARK, True)
        return True


_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName", "_envoy_ingest_redacted"}
_MARK = "_envoy_ingest_redacted"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """Attributes given with ``extra={...}``."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class TextFormatter(logging.Formatter):
    """``2025-06-01 12:00:00 INFO    envoy_ingest.worker: message`` (+ traceback lines)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        # Redacted again: a record may reach this formatter without the filter.
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message,
    ``exception`` and ``stack`` when present, and any ``extra`` attributes."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = redact(record.exc_text)
        if record.stack_info:
            out["stack"] = redact(record.stack_info)
        for key, value in _extras(record).items():
            if not (value is None or isinstance(value, bool | int | float)):
                value = redact(value if isinstance(value, str) else str(value))
            out.setdefault(key, value)
        return json.dumps(out, ensure_ascii=False)


class _QuietLibraries(logging.Filter):
    """Drops the chatty libraries' records below WARNING (on our handler only, so
    that their loggers stay as they are for anyone else listening)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return not any(record.name == n or record.name.startswith(n + ".") for n in _CHATTY)


class _Handler(logging.StreamHandler[TextIO]):
    """Ours, so that a second :func:`setup_logging` replaces it and nothing else."""


def setup_logging(
    level: str = "info", fmt: LogFormat = "text", stream: TextIO | None = None
) -> None:
    """Log to ``stream`` (stderr) at ``level`` in ``fmt``, every record redacted.

    ``level``: debug, info, warning or error. Chatty libraries (httpx,
    apscheduler) log their per-request and per-run lines only with debug.
    """
    try:
        numeric = _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(_LEVELS)}") from None
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}: use text or json")
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    if numeric > logging.DEBUG:
        handler.addFilter(_QuietLibraries())
    logging.captureWarnings(True)
    install_header_redaction()


class _DropHeaders(logging.Filter):
    """httpcore logs response headers at DEBUG (``Set-Cookie: sessionId=...``):
    drop them at the logger, before any handler (a test's too) sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        event, sep, _ = str(record.msg).partition(" ")
        if sep and "headers" in event:
            record.msg = f"{event} (headers not logged)"
            record.args = ()
        return True


#: httpcore's loggers that log headers.
HEADER_LOGGERS = ("httpcore.http11", "httpcore.http2", "httpcore.connection", "httpcore.proxy")


def install_header_redaction() -> None:
    """Drop httpcore's header lines: once per process, by :func:`setup_logging`
    (which every command runs before it makes an HTTP client); a second call adds
    nothing."""
    flt = _DropHeaders()
    for name in HEADER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropHeaders) for f in logger.filters):
            logger.addFilter(flt)
