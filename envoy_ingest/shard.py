"""Shards: N workers share a fleet, each polling the gateways that hash to it.

``--shard I/N`` (or ``ENVOY_INGEST_SHARD=I/N``, or ``shard`` in the settings)
makes a worker poll only the gateways whose rendezvous hash picks shard ``I``
of ``N`` (0-based). ``auto/N`` takes ``I`` from the host name's trailing
number: a Kubernetes StatefulSet names its pods ``<name>-0``, ``<name>-1``...

Rendezvous (highest random weight) hashing: each gateway goes to the shard
with the highest ``hash(shard, identity)``. Every gateway lands on exactly one
shard, and when N grows by one only the gateways the new shard wins move
(about 1/(N+1) of them); the others stay where their spool and token cache are.
The identity is the gateway's one identity (:attr:`GatewaySettings.identity`):
its serial when the settings give one, else its normalized host, so every
spelling of one address is on one shard. Give serials in a fleet so that a
gateway keeps its shard when its address changes.
"""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envoy_ingest.gateway import GatewaySettings

_SPEC_RE = re.compile(r"^\s*(\d+|auto)\s*/\s*(\d+)\s*$")
_ORDINAL_RE = re.compile(r"-(\d+)$")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(spec: str, hostname: str | None = None) -> Shard:
    """``"2/5"`` -> Shard(2, 5); ``"auto/5"`` reads the index from ``hostname``
    (default: this machine's, e.g. ``envoy-ingest-2``). Raises ValueError."""
    m = _SPEC_RE.match(spec)
    if m is None:
        raise ValueError("must be I/N (this worker's shard I of N, from 0) or auto/N")
    count = int(m.group(2))
    if count < 1:
        raise ValueError("N (the number of shards) must be at least 1")
    if m.group(1) == "auto":
        host = hostname if hostname is not None else socket.gethostname()
        ordinal = _ORDINAL_RE.search(host.split(".", 1)[0])
        if ordinal is None:
            raise ValueError(
                f"auto/N takes the shard from a host name ending in -<number> "
                f"(a StatefulSet pod's), but the host name is {host!r}"
            )
        index = int(ordinal.group(1))
    else:
        index = int(m.group(1))
    if index >= count:
        raise ValueError(f"shard {index} does not exist with {count} shards (0 to {count - 1})")
    return Shard(index, count)


def _weight(shard: int, identity: str) -> int:
    digest = hashlib.blake2b(f"{shard}\x00{identity}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_of(identity: str, count: int) -> int:
    """The shard (0 to ``count - 1``) that owns ``identity``."""
    return max(range(count), key=lambda s: _weight(s, identity))


def select(gateways: Sequence[GatewaySettings], shard: Shard | None) -> list[GatewaySettings]:
    """The gateways ``shard`` polls (all of them without a shard)."""
    if shard is None or shard.count == 1:
        return list(gateways)
    return [gw for gw in gateways if shard_of(gw.identity, shard.count) == shard.index]
