"""One HTTP answer of the simulated gateway, and the standard ones."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

JSON = "application/json"
HTML = "text/html"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: str | None = JSON
    headers: tuple[tuple[str, str], ...] = ()


def json_answer(obj: Any, *, indent: int | None = None, status: int = 200) -> Answer:
    """JSON as the gateway writes it: compact, or indented like its /ivp pages."""
    if indent is None:
        text = json.dumps(obj, separators=(",", ":"))
    else:
        text = json.dumps(obj, indent=indent)
    return Answer(status, text.encode(), JSON)


# What a gateway answers for a path it does not serve.
NOT_FOUND = Answer(404, b'{ "error" : "404 - Not Found" }', "application/json; charset=ISO-8859-4")

# Legacy firmware: a digest challenge (the header is added by the server).
LEGACY_UNAUTHORIZED = Answer(401, b"<html><body><h2>401 Unauthorized</h2></body></html>", HTML)

# Firmware >= 7 without a valid token: an HTML page sending the browser to /home.
MODERN_UNAUTHORIZED = Answer(
    401,
    b"<!DOCTYPE html>\n<html>\n<head>\n<title>401 Unauthorized</title>\n"
    b'<meta http-equiv="refresh" content="0; url=/home">\n</head>\n'
    b'<body><script>window.location.replace("/home");</script>'
    b'<a href="/home">401 Unauthorized</a></body>\n</html>\n',
    HTML,
)

VALID_TOKEN = Answer(200, b"<!DOCTYPE html><h2>Valid token.</h2>\n", HTML)


def error_page(status: int) -> Answer:
    """A short HTML error page as the gateway's web server writes it."""
    reasons = {
        400: "Bad Request",
        403: "Forbidden",
        404: "Not Found",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Temporarily Unavailable",
        504: "Gateway Time-out",
    }
    title = f"{status} {reasons.get(status, 'Error')}"
    body = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>openresty</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return Answer(status, body.encode(), HTML)
