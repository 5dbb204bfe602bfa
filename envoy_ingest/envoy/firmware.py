"""What a gateway is: parsed from its ``/info`` XML (no auth on any firmware).

::

    <envoy_info>
      <time>1691542702</time>
      <device>
        <sn>121426016034</sn>
        <pn>800-00069-r05</pn>
        <software>R3.9.36</software>     <!-- drop the first letter -->
        <imeter>true</imeter>             <!-- metering hardware; absent on old firmware -->
      </device>
      <web-tokens>true</web-tokens>       <!-- 7.x and later: JWT auth -->
    </envoy_info>
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from envoy_ingest.errors import GatewayResponseError

_VERSION_RE = re.compile(r"^[A-Za-z]?(\d+(?:\.\d+)*)")


def parse_version(software: str) -> tuple[int, ...]:
    """``"D7.6.175"`` -> ``(7, 6, 175)``; unparseable -> ``()``."""
    m = _VERSION_RE.match(software.strip())
    if not m:
        return ()
    return tuple(int(p) for p in m.group(1).split("."))


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    serial: str
    software: str  # as reported, e.g. "D7.6.175"
    version: tuple[int, ...]  # (7, 6, 175)
    part_number: str | None = None
    imeter: bool | None = None  # None: firmware does not say
    web_tokens: bool = False
    time: int | None = None

    @property
    def firmware(self) -> str:
        """The version without the leading letter, e.g. ``"7.6.175"``."""
        return ".".join(str(p) for p in self.version) if self.version else self.software

    @property
    def uses_jwt(self) -> bool:
        """Firmware 7 and later authenticate with a JWT (Bearer)."""
        return self.web_tokens or (bool(self.version) and self.version[0] >= 7)

    def at_least(self, *version: int) -> bool:
        return self.version >= version


def _text(root: ET.Element, path: str) -> str | None:
    el = root.find(path)
    if el is None or el.text is None:
        return None
    return el.text.strip()


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.lower() in {"true", "1", "yes"}


def parse_info(xml_text: str) -> GatewayInfo:
    """Parse ``/info``. Raises :class:`GatewayResponseError` when it is not the expected XML."""
    try:
        root = ET.fromstring(xml_text)  # noqa: S314
    except ET.ParseError as exc:
        raise GatewayResponseError(f"/info is not XML ({exc})") from None
    serial = _text(root, "device/sn")
    software = _text(root, "device/software")
    if not serial or not software:
        raise GatewayResponseError("/info lacks device/sn or device/software")
    time_text = _text(root, "time")
    return GatewayInfo(
        serial=serial,
        software=software,
        version=parse_version(software),
        part_number=_text(root, "device/pn"),
        imeter=_flag(_text(root, "device/imeter")),
        web_tokens=bool(_flag(_text(root, "web-tokens"))),
        time=int(time_text) if time_text and time_text.isdigit() else None,
    )
