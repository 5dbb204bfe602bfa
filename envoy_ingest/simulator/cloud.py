"""A fake Enphase cloud: the login and token endpoints of ../shared/ENVOY.md.

1. ``POST login_url`` with form fields ``user[email]``, ``user[password]`` ->
   JSON with ``session_id`` (none for a multi-factor account; 401 JSON for a
   wrong password).
2. ``POST token_url`` with JSON ``{"session_id", "serial_num", "username"}`` ->
   the JWT itself as the plain-text body.

``mode`` switches the cloud into the failures real users meet: ``"ok"``,
``"wrong_password"`` (logins refused with 401, and open sessions too, as after a
password change), ``"mfa"`` (logins answer without ``session_id``),
``"http_400"``, ``"http_403"``, ``"http_500"``, ``"http_503"`` (both endpoints), ``"timeout"``
(accept the request and never answer). Tokens come from the
paired gateway's :class:`TokenAuthority`, so the gateway accepts them.
"""

from __future__ import annotations

import json
import secrets
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

from envoy_ingest.simulator.answer import Answer, json_answer
from envoy_ingest.simulator.auth import INSTALLER_LIFETIME, OWNER_LIFETIME, TokenAuthority
from envoy_ingest.simulator.httpbase import BackgroundServer, Request, Startable

MODES = ("ok", "wrong_password", "mfa", "http_400", "http_403", "http_500", "http_503", "timeout")
LOGIN_PATH = "/login/login.json"
TOKEN_PATH = "/tokens"  # noqa: S105 - a URL path, not a secret
_TIMEOUT_HOLD = 300.0  # seconds a "timeout" request is held open at most


class FakeCloud(Startable):
    def __init__(
        self,
        authority: TokenAuthority | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.authority = authority or TokenAuthority("")
        self.accounts: dict[str, str] = {"owner@example.com": "secret-password"}
        self._mode = "ok"
        self.token_lifetime: float = OWNER_LIFETIME
        self.installer = False
        self.login_calls = 0
        self.token_calls = 0
        self.server_header = "nginx"
        self.keep_alive = True
        self._sessions: dict[str, str] = {}  # session_id -> email
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = BackgroundServer(self, host, port)

    # lifecycle ------------------------------------------------------------------

    def start(self) -> FakeCloud:
        self._stopping.clear()
        self._server.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.stop()

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"cloud mode must be one of {', '.join(MODES)}, not {value!r}")
        self._mode = value

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def login_url(self) -> str:
        return self.url + LOGIN_PATH

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    # requests ---------------------------------------------------------------------

    def handle(self, request: Request) -> Answer | None:
        path = urlsplit(request.path).path
        if path not in (LOGIN_PATH, TOKEN_PATH):
            return json_answer({"error": "Not Found"}, status=404)
        with self._lock:
            if path == LOGIN_PATH:
                self.login_calls += 1
            else:
                self.token_calls += 1
            mode = self._mode
        if request.method != "POST":
            return json_answer({"error": "Method Not Allowed"}, status=405)
        if mode == "timeout":
            self._stopping.wait(_TIMEOUT_HOLD)
            return None
        if mode.startswith("http_"):
            status = int(mode[5:])
            return json_answer({"message": f"simulated cloud failure {status}"}, status=status)
        if path == LOGIN_PATH:
            return self._login(request, mode)
        return self._token(request, mode)

    def _login(self, request: Request, mode: str) -> Answer:
        form = parse_qs(request.body.decode("utf-8", "replace"))
        email = form.get("user[email]", [""])[-1]
        password = form.get("user[password]", [""])[-1]
        known = self.accounts.get(email)
        if (
            mode == "wrong_password"
            or known is None
            or not secrets.compare_digest(known.encode(), password.encode())
        ):
            return json_answer(
                {"message": "Invalid email or password.", "success": False}, status=401
            )
        if mode == "mfa":
            return json_answer({"message": "success", "is_consumer": True, "requires_mfa": True})
        session = secrets.token_hex(16)
        with self._lock:
            self._sessions[session] = email
        return json_answer(
            {
                "message": "success",
                "session_id": session,
                "manager_token": secrets.token_hex(16),
                "is_consumer": True,
                "user_name": email,
            }
        )

    def _token(self, request: Request, mode: str) -> Answer:
        try:
            doc: Any = json.loads(request.body or b"null")
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            return json_answer({"message": "Bad request: JSON body expected"}, status=400)
        session, serial, username = (doc.get(k) for k in ("session_id", "serial_num", "username"))
        if not isinstance(serial, str) or not serial:
            return json_answer({"message": "serial_num is required"}, status=400)
        with self._lock:
            owner = self._sessions.get(session) if isinstance(session, str) else None
        # "wrong_password": as after a password change, no session is honoured either.
        if owner is None or owner != username or mode == "wrong_password":
            return json_answer({"message": "Invalid or expired session"}, status=401)
        lifetime = self.token_lifetime
        if self.installer:
            lifetime = min(lifetime, INSTALLER_LIFETIME)
        token = self.authority.issue(
            lifetime,
            "installer" if self.installer else "owner",
            username=owner,
            serial=serial,
        )
        return Answer(200, token.encode(), "text/plain")
