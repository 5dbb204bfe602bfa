"""Local passwords of firmware < 7 gateways, derived from the serial number.

User ``envoy``: the last 6 characters of the serial. User ``installer``: a
scramble of an MD5 digest of the serial and user name (see ../shared/ENVOY.md).
Used by the client (to log in) and by the simulator (to check logins).
"""

from __future__ import annotations

import hashlib


def envoy_password(serial: str) -> str:
    return serial[-6:]


def installer_password(serial: str, user: str = "installer") -> str:
    digest = hashlib.md5(  # noqa: S324 - the gateway's own scheme, not for security
        f"[e]{user}@enphaseenergy.com#{serial} EnPhAsE eNeRgY ".encode()
    ).hexdigest()
    c0 = digest.count("0")
    c1 = digest.count("1")
    out = []
    for ch in digest[::-1][:8]:
        if c0 in (3, 6, 9):
            c0 = min(max(c0 - 1, 0), 20)
        if c1 in (9, 15):
            c1 = min(max(c1 - 1, 0), 26)
        if ch == "0":
            out.append(chr(ord("f") + c0))
            c0 -= 1
        elif ch == "1":
            out.append(chr(ord("@") + c1))
            c1 -= 1
        else:
            out.append(ch)
    return "".join(out)


def default_password(serial: str, username: str) -> str:
    """The factory password of ``username`` (``envoy`` or ``installer``)."""
    return (
        installer_password(serial, username) if username == "installer" else envoy_password(serial)
    )
