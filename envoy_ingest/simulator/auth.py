"""How the simulated gateway checks who is asking.

Firmware < 7: HTTP digest (RFC 7616, qop ``auth``, MD5) in realm
``enphaseenergy.com`` for the users ``envoy`` and ``installer``. Nonces are
stateless (time + HMAC), so a client may reuse one, as httpx does.

Firmware >= 7: JWTs (HS256, a secret per simulator) that this gateway or its
cloud issued, unexpired and not revoked; ``/auth/check_jwt`` also opens a
``sessionId`` cookie session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from urllib.request import parse_http_list, parse_keqv_list

import jwt

from envoy_ingest.envoy.passwords import envoy_password, installer_password

REALM = "enphaseenergy.com"
OWNER_LIFETIME = 365 * 86400
INSTALLER_LIFETIME = 12 * 3600


class DigestAuth:
    def __init__(self, serial: str, realm: str = REALM) -> None:
        self.realm = realm
        self.users = {
            "envoy": envoy_password(serial),
            "installer": installer_password(serial, "installer"),
        }
        self._secret = secrets.token_bytes(16)

    def _mac(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:20]

    def challenge(self) -> str:
        stamp = f"{int(time.time()):x}"
        nonce = stamp + self._mac(stamp)
        return f'Digest realm="{self.realm}", qop="auth", nonce="{nonce}"'

    def _nonce_ok(self, nonce: str) -> bool:
        stamp, mac = nonce[:-20], nonce[-20:]
        return bool(stamp) and hmac.compare_digest(mac, self._mac(stamp))

    def verify(self, method: str, path: str, header: str | None) -> str | None:
        """The user name when ``header`` is a valid answer to our challenge."""
        if not header or header[:7].lower() != "digest ":
            return None
        fields = parse_keqv_list(parse_http_list(header[7:]))
        user = fields.get("username", "")
        password = self.users.get(user)
        nonce = fields.get("nonce", "")
        algorithm = fields.get("algorithm", "MD5").upper()
        if (
            password is None
            or fields.get("realm") != self.realm
            or fields.get("uri") != path
            or algorithm not in ("MD5", "MD5-SESS")
            or not self._nonce_ok(nonce)
        ):
            return None

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - the protocol's hash

        ha1 = md5(f"{user}:{self.realm}:{password}")
        cnonce = fields.get("cnonce", "")
        if algorithm == "MD5-SESS":
            ha1 = md5(f"{ha1}:{nonce}:{cnonce}")
        ha2 = md5(f"{method}:{path}")
        qop = fields.get("qop")
        if qop:
            expected = md5(f"{ha1}:{nonce}:{fields.get('nc', '')}:{cnonce}:{qop}:{ha2}")
        else:
            expected = md5(f"{ha1}:{nonce}:{ha2}")
        return user if hmac.compare_digest(expected, fields.get("response", "")) else None


class TokenAuthority:
    """Issues and checks the JWTs of one gateway (shared with its fake cloud).

    ``clock`` (unix seconds) dates the tokens and decides when they expire; a
    test may set it to a fake clock.
    """

    def __init__(self, serial: str, clock: Callable[[], float] = time.time) -> None:
        self.serial = serial
        self.clock = clock
        self._secret = secrets.token_bytes(32)
        self._accepted: set[str] = set()
        self._sessions: dict[str, tuple[str, float]] = {}  # sessionId -> (jti, exp)
        self._lock = threading.Lock()

    def issue(
        self,
        lifetime: float = 3600,
        user: str = "owner",
        *,
        username: str = "owner@example.com",
        serial: str | None = None,
    ) -> str:
        """A token for ``serial`` (default: this gateway) valid ``lifetime`` seconds."""
        if user not in ("owner", "installer"):
            raise ValueError(f"user must be 'owner' or 'installer', not {user!r}")
        now = int(self.clock())
        jti = str(uuid.uuid4())
        claims = {
            "aud": serial or self.serial,
            "iss": "Entrez",
            "enphaseUser": user,
            "exp": now + round(lifetime),
            "iat": now,
            "jti": jti,
            "username": username,
            "serial": serial or self.serial,
        }
        token = jwt.encode(claims, self._secret, algorithm="HS256")
        with self._lock:
            self._accepted.add(jti)
        return token

    def _claims(self, token: str) -> tuple[str, float] | None:
        """(jti, exp) of a well-signed, unexpired token for this gateway."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=self.serial,
                options={
                    "require": ["exp", "iat", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            return None
        jti, exp = claims.get("jti"), claims.get("exp")
        if not isinstance(jti, str) or not isinstance(exp, int | float) or exp <= self.clock():
            return None
        return (jti, float(exp))

    def verify(self, token: str) -> bool:
        claims = self._claims(token)
        with self._lock:
            return claims is not None and claims[0] in self._accepted

    def open_session(self, token: str) -> str | None:
        """A ``sessionId`` for an accepted token (what /auth/check_jwt sets)."""
        claims = self._claims(token)
        with self._lock:
            if claims is None or claims[0] not in self._accepted:
                return None
            session = secrets.token_hex(16)
            self._sessions[session] = claims
            return session

    def session_ok(self, session: str) -> bool:
        with self._lock:
            jti, exp = self._sessions.get(session, ("", 0.0))
            return jti in self._accepted and exp > self.clock()

    def revoke_all(self) -> None:
        """Refuse every token issued so far (as a gateway does after a reboot)."""
        with self._lock:
            self._accepted.clear()
            self._sessions.clear()
