"""The sun and the household of the simulated site: instantaneous powers, pure
functions of simulated time (``model.py`` tabulates them per local day)."""

from __future__ import annotations

import math

from envoy_ingest.simulator.site import Site, unit_hash


def solar_day(site: Site, t: float) -> int:
    return math.floor((t + site.longitude * 240.0) / 86400)


def _declination(day: int) -> float:
    doy = (day + 3) % 365  # unix day 0 was 1 January
    return math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365)


def sin_elevation(site: Site, t: float) -> float:
    """Sine of the sun's elevation above the horizon at the site."""
    solar = (t + site.longitude * 240.0) % 86400  # seconds since solar midnight
    hour_angle = (solar / 3600 - 12) * math.radians(15)
    lat = math.radians(site.latitude)
    dec = _declination(solar_day(site, t))
    return math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * math.cos(hour_angle)


def sun_events(site: Site, solar_day: int) -> tuple[float, float]:
    """(sunrise, sunset) unix times of a solar day (equal at noon if the sun stays down)."""
    noon = solar_day * 86400 - site.longitude * 240.0 + 43200
    x = -math.tan(math.radians(site.latitude)) * math.tan(_declination(solar_day))
    half = math.acos(max(-1.0, min(1.0, x))) / math.radians(15) * 3600
    return noon - half, noon + half


def clearness(site: Site, t: float) -> float:
    """Share of clear-sky irradiance reaching the panels (0.35 .. 1)."""
    day = solar_day(site, t)
    u = unit_hash(site.serial, "sky", day)
    floor = 0.35 + 0.65 * float(u**0.35)
    phase = 2 * math.pi * unit_hash(site.serial, "cloud", day)
    wave = 0.5 * (1 + math.sin(2 * math.pi * t / 5400 + phase))
    wave *= 0.5 + 0.5 * math.sin(2 * math.pi * t / 2700 + 2 * phase)
    return floor + (1 - floor) * wave


def production_w(site: Site, t: float) -> float:
    """AC output of the whole array (W)."""
    s = sin_elevation(site, t)
    if s <= 0 or not site.inverter_serials:
        return 0.0
    return site.array_w * float(s**1.2) * (0.75 + 0.25 * s) * clearness(site, t)


def _bump(h: float, centre: float, width: float) -> float:
    return math.exp(-0.5 * ((h - centre) / width) ** 2)


def load_w(site: Site, t: float, day_start: float) -> float:
    """Household consumption (W); ``day_start`` is local midnight of ``t``'s day."""
    h = (t - day_start) / 3600
    day = site.calendar.day_of(day_start + 1)
    scale = 0.85 + 0.3 * unit_hash(site.serial, "load", day)
    fridge = 90 * (0.5 + 0.5 * math.sin(2 * math.pi * t / 2400))
    profile = 650 * _bump(h, 7.3, 0.6) + 300 * _bump(h, 12.8, 1.5) + 1200 * _bump(h, 19.2, 1.4)
    return scale * (260 + fridge + profile)
