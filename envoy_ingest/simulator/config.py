"""What to simulate: one frozen value, validated once, reusable across runs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from envoy_ingest.envoy.firmware import parse_version
from envoy_ingest.errors import SettingsError

Family = Literal["legacy", "modern"]
BatteryKind = Literal["none", "acb", "iq"]
CtKind = Literal["none", "1phase", "3phase"]

#: Firmware reported in /info when none is given (as a real gateway writes it).
DEFAULT_SOFTWARE: dict[str, str] = {"legacy": "D5.0.62", "modern": "D8.2.4345"}


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """A simulated gateway (or, with ``fixture``, a recorded one).

    ``legacy``: firmware < 7, plain http, digest auth (users ``envoy`` and
    ``installer``, passwords derived from the serial). ``modern``: firmware >= 7,
    https with a self-signed certificate, JWT Bearer auth.
    ``time_scale`` > 1 runs the simulated clock faster; 0 freezes it.
    ``tz`` is the gateway's local zone ("UTC", an IANA name, or "local"): the day
    counters reset at its midnight, the household load follows its clock.
    A backup site: ``storage_ct`` (a storage CT in ``/ivp/meters``, with CTs),
    ``system_controller`` (an IQ System Controller: its grid relay in
    ``/ivp/ensemble/inventory``, the storage settings in ``/admin/lib/tariff``)
    and ``generator`` (a standby generator behind it, ``/ivp/ensemble/generator``).
    """

    family: Family = "modern"
    firmware: str | None = None
    inverters: int = 12
    batteries: BatteryKind = "none"
    battery_count: int = 2
    cts: CtKind = "none"
    storage_ct: bool = False
    system_controller: bool = False
    generator: bool = False
    latency: float = 0.0
    serial: str = "122238082690"
    host: str = "127.0.0.1"
    port: int = 0
    time_scale: float = 1.0
    start_time: float | None = None
    fixture: Path | None = None
    tz: str = "UTC"
    latitude: float = 45.0
    longitude: float | None = None  # default: from the zone's standard UTC offset
    cloud_port: int = 0
    motion: bool = False  # readings move every second: clouds pass, a load steps

    def __post_init__(self) -> None:
        def bad(msg: str) -> SettingsError:
            return SettingsError(f"simulator: {msg}")

        if self.family not in ("legacy", "modern"):
            raise bad(f"family must be 'legacy' or 'modern', not {self.family!r}")
        if self.batteries not in ("none", "acb", "iq"):
            raise bad(f"batteries must be 'none', 'acb' or 'iq', not {self.batteries!r}")
        if self.cts not in ("none", "1phase", "3phase"):
            raise bad(f"cts must be 'none', '1phase' or '3phase', not {self.cts!r}")
        if self.storage_ct and (self.cts == "none" or self.batteries == "none"):
            raise bad("storage_ct needs CTs (cts) and batteries")
        if self.generator and not self.system_controller:
            raise bad("a generator needs the system controller (system_controller)")
        if not 0 <= self.inverters <= 500:
            raise bad(f"inverters must be between 0 and 500, not {self.inverters}")
        if not 0 <= self.battery_count <= 32:
            raise bad(f"battery_count must be between 0 and 32, not {self.battery_count}")
        if not (math.isfinite(self.latency) and self.latency >= 0):
            raise bad(f"latency must be >= 0 seconds, not {self.latency}")
        if not (math.isfinite(self.time_scale) and self.time_scale >= 0):
            raise bad(f"time_scale (--speed) must be >= 0, not {self.time_scale}")
        if not (self.serial.isalnum() and len(self.serial) >= 6):
            raise bad(f"serial must be at least 6 letters or digits, not {self.serial!r}")
        if not 0 <= self.port <= 65535 or not 0 <= self.cloud_port <= 65535:
            raise bad("port must be between 0 and 65535")
        if not -60 <= self.latitude <= 60:
            raise bad(f"latitude must be between -60 and 60, not {self.latitude}")
        if self.fixture is None:
            version = self.version
            if not version:
                raise bad(f"firmware {self.firmware!r} is not a version like '7.6.175'")
            if self.family == "legacy" and version[0] >= 7:
                raise bad(f"legacy gateways run firmware < 7, not {self.firmware}")
            if self.family == "modern" and version[0] < 7:
                raise bad(f"modern gateways run firmware >= 7, not {self.firmware}")

    @property
    def software(self) -> str:
        """The firmware as /info reports it, e.g. ``"D8.2.4345"``."""
        if self.firmware is None:
            return DEFAULT_SOFTWARE[self.family]
        fw = self.firmware.strip()
        return fw if fw[:1].isalpha() else f"D{fw}"

    @property
    def version(self) -> tuple[int, ...]:
        return parse_version(self.software)

    @property
    def battery_total(self) -> int:
        """Number of batteries actually installed (0 when ``batteries="none"``)."""
        return 0 if self.batteries == "none" else self.battery_count

    @property
    def phases(self) -> int:
        return 3 if self.cts == "3phase" else 1

    @property
    def metered(self) -> bool:
        return self.cts != "none"
