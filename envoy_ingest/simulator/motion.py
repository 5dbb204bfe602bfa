"""Second-by-second motion of the simulated site (``SimulatorConfig.motion``):
clouds that pass and a load that steps, for the live job to show.

The day tables of :mod:`.model` are on a 60-second grid; with motion on, the
instantaneous powers also move within the minute: production is shaded by
passing clouds (some two-minute windows have one: it comes in over 10 s,
shades 30 to 80 %, and goes), the household switches an appliance on and off
(a kettle, a heat pump, a dryer: 800 to 2,000 W for 15 to 60 s in some
90-second windows), and both carry a 1 % flicker that changes every second.
Pure functions of the time, so tests can compute what was served; the energy
counters stay those of the grid (motion moves powers, not counters).
"""

from __future__ import annotations

import math

from envoy_ingest.simulator.site import Site, unit_hash

CLOUD_WINDOW = 120  # seconds; a window has a cloud or not
CLOUD_SHARE = 0.4  # of the windows
APPLIANCE_WINDOW = 90
APPLIANCE_SHARE = 0.35
APPLIANCE_WATTS = (2000.0, 1200.0, 800.0)
FLICKER = 0.01


def _flicker(site: Site, what: str, t: float) -> float:
    return 1 + FLICKER * (unit_hash(site.serial, what, math.floor(t)) - 0.5)


def cloud_factor(site: Site, t: float) -> float:
    """Share of the clear output reaching the panels at ``t`` (0.2 .. 1)."""
    k = math.floor(t / CLOUD_WINDOW)
    if unit_hash(site.serial, "cloud-passes", k) >= CLOUD_SHARE:
        return 1.0
    depth = 0.3 + 0.5 * unit_hash(site.serial, "cloud-depth", k)
    start = 0.5 * CLOUD_WINDOW * unit_hash(site.serial, "cloud-start", k)
    length = 20 + 40 * unit_hash(site.serial, "cloud-length", k)
    x = t - k * CLOUD_WINDOW - start
    if x <= 0 or x >= length:
        return 1.0
    edge = min(x, length - x, 10.0) / 10.0  # in and out over 10 s
    return 1 - depth * edge


def appliance_w(site: Site, t: float) -> float:
    """The stepping load at ``t`` (W): on at full power, or off."""
    k = math.floor(t / APPLIANCE_WINDOW)
    if unit_hash(site.serial, "appliance", k) >= APPLIANCE_SHARE:
        return 0.0
    which = int(len(APPLIANCE_WATTS) * unit_hash(site.serial, "appliance-kind", k))
    on = 0.6 * APPLIANCE_WINDOW * unit_hash(site.serial, "appliance-on", k)
    length = 15 + 45 * unit_hash(site.serial, "appliance-length", k)
    x = t - k * APPLIANCE_WINDOW - on
    return APPLIANCE_WATTS[which] if 0 <= x < length else 0.0


def moved(site: Site, t: float, production_w: float, consumption_w: float) -> tuple[float, float]:
    """Production and consumption at ``t`` with the motion added."""
    production = production_w * cloud_factor(site, t) * _flicker(site, "flicker-p", t)
    consumption = (consumption_w + appliance_w(site, t)) * _flicker(site, "flicker-c", t)
    return production, consumption
