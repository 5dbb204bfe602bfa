"""The gateway's local days: its time zone, and the local date of a report time.

The day counters of a gateway (``whToday``) restart at its local midnight, so
days are cut in the zone configured per gateway (``timezone``, an IANA name),
by default the host's own zone.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOCALTIME = Path("/etc/localtime")
# The zone read from LOCALTIME, by the file's identity: one object for all the
# gateways of a fleet (a zone read from a file is not cached by ZoneInfo).
_localtime: tuple[tuple[int, int, int], ZoneInfo] | None = None


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError with a clear message when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from exc


def host_zone() -> tzinfo:
    """The host's zone with its daylight-saving rules: ``$TZ``, else
    ``/etc/localtime``, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    global _localtime
    try:
        st = LOCALTIME.stat()
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if _localtime is None or _localtime[0] != key:
            with LOCALTIME.open("rb") as fh:
                _localtime = key, ZoneInfo.from_file(fh, key="localtime")
        return _localtime[1]
    except (OSError, ValueError):
        return UTC


# Both are pure and asked again and again for the same arguments (every counter
# of a point, every point of a poll at one report time): remembered.
@lru_cache(maxsize=1024)
def day_of(t: float, tz: tzinfo) -> int:
    """The local date of unix time ``t`` as a proleptic ordinal."""
    return datetime.fromtimestamp(t, tz).date().toordinal()


@lru_cache(maxsize=256)
def midnight(day: int, tz: tzinfo) -> int:
    """Unix time of the start of local day ``day`` (an ordinal)."""
    d = date.fromordinal(day)
    return int(datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC).timestamp())
