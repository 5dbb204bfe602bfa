"""Where a gateway listens: the one parser of the hosts and URLs the worker reads.

A gateway's ``host`` setting may be written many ways that mean one gateway:
``envoy.local``, ``ENVOY.LOCAL``, ``https://Envoy.local/``, ``envoy.local:443``.
:meth:`GatewayAddress.parse` reads each into one normalized form, by these rules:

- the scheme, when given, is ``http`` or ``https`` (any case); without one the
  client tries https, then http; a port of 443 without a scheme means https and
  80 means http;
- the host is lower-cased; an IPv6 address is written in brackets
  (``[fe80::1]:8443``; a bare ``fe80::1`` is read too, without a port);
- a port that is its scheme's default (443 for https, 80 for http) is dropped;
  any other port stays: it can be a forward to another gateway behind one address;
- a trailing ``/`` is dropped; a path, query, fragment or ``user@`` is refused.

So ``https://Envoy.local``, ``envoy.local:443`` and ``ENVOY.LOCAL`` are all
``https://envoy.local`` or ``envoy.local``, and their :attr:`GatewayAddress.key`
(the host and a non-default port, what names the gateway when no serial is
configured) is ``envoy.local`` for each.

:class:`Origin` is where one connection goes (scheme, host, port, the port
always given): what a request's URL comes down to (:func:`split_url`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import NamedTuple

DEFAULT_PORTS = {"http": 80, "https": 443}
#: A bare port that says the scheme (``envoy.local:443`` is https).
_SCHEME_OF_PORT = {443: "https", 80: "http"}
_NAME_RE = re.compile(r"^[^\s/?#@\[\]\\:%]+$")


class Origin(NamedTuple):
    """Where a connection goes: scheme, host (lower-case; an IPv6 address without
    brackets, as sockets take it) and port."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, scheme: str, host: str, port: int | None) -> Origin:
        """The origin with the scheme's default port when ``port`` is None."""
        return cls(scheme, host, port if port is not None else DEFAULT_PORTS.get(scheme, 80))


def split_url(text: str) -> tuple[str | None, str, int | None, str]:
    """``"HTTPS://[FE80::1]:8443/ivp/meters?x=1"`` -> ``("https", "fe80::1", 8443,
    "/ivp/meters?x=1")``: the scheme (lower-case, or None), the host (lower-case,
    an IPv6 address without brackets), the port (or None) and the rest (path,
    query and fragment, ``""`` when none). Raises ValueError saying what is wrong."""
    text = text.strip()
    scheme: str | None = None
    if "://" in text:
        given, _, text = text.partition("://")
        scheme = given.lower()
        if scheme not in DEFAULT_PORTS:
            raise ValueError("scheme must be http:// or https://")
    cut = min((i for i in (text.find(c) for c in "/?#") if i >= 0), default=len(text))
    authority, rest = text[:cut], text[cut:]
    if "@" in authority:
        raise ValueError("no user@ before the host: give the user and password as their own keys")
    host, port = _split_authority(authority)
    return scheme, host, port, rest


def _split_authority(authority: str) -> tuple[str, int | None]:
    if not authority:
        raise ValueError("no host: give a host name or address, host:port or http(s)://host:port")
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ValueError("an IPv6 address opened with [ is not closed with ]")
        host, after = authority[1:end], authority[end + 1 :]
        if after and not after.startswith(":"):
            raise ValueError("only :port may follow an IPv6 address in brackets")
        return _ipv6(host), _port(after[1:]) if after else None
    if authority.count(":") > 1:  # a bare IPv6 address: no port can follow it
        return _ipv6(authority), None
    host, sep, port = authority.partition(":")
    if not _NAME_RE.match(host):
        raise ValueError(f"{host!r} is not a host name or address")
    return host.lower(), _port(port) if sep else None


def _ipv6(text: str) -> str:
    try:
        return ipaddress.IPv6Address(text).compressed.lower()
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv6 address") from None


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"the port must be a number from 1 to 65535, not {text!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class GatewayAddress:
    """A gateway's normalized ``host`` setting: the scheme it forces (None: https,
    then http), its host and its port (None: the scheme's default)."""

    scheme: str | None
    host: str
    port: int | None

    @classmethod
    def parse(cls, text: str) -> GatewayAddress:
        """Read a ``host`` setting by the rules above; ValueError says what is wrong."""
        scheme, host, port, rest = split_url(text)
        if rest not in ("", "/"):
            raise ValueError(
                "must be the gateway's address only (host, host:port or http(s)://host:port), "
                f"without a path or query: {rest!r}"
            )
        if scheme is None and port in _SCHEME_OF_PORT:
            scheme = _SCHEME_OF_PORT[port]
        if scheme is not None and port == DEFAULT_PORTS[scheme]:
            port = None
        return cls(scheme, host, port)

    @property
    def key(self) -> str:
        """The host and a port that is not the default: ``envoy.local``,
        ``[fe80::1]:8443``. What names the gateway when no serial is configured."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def origin(self, scheme: str) -> Origin:
        """Where a connection with ``scheme`` goes."""
        return Origin.of(scheme, self.host, self.port)

    def base_url(self, scheme: str) -> str:
        """``https://envoy.local``: the URL the gateway's paths are appended to."""
        return f"{scheme}://{self.key}"

    def __str__(self) -> str:
        return self.base_url(self.scheme) if self.scheme else self.key
