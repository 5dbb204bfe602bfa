"""The physics of the simulated site: pure functions of simulated time.

Production follows the sun's elevation (latitude, day of year, solar time) times
a cloudiness that changes from day to day; the household load follows a daily
profile (both in ``sky.py``); the batteries charge from surplus and cover the
deficit, within their power and between their reserve and 100 % (during an
outage, ``Model.cut_grid``, they carry the house alone, with the generator
where there is one: ``backup.py``). Each local day is tabulated on a
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
from collections.abc import Sequence
from dataclasses import dataclass

from envoy_ingest.simulator.backup import off_grid
from envoy_ingest.simulator.motion import moved
from envoy_ingest.simulator.site import Site
from envoy_ingest.simulator.sky import load_w, production_w, solar_day, sun_events

STEP = 60.0  # seconds between grid points of a day table
REPORT = 300  # microinverters report every 5 minutes
_TABLES_KEPT = 16
_YEAR = 365 * 86400


# --- day tables ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayStart:
    """Counters and battery charge at local midnight."""

    prod_wh: float
    cons_wh: float
    import_wh: float
    export_wh: float
    soc: float
    charged_wh: float = 0.0  # battery lifetime energies (the storage CT's)
    discharged_wh: float = 0.0
    generator_on: bool = False


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
    e_charged: array[float]  # battery energy since midnight at each grid point
    e_discharged: array[float]
    on_grid: array[int]  # 1 where the grid was there over the step (steps)
    generator: array[float]  # generator W over each step (steps)

    @property
    def end(self) -> DayStart:
        b = self.begin
        return DayStart(
            prod_wh=b.prod_wh + self.e_prod[-1],
            cons_wh=b.cons_wh + self.e_cons[-1],
            import_wh=b.import_wh + self.e_import[-1],
            export_wh=b.export_wh + self.e_export[-1],
            soc=self.soc[-1],
            charged_wh=b.charged_wh + self.e_charged[-1],
            discharged_wh=b.discharged_wh + self.e_discharged[-1],
            generator_on=bool(self.generator) and self.generator[-1] > 0,
        )


def build_day(
    site: Site, day: int, begin: DayStart, outages: Sequence[tuple[float, float]] = ()
) -> DayTable:
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
    e_chg, e_dis = array("d", [0.0]), array("d", [0.0])
    on_grid, generator = array("b"), array("d")
    level, gen_on = begin.soc, begin.generator_on
    for k in range(steps):
        surplus = prod[k] - cons[k]
        p_avg = (prod[k] + prod[k + 1]) / 2
        c_avg = (cons[k] + cons[k + 1]) / 2
        off = any(a <= times[k] < z for a, z in outages)
        g = 0.0
        if off:
            step = off_grid(
                level,
                c_avg - p_avg,
                gen_on,
                capacity_wh=cap,
                max_w=max_w,
                generator=site.generator,
                hours=hours,
            )
            b, g, gen_on = step.battery_w, step.generator_w, step.generator_on
        elif cap <= 0:
            b, gen_on = 0.0, False
        elif surplus > 0:
            b, gen_on = -min(surplus, max_w, (100 - level) / 100 * cap / hours), False
        else:
            b = min(-surplus, max_w, max(0.0, (level - reserve) / 100 * cap / hours))
            gen_on = False
        level = min(100.0, max(0.0, level - b * hours / cap * 100)) if cap > 0 else 0.0
        battery.append(b)
        soc.append(level)
        on_grid.append(0 if off else 1)
        generator.append(g)
        e_chg.append(e_chg[-1] + max(-b, 0.0) * hours)
        e_dis.append(e_dis[-1] + max(b, 0.0) * hours)
        net = 0.0 if off else c_avg - p_avg - b
        e_prod.append(e_prod[-1] + p_avg * hours)
        e_cons.append(e_cons[-1] + c_avg * hours)
        e_imp.append(e_imp[-1] + max(net, 0.0) * hours)
        e_exp.append(e_exp[-1] + max(-net, 0.0) * hours)
        pmax.append(max(pmax[-1], prod[k + 1]))
        bmax.append(max(bmax[-1], abs(b)))
    return DayTable(
        day,
        start,
        steps,
        begin,
        prod,
        cons,
        pmax,
        battery,
        soc,
        e_prod,
        e_cons,
        e_imp,
        e_exp,
        bmax,
        e_chg,
        e_dis,
        on_grid,
        generator,
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
    charged_lifetime: float = 0.0  # battery energies (the storage CT's truth)
    discharged_lifetime: float = 0.0
    grid_connected: bool = True  # the System Controller's grid relay closed
    generator_w: float = 0.0

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
        cycled = site.storage_wh * 200 * years  # 200 full cycles a year
        self._starts: dict[int, DayStart] = {
            self.first_day: DayStart(prod, cons, imp, imp - cons + prod, 50.0, cycled, 0.9 * cycled)
        }
        self.outages: tuple[tuple[float, float], ...] = ()
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
                tab = build_day(self.site, known, self._starts[known], self.outages)
                self._starts[known + 1] = tab.end
                if known == day:
                    break
                known += 1
            self._tables[day] = tab
            while len(self._tables) > _TABLES_KEPT:
                self._tables.popitem(last=False)
            return tab

    def cut_grid(self, start: float, end: float) -> None:
        """An outage from ``start`` to ``end`` (simulated time): the days from the
        one it begins on are worked out again (schedule it before it comes)."""
        with self._lock:
            self.outages = (*self.outages, (start, end))
            day = self.site.calendar.day_of(start)
            for d in [d for d in self._tables if d >= day]:
                del self._tables[d]
            for d in [d for d in self._starts if d > max(day, self.first_day)]:
                del self._starts[d]

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
        on_grid = bool(tab.on_grid[k])
        net_step = c_avg - p_avg - b if on_grid else 0.0
        e_prod = tab.e_prod[k] + (tab.production[k] + p) / 2 * hours
        e_cons = tab.e_cons[k] + (tab.consumption[k] + c) / 2 * hours
        begin = tab.begin
        week = self.day_start(tab.day - 6)
        return Reading(
            t=t,
            production_w=p,
            consumption_w=c,
            battery_w=b,
            net_w=c - p - b if on_grid else 0.0,
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
            charged_lifetime=begin.charged_wh + tab.e_charged[k] + max(-b, 0.0) * hours,
            discharged_lifetime=begin.discharged_wh + tab.e_discharged[k] + max(b, 0.0) * hours,
            grid_connected=on_grid,
            generator_w=tab.generator[k],
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
        day = solar_day(self.site, r)
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
