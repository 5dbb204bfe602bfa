"""The physics of the simulated site: pure functions of simulated time.

Production follows the sun's elevation (latitude, day of year, solar time) times
a cloudiness that changes from day to day; the household load follows a daily
profile; the batteries charge from surplus and cover the deficit, within their
power and between their reserve and 100 %. Each local day is tabulated on a
60-second grid (the battery needs its history), starting a week before the
simulation starts, so every value is a function of the time alone: asking twice
gives the same answer, and counters only grow (net lifetime is signed, as on a
real gateway).
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass

from envoy_ingest.simulator.motion import moved
from envoy_ingest.simulator.site import Site, unit_hash

STEP = 60.0  # seconds between grid points of a day table
REPORT = 300  # microinverters report every 5 minutes
_TABLES_KEPT = 16
_YEAR = 365 * 86400


# --- the sun and the household: instantaneous powers -------------------------


def _solar_day(site: Site, t: float) -> int:
    return math.floor((t + site.longitude * 240.0) / 86400)


def _declination(day: int) -> float:
    doy = (day + 3) % 365  # unix day 0 was 1 January
    return math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365)


def sin_elevation(site: Site, t: float) -> float:
    """Sine of the sun's elevation above the horizon at the site."""
    solar = (t + site.longitude * 240.0) % 86400  # seconds since solar midnight
    hour_angle = (solar / 3600 - 12) * math.radians(15)
    lat = math.radians(site.latitude)
    dec = _declination(_solar_day(site, t))
    return math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * math.cos(hour_angle)


def sun_events(site: Site, solar_day: int) -> tuple[float, float]:
    """(sunrise, sunset) unix times of a solar day (equal at noon if the sun stays down)."""
    noon = solar_day * 86400 - site.longitude * 240.0 + 43200
    x = -math.tan(math.radians(site.latitude)) * math.tan(_declination(solar_day))
    half = math.acos(max(-1.0, min(1.0, x))) / math.radians(15) * 3600
    return noon - half, noon + half


def clearness(site: Site, t: float) -> float:
    """Share of clear-sky irradiance reaching the panels (0.35 .. 1)."""
    day = _solar_day(site, t)
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


# --- day tables ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayStart:
    """Counters and battery charge at local midnight."""

    prod_wh: float
    cons_wh: float
    import_wh: float
    export_wh: float
    soc: float


@dataclass(frozen=True, slots=True)
class DayTable:
    day: int
    start: float
    steps: int
    begin: DayStart
    production: array[float]  # W at each grid point (steps + 1)
    consumption: array[float]
    prod_max: array[float]  # running maximum of production since midnight
    battery: array[float]  # W over each step (steps), + discharging
    soc: array[float]  # % at each grid point
    e_prod: array[float]  # Wh since midnight at each grid point
    e_cons: array[float]
    e_import: array[float]
    e_export: array[float]
    battery_abs_max: array[float]  # running maximum of |battery| since midnight

    @property
    def end(self) -> DayStart:
        b = self.begin
        return DayStart(
            prod_wh=b.prod_wh + self.e_prod[-1],
            cons_wh=b.cons_wh + self.e_cons[-1],
            import_wh=b.import_wh + self.e_import[-1],
            export_wh=b.export_wh + self.e_export[-1],
            soc=self.soc[-1],
        )


def build_day(site: Site, day: int, begin: DayStart) -> DayTable:
    cal = site.calendar
    start = cal.midnight(day)
    steps = max(1, round((cal.midnight(day + 1) - start) / STEP))
    times = [start + k * STEP for k in range(steps + 1)]
    prod = array("d", (production_w(site, t) for t in times))
    cons = array("d", (load_w(site, t, start) for t in times))
    cap, max_w, reserve = site.storage_wh, site.storage_max_w, site.battery_reserve_pct
    hours = STEP / 3600
    battery, soc = array("d"), array("d", [begin.soc])
    e_prod, e_cons = array("d", [0.0]), array("d", [0.0])
    e_imp, e_exp = array("d", [0.0]), array("d", [0.0])
    pmax, bmax = array("d", [prod[0]]), array("d", [0.0])
    level = begin.soc
    for k in range(steps):
        surplus = prod[k] - cons[k]
        if cap <= 0:
            b = 0.0
        elif surplus > 0:
            b = -min(surplus, max_w, (100 - level) / 100 * cap / hours)
        else:
            b = min(-surplus, max_w, max(0.0, (level - reserve) / 100 * cap / hours))
        level = min(100.0, max(0.0, level - b * hours / cap * 100)) if cap > 0 else 0.0
        battery.append(b)
        soc.append(level)
        p_avg = (prod[k] + prod[k + 1]) / 2
        c_avg = (cons[k] + cons[k + 1]) / 2
        net = c_avg - p_avg - b
        e_prod.append(e_prod[-1] + p_avg * hours)
        e_cons.append(e_cons[-1] + c_avg * hours)
        e_imp.append(e_imp[-1] + max(net, 0.0) * hours)
        e_exp.append(e_exp[-1] + max(-net, 0.0) * hours)
        pmax.append(max(pmax[-1], prod[k + 1]))
        bmax.append(max(bmax[-1], abs(b)))
    return DayTable(
        day, start, steps, begin, prod, cons, pmax, battery, soc, e_prod, e_cons, e_imp, e_exp, bmax
    )


# --- the model: values at any time -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    """The site at one instant. Energies in Wh, powers in W (battery + = discharging)."""

    t: float
    production_w: float
    consumption_w: float
    battery_w: float
    net_w: float  # consumption - production - battery (+ = importing)
    soc: float  # % of the batteries' capacity
    stored_wh: float
    prod_today: float
    prod_7d: float
    prod_lifetime: float
    cons_today: float
    cons_7d: float
    cons_lifetime: float
    import_lifetime: float
    export_lifetime: float

    @property
    def net_lifetime(self) -> float:
        return self.import_lifetime - self.export_lifetime


@dataclass(frozen=True, slots=True)
class InverterReport:
    serial: str
    report_time: int  # lastReportDate: on the 5-minute cycle, frozen overnight
    watts: float  # mean output over the reported 5 minutes
    max_watts: float  # highest output of the report's day
    current: bool  # reported within the last 5 minutes (it is daylight)
    today_wh: float
    yesterday_wh: float
    week_wh: float
    lifetime_wh: float


class Model:
    """Values of the site at any (simulated) time; thread-safe."""

    def __init__(self, site: Site, first_time: float) -> None:
        self.site = site
        cal = site.calendar
        self.first_day = cal.day_of(first_time) - 8
        self._floor = cal.midnight(self.first_day)
        years = max(0.5, (self._floor - site.install_time) / _YEAR)
        prod = site.array_w * 1250 * years
        cons = 4_200_000 * years
        imp = max(0.55 * cons, cons - prod)
        self._starts: dict[int, DayStart] = {
            self.first_day: DayStart(prod, cons, imp, imp - cons + prod, 50.0)
        }
        self.inverter_offset_wh = 0.012 * prod + 1000 * len(site.inverter_serials)
        self._tables: OrderedDict[int, DayTable] = OrderedDict()
        self._lock = threading.Lock()

    # tables -------------------------------------------------------------------

    def table(self, day: int) -> DayTable:
        day = max(day, self.first_day)
        with self._lock:
            tab = self._tables.get(day)
            if tab is not None:
                self._tables.move_to_end(day)
                return tab
            known = max(d for d in self._starts if d <= day)
            while True:
                tab = build_day(self.site, known, self._starts[known])
                self._starts[known + 1] = tab.end
                if known == day:
                    break
                known += 1
            self._tables[day] = tab
            while len(self._tables) > _TABLES_KEPT:
                self._tables.popitem(last=False)
            return tab

    def day_start(self, day: int) -> DayStart:
        day = max(day, self.first_day)
        if day not in self._starts:
            self.table(day - 1)
        return self._starts[day]

    def _locate(self, t: float) -> tuple[DayTable, int, float]:
        t = max(t, self._floor)
        tab = self.table(self.site.calendar.day_of(t))
        x = min(max((t - tab.start) / STEP, 0.0), float(tab.steps))
        k = min(int(x), tab.steps - 1)
        return tab, k, x - k

    # values ------------------------------------------------------------------

    def reading(self, t: float) -> Reading:
        tab, k, f = self._locate(t)
        hours = f * STEP / 3600
        p = tab.production[k] + (tab.production[k + 1] - tab.production[k]) * f
        c = tab.consumption[k] + (tab.consumption[k + 1] - tab.consumption[k]) * f
        if self.site.motion:
            p, c = moved(self.site, t, p, c)
        b = tab.battery[k]
        cap = self.site.storage_wh
        soc = tab.soc[k] - (b * hours / cap * 100 if cap > 0 else 0.0)
        p_avg = (tab.production[k] + tab.production[k + 1]) / 2
        c_avg = (tab.consumption[k] + tab.consumption[k + 1]) / 2
        net_step = c_avg - p_avg - b
        e_prod = tab.e_prod[k] + (tab.production[k] + p) / 2 * hours
        e_cons = tab.e_cons[k] + (tab.consumption[k] + c) / 2 * hours
        begin = tab.begin
        week = self.day_start(tab.day - 6)
        return Reading(
            t=t,
            production_w=p,
            consumption_w=c,
            battery_w=b,
            net_w=c - p - b,
            soc=min(100.0, max(0.0, soc)),
            stored_wh=min(100.0, max(0.0, soc)) / 100 * cap,
            prod_today=e_prod,
            prod_7d=begin.prod_wh + e_prod - week.prod_wh,
            prod_lifetime=begin.prod_wh + e_prod,
            cons_today=e_cons,
            cons_7d=begin.cons_wh + e_cons - week.cons_wh,
            cons_lifetime=begin.cons_wh + e_cons,
            import_lifetime=begin.import_wh + tab.e_import[k] + max(net_step, 0.0) * hours,
            export_lifetime=begin.export_wh + tab.e_export[k] + max(-net_step, 0.0) * hours,
        )

    def prod_lifetime(self, t: float) -> float:
        tab, k, f = self._locate(t)
        p = tab.production[k] + (tab.production[k + 1] - tab.production[k]) * f
        return tab.begin.prod_wh + tab.e_prod[k] + (tab.production[k] + p) / 2 * f * STEP / 3600

    def max_production(self, t: float) -> float:
        """Highest array output since local midnight of ``t``."""
        tab, k, f = self._locate(t)
        p = tab.production[k] + (tab.production[k + 1] - tab.production[k]) * f
        return max(tab.prod_max[k], p)

    def max_battery(self, t: float) -> float:
        tab, k, _ = self._locate(t)
        return max(tab.battery_abs_max[k], abs(tab.battery[k]))

    def daily_production(self, day: int) -> float:
        """Energy produced on a whole local day (Wh)."""
        return self.day_start(day + 1).prod_wh - self.day_start(day).prod_wh

    # microinverters --------------------------------------------------------------

    def report_time(self, offset: int, t: float) -> tuple[int, bool]:
        """Last report of an inverter on the 5-minute cycle ``offset``: (time, current).

        An interval that saw no daylight is not reported: overnight the last
        report of the evening stays in place.
        """
        r = offset + REPORT * math.floor((t - offset) / REPORT)
        day = _solar_day(self.site, r)
        events = [sun_events(self.site, d) for d in (day - 1, day, day + 1)]
        if any(rise < r and r - REPORT < sset for rise, sset in events if rise < sset):
            return r, True
        sunset = max((s for _, s in events if s < r), default=float(r))
        return offset + REPORT * math.ceil((sunset - offset) / REPORT), False

    def inverter(self, index: int, t: float) -> InverterReport:
        site = self.site
        w = site.inverter_weights[index]
        r, current = self.report_time(site.inverter_offsets[index], t)
        watts = (self.prod_lifetime(r) - self.prod_lifetime(r - REPORT)) * 3600 / REPORT * w
        cal = site.calendar
        today = cal.day_of(t)
        same_day = cal.day_of(r) == today
        begin = self.day_start(today)
        lifetime = self.prod_lifetime(r)
        return InverterReport(
            serial=site.inverter_serials[index],
            report_time=r,
            watts=watts,
            max_watts=self.max_production(r) * w,
            current=current,
            today_wh=(lifetime - begin.prod_wh) * w if same_day else 0.0,
            yesterday_wh=self.daily_production(today - 1) * w,
            week_wh=(lifetime - self.day_start(today - 6).prod_wh) * w,
            lifetime_wh=(self.inverter_offset_wh + lifetime) * w,
        )

    def inverters(self, t: float) -> list[InverterReport]:
        return [self.inverter(i, t) for i in range(len(self.site.inverter_serials))]

    def inverter_lifetime(self, t: float) -> float:
        """The inverters' own production counter (a little above the meter's)."""
        return self.inverter_offset_wh + self.prod_lifetime(t)
