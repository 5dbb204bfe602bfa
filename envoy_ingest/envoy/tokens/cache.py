"""The token cache: one file per gateway serial in the state directory
(``<state>/tokens/<serial>.json``), mode 0600, written atomically, so a
fetched token survives restarts without a cloud call. A damaged file is moved
aside (``<serial>.json.corrupt-<time>``, :func:`envoy_ingest.statefile.quarantine`)
and the token fetched again."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from envoy_ingest.envoy.tokens.claims import TokenInfo, decode_token
from envoy_ingest.statefile import quarantine, serial_name, write_atomic

log = logging.getLogger("envoy_ingest.envoy.tokens")


class TokenCache:
    def __init__(self, directory: Path, clock: Callable[[], float]) -> None:
        self.directory = directory
        self.clock = clock

    def path(self, serial: str) -> Path:
        return self.directory / f"{serial_name(serial)}.json"

    def load(self, serial: str, username: str, where: str) -> TokenInfo | None:
        """The cached token of ``serial`` fetched with ``username``'s account, if any."""
        path = self.path(serial)
        if not path.is_file():
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:  # unreadable (permissions, bad bytes)
            log.warning("%s: ignoring the token cache %s (%s)", where, path, type(exc).__name__)
            return None
        try:
            data = json.loads(text)
            if data.get("enlighten_username") != username:
                return None
            tok = decode_token(str(data["token"]), "cached")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            quarantine(path, f"{where}: not a token cache ({type(exc).__name__})")
            return None
        with contextlib.suppress(OSError):
            path.chmod(0o600)
        return tok

    def save(self, serial: str, username: str | None, tok: TokenInfo, where: str) -> None:
        """Write atomically (temp file, fsync, rename, fsync the directory), mode 0600."""
        path = self.path(serial)
        data = {
            "serial": serial,
            "enlighten_username": username,
            "token": tok.value,
            "saved": int(self.clock()),
        }
        try:
            write_atomic(path, json.dumps(data).encode())
        except OSError as exc:
            log.warning(
                "%s: cannot cache the token in %s (%s); it is kept in memory only",
                where,
                self.directory,
                exc.strerror or type(exc).__name__,
            )
