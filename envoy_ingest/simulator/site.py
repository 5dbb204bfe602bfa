"""The simulated site: its devices and their fixed properties, derived from the
config and the gateway serial alone (the same config always gives the same site)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from envoy_ingest.energy import localday
from envoy_ingest.errors import SettingsError
from envoy_ingest.simulator.backup import Generator
from envoy_ingest.simulator.config import SimulatorConfig

# Device ratings (W, Wh) by kind: IQ7/IQ8-class microinverters, Enphase AC Battery,
# IQ Battery 3(T) as the recorded gateways report them.
INVERTER_RATING = {"legacy": 240.0, "modern": 295.0}
BATTERY = {
    "acb": {"capacity_wh": 1200.0, "max_w": 270.0, "reserve_pct": 5.0},
    "iq": {"capacity_wh": 3500.0, "max_w": 1280.0, "reserve_pct": 15.0},
}
# Household load per phase (3-phase sites); 1-phase sites carry it all on L1.
LOAD_SHARES_3PH = (0.42, 0.33, 0.25)


def unit_hash(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts (stable across runs)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _serials(seed: str, prefix: str, count: int) -> tuple[str, ...]:
    base = int(unit_hash(seed, prefix) * 10**8)
    return tuple(f"{prefix}{(base + 7919 * i) % 10**8:08d}" for i in range(count))


def resolve_tz(name: str) -> tzinfo:
    if name.lower() == "local":
        return localday.host_zone()
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as exc:
        raise SettingsError(f"simulator: unknown time zone {name!r}") from exc


class Calendar:
    """Local days of the gateway: the day counters reset at local midnight."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz

    def day_of(self, t: float) -> int:
        """The local date of ``t`` as a proleptic ordinal."""
        return localday.day_of(t, self.tz)

    def midnight(self, day: int) -> float:
        """Unix time of the start of local day ``day`` (an ordinal)."""
        return float(localday.midnight(day, self.tz))

    def standard_offset_hours(self) -> float:
        """UTC offset in January (no daylight saving) in hours."""
        jan = datetime(2024, 1, 15, 12, tzinfo=UTC).astimezone(self.tz)
        off = jan.utcoffset() or timedelta(0)
        return off.total_seconds() / 3600


@dataclass(frozen=True, slots=True)
class Site:
    serial: str
    family: str
    version: tuple[int, ...]
    inverter_serials: tuple[str, ...]
    inverter_weights: tuple[float, ...]  # share of the array's output (sum 1)
    inverter_offsets: tuple[int, ...]  # seconds into each 5-minute report cycle
    inverter_phases: tuple[int, ...]  # 0, 1, 2 (L1..L3)
    inverter_rating: float
    battery_kind: str  # none | acb | iq
    battery_serials: tuple[str, ...]
    battery_capacity_wh: float  # each
    battery_max_w: float  # each
    battery_reserve_pct: float
    phases: int
    metered: bool
    latitude: float
    longitude: float
    calendar: Calendar
    install_time: int
    voltage: float  # per phase
    frequency: float
    motion: bool = False  # powers move within the minute (motion.py)
    storage_ct: bool = False
    system_controller: bool = False
    generator: Generator | None = None

    @property
    def array_w(self) -> float:
        """Peak AC output of the whole array (W)."""
        return self.inverter_rating * len(self.inverter_serials)

    @property
    def battery_count(self) -> int:
        return len(self.battery_serials)

    @property
    def storage_wh(self) -> float:
        return self.battery_capacity_wh * self.battery_count

    @property
    def storage_max_w(self) -> float:
        return self.battery_max_w * self.battery_count

    def production_shares(self) -> tuple[float, ...]:
        """Share of production on each phase (from the inverters' phases)."""
        shares = [0.0] * self.phases
        for w, ph in zip(self.inverter_weights, self.inverter_phases, strict=True):
            shares[ph % self.phases] += w
        total = sum(shares)
        if total <= 0:
            return tuple(1.0 / self.phases for _ in shares)
        return tuple(s / total for s in shares)

    def load_shares(self) -> tuple[float, ...]:
        return LOAD_SHARES_3PH if self.phases == 3 else (1.0,)

    def battery_shares(self) -> tuple[float, ...]:
        if self.phases == 1 or not self.battery_count:
            return tuple(1.0 / self.phases for _ in range(self.phases))
        counts = [0] * self.phases
        for i in range(self.battery_count):
            counts[i % self.phases] += 1
        return tuple(c / self.battery_count for c in counts)


def build_site(cfg: SimulatorConfig, start_time: float) -> Site:
    seed = cfg.serial
    n = cfg.inverters
    raw = [0.9 + 0.1 * unit_hash(seed, "w", i) for i in range(n)]
    total = sum(raw) or 1.0
    calendar = Calendar(resolve_tz(cfg.tz))
    longitude = (
        cfg.longitude if cfg.longitude is not None else calendar.standard_offset_hours() * 15
    )
    kind = cfg.batteries if cfg.battery_total else "none"
    spec = BATTERY.get(kind, {"capacity_wh": 0.0, "max_w": 0.0, "reserve_pct": 0.0})
    battery_prefix = "1219" if kind == "acb" else "4923"
    three = cfg.cts == "3phase"
    return Site(
        serial=cfg.serial,
        family=cfg.family,
        version=cfg.version,
        inverter_serials=_serials(seed, "1221" if cfg.family == "legacy" else "1223", n),
        inverter_weights=tuple(r / total for r in raw),
        inverter_offsets=tuple(int(unit_hash(seed, "o", i) * 300) for i in range(n)),
        inverter_phases=tuple(i % 3 if three else 0 for i in range(n)),
        inverter_rating=INVERTER_RATING[cfg.family],
        battery_kind=kind,
        battery_serials=_serials(seed, battery_prefix, cfg.battery_total) if kind != "none" else (),
        battery_capacity_wh=spec["capacity_wh"],
        battery_max_w=spec["max_w"],
        battery_reserve_pct=spec["reserve_pct"],
        phases=cfg.phases,
        metered=cfg.metered,
        latitude=cfg.latitude,
        longitude=longitude,
        calendar=calendar,
        install_time=int(start_time) - 3 * 365 * 86400 - int(unit_hash(seed, "i") * 86400),
        voltage=230.0 if three else 240.0,
        frequency=50.0 if three else 60.0,
        motion=cfg.motion,
        storage_ct=cfg.storage_ct,
        system_controller=cfg.system_controller,
        generator=Generator() if cfg.generator else None,
    )
