"""Site totals in the JSON shapes of real firmware: /production.json,
/api/v1/production, /ivp/meters and /ivp/meters/readings.

Shapes copied from the recorded gateways (5.0.62 and 4.10.35 for legacy,
8.2.4345 for modern): key names and order, rounding, ``lines`` per phase only
with ``details=1``, net today and 7 days always 0 as real gateways report them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from envoy_ingest.simulator.model import InverterReport, Model, Reading
from envoy_ingest.simulator.site import Site

PRODUCTION_EID = 704643328
NET_EID = 704643584
STORAGE_EID = 704643840
_STANDBY_VAR = 8.0  # reactive draw of the production circuit at night (var)


def _r3(x: float) -> float:
    return round(x, 3) + 0.0  # + 0.0 turns -0.0 into 0.0


@dataclass(frozen=True, slots=True)
class Flow:
    """One metered flow on one phase (or summed over phases)."""

    watts: float
    var: float
    volts: float
    wh_lifetime: float
    wh_today: float
    wh_7d: float
    vah_lifetime: float
    vah_today: float
    lead_lifetime: float
    lag_lifetime: float
    lead_today: float
    lag_today: float
    delivered: float  # energy through the CT forwards (Wh)
    received: float  # and backwards

    @property
    def va(self) -> float:
        return math.hypot(self.watts, self.var)

    @property
    def amps(self) -> float:
        return self.va / self.volts if self.volts else 0.0

    @property
    def pf(self) -> float:
        return round(self.watts / self.va, 2) + 0.0 if self.va else 0.0


def voltage(site: Site, t: float, phase: int, load: float) -> float:
    swing = 0.008 * math.sin(2 * math.pi * t / 5400 + 2.1 * phase)
    return site.voltage * (1 + swing + 0.012 * load)


def frequency(site: Site, t: float) -> float:
    return site.frequency * (1 + 0.0005 * math.sin(2 * math.pi * t / 700))


class Flows:
    """Production, total consumption and net flows per phase at one reading."""

    def __init__(self, site: Site, r: Reading) -> None:
        self.site, self.r = site, r
        load = r.production_w / site.array_w if site.array_w else 0.0
        self.volts = [voltage(site, r.t, ph, load) for ph in range(site.phases)]
        since_install = max(0.0, r.t - site.install_time) / 3600
        since_midnight = (r.t - site.calendar.midnight(site.calendar.day_of(r.t))) / 3600
        self._hours = (since_install, since_midnight)

    def production(self, phase: int) -> Flow:
        share = self.site.production_shares()[phase]
        r = self.r
        life_h, today_h = self._hours
        watts = r.production_w * share
        standby = _STANDBY_VAR / self.site.phases
        return Flow(
            watts=watts,
            var=-(0.12 * watts + standby),
            volts=self.volts[phase],
            wh_lifetime=r.prod_lifetime * share,
            wh_today=r.prod_today * share,
            wh_7d=r.prod_7d * share,
            vah_lifetime=1.04 * r.prod_lifetime * share + standby * life_h,
            vah_today=1.04 * r.prod_today * share + standby * today_h,
            lead_lifetime=0.12 * r.prod_lifetime * share + standby * life_h,
            lag_lifetime=0.02 * r.prod_lifetime * share,
            lead_today=0.12 * r.prod_today * share + standby * today_h,
            lag_today=0.02 * r.prod_today * share,
            delivered=r.prod_lifetime * share,
            received=0.5 * life_h * share,
        )

    def consumption(self, phase: int) -> Flow:
        share = self.site.load_shares()[phase]
        r = self.r
        watts = r.consumption_w * share
        return Flow(
            watts=watts,
            var=0.45 * watts,
            volts=self.volts[phase],
            wh_lifetime=r.cons_lifetime * share,
            wh_today=r.cons_today * share,
            wh_7d=r.cons_7d * share,
            vah_lifetime=1.1 * r.cons_lifetime * share,
            vah_today=1.1 * r.cons_today * share,
            lead_lifetime=0.05 * r.cons_lifetime * share,
            lag_lifetime=0.45 * r.cons_lifetime * share,
            lead_today=0.05 * r.cons_today * share,
            lag_today=0.45 * r.cons_today * share,
            delivered=r.cons_lifetime * share,
            received=0.0,
        )

    def net(self, phase: int) -> Flow:
        site, r = self.site, self.r
        load, prod = self.consumption(phase), self.production(phase)
        battery = r.battery_w * site.battery_shares()[phase]
        imp = r.import_lifetime * site.load_shares()[phase]
        exp = r.export_lifetime * site.production_shares()[phase]
        return Flow(
            # off the grid (an outage) the grid relay is open: nothing flows
            watts=load.watts - prod.watts - battery if r.grid_connected else 0.0,
            var=load.var - prod.var,
            volts=self.volts[phase],
            wh_lifetime=imp - exp,
            wh_today=0.0,
            wh_7d=0.0,
            vah_lifetime=load.vah_lifetime,
            vah_today=0.0,
            lead_lifetime=load.lead_lifetime + prod.lead_lifetime,
            lag_lifetime=0.45 * imp,
            lead_today=0.0,
            lag_today=0.0,
            delivered=imp,
            received=exp,
        )

    def storage(self, phase: int) -> Flow:
        """The storage CT: forwards (delivered) is discharging, backwards charging."""
        share = self.site.battery_shares()[phase]
        r = self.r
        watts = r.battery_w * share
        delivered, received = r.discharged_lifetime * share, r.charged_lifetime * share
        return replace(
            BLANK,
            watts=watts,
            var=0.05 * abs(watts),
            volts=self.volts[phase],
            vah_lifetime=1.01 * (delivered + received),
            delivered=delivered,
            received=received,
        )


_FIELDS = tuple(f.name for f in fields(Flow))
BLANK = Flow(*([0.0] * len(_FIELDS)))


def _sum(flows: list[Flow], three_phase: bool) -> Flow:
    """Phases added up; the voltage of a 3-phase meter is reported as the sum too."""
    total = Flow(*(sum(getattr(f, k) for f in flows) for k in _FIELDS))
    return replace(total, volts=total.volts if three_phase else flows[0].volts)


def _eim_values(f: Flow, va: float, amps: float, pf: float, net: bool) -> dict[str, Any]:
    day = 0 if net else None  # net today / 7 days: always 0 on real gateways
    return {
        "wNow": _r3(f.watts),
        "whLifetime": _r3(f.wh_lifetime),
        "varhLeadLifetime": _r3(f.lead_lifetime),
        "varhLagLifetime": _r3(f.lag_lifetime),
        "vahLifetime": _r3(f.vah_lifetime),
        "rmsCurrent": _r3(amps),
        "rmsVoltage": _r3(f.volts),
        "reactPwr": _r3(f.var),
        "apprntPwr": _r3(va),
        "pwrFactor": pf,
        "whToday": day if net else _r3(f.wh_today),
        "whLastSevenDays": day if net else _r3(f.wh_7d),
        "vahToday": day if net else _r3(f.vah_today),
        "varhLeadToday": day if net else _r3(f.lead_today),
        "varhLagToday": day if net else _r3(f.lag_today),
    }


def _eim(kind: str, flows: list[Flow], t: int, details: bool, three: bool) -> dict[str, Any]:
    net = kind == "net-consumption"
    total = _sum(flows, three)
    va, amps = sum(f.va for f in flows), sum(f.amps for f in flows)
    pf = round(total.watts / va, 2) + 0.0 if va else 0.0
    entry: dict[str, Any] = {
        "type": "eim",
        "activeCount": 1,
        "measurementType": kind,
        "readingTime": t,
        **_eim_values(total, va, amps, pf, net),
    }
    if details:
        entry["lines"] = [_eim_values(f, f.va, f.amps, f.pf, net) for f in flows]
    return entry


def inverters_entry(model: Model, reports: list[InverterReport]) -> dict[str, Any]:
    current = [r for r in reports if r.current]
    latest = max((r.report_time for r in reports), default=0)
    return {
        "type": "inverters",
        "activeCount": len(reports),
        "readingTime": latest,
        "wNow": round(sum(r.watts for r in current)),
        "whLifetime": round(model.inverter_lifetime(latest)) if reports else 0,
    }


def storage_entry(site: Site, r: Reading, t: int) -> dict[str, Any]:
    if site.battery_kind != "acb":
        entry: dict[str, Any] = {"type": "acb", "activeCount": 0, "readingTime": 0}
        return {**entry, "wNow": 0, "whNow": 0, "state": "idle"}
    return {
        "type": "acb",
        "activeCount": site.battery_count,
        "readingTime": t,
        "wNow": round(r.battery_w),
        "whNow": round(r.stored_wh),
        "state": battery_state(r.battery_w, r.soc),
        "percentFull": round(r.soc),
    }


def battery_state(watts: float, soc: float) -> str:
    if watts > 5:
        return "discharging"
    if watts < -5:
        return "charging"
    return "full" if soc >= 99.5 else "idle"


def production_json(model: Model, t: float, *, details: bool, zero: bool = False) -> dict[str, Any]:
    site = model.site
    r = model.reading(t)
    reports = model.inverters(t)
    now = int(t)
    doc: dict[str, Any] = {"production": [inverters_entry(model, reports)]}
    if site.metered:
        flows = Flows(site, r)
        three = site.phases == 3
        phases = range(site.phases)
        doc["production"].append(
            _eim("production", [flows.production(p) for p in phases], now, details, three)
        )
        doc["consumption"] = [
            _eim("total-consumption", [flows.consumption(p) for p in phases], now, details, three),
            _eim("net-consumption", [flows.net(p) for p in phases], now, details, three),
        ]
    doc["storage"] = [storage_entry(site, r, now)]
    return zeroed(doc) if zero else doc


def zeroed(doc: Any) -> Any:
    """All values 0, as a 3.x gateway answers right after booting."""
    if isinstance(doc, dict):
        return {
            k: v if k in ("type", "measurementType", "state", "activeCount") else zeroed(v)
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [zeroed(v) for v in doc]
    if isinstance(doc, bool) or not isinstance(doc, int | float):
        return doc
    return 0


def api_v1_production(model: Model, t: float, *, zero: bool = False) -> dict[str, Any]:
    """Metered gateways report their production meter here, others the inverters."""
    r = model.reading(t)
    if model.site.metered:
        doc = {
            "wattHoursToday": round(r.prod_today),
            "wattHoursSevenDays": round(r.prod_7d),
            "wattHoursLifetime": round(r.prod_lifetime),
            "wattsNow": round(r.production_w),
        }
    else:
        entry = inverters_entry(model, model.inverters(t))
        at = model.reading(entry["readingTime"] or t)
        doc = {
            "wattHoursToday": round(at.prod_today),
            "wattHoursSevenDays": round(at.prod_7d),
            "wattHoursLifetime": entry["whLifetime"],
            "wattsNow": entry["wNow"],
        }
    return zeroed(doc) if zero else doc


def ivp_meters(site: Site) -> list[dict[str, Any]]:
    if not site.metered:
        return []
    return [
        {
            "eid": eid,
            "state": "enabled",
            "measurementType": kind,
            "phaseMode": "three" if site.phases == 3 else "single",
            "phaseCount": site.phases,
            "meteringStatus": "normal",
            "statusFlags": [],
        }
        for eid, kind in _cts(site)
    ]


def _cts(site: Site) -> list[tuple[int, str]]:
    cts = [(PRODUCTION_EID, "production"), (NET_EID, "net-consumption")]
    return [*cts, (STORAGE_EID, "storage")] if site.storage_ct else cts


def _reading(eid: int, f: Flow, t: int, hz: float) -> dict[str, Any]:
    return {
        "eid": eid,
        "timestamp": t,
        "actEnergyDlvd": _r3(f.delivered),
        "actEnergyRcvd": _r3(f.received),
        "apparentEnergy": _r3(f.vah_lifetime),
        "reactEnergyLagg": _r3(f.lag_lifetime),
        "reactEnergyLead": _r3(f.lead_lifetime),
        "instantaneousDemand": _r3(f.watts),
        "activePower": _r3(f.watts),
        "apparentPower": _r3(f.va),
        "reactivePower": _r3(f.var),
        "pwrFactor": round(f.watts / f.va, 3) + 0.0 if f.va else 0.0,
        "voltage": _r3(f.volts),
        "current": _r3(f.amps),
        "freq": _r3(hz),
    }


def meters_readings(model: Model, t: float, *, zero: bool = False) -> list[dict[str, Any]]:
    site = model.site
    if not site.metered:
        return []
    now = int(t)  # a reading is sampled at its timestamp: the same second, the same values
    flows = Flows(site, model.reading(now))
    hz = frequency(site, now)
    out = []
    kinds = {"production": flows.production, "net-consumption": flows.net, "storage": flows.storage}
    for eid, kind in _cts(site):
        flow = kinds[kind]
        lines = [flow(p) for p in range(site.phases)]
        total = _sum(lines, site.phases == 3)
        doc = _reading(eid, total, now, hz)
        doc["apparentPower"] = _r3(sum(f.va for f in lines))
        doc["current"] = _r3(sum(f.amps for f in lines))
        channel = 1778385169 + (eid - PRODUCTION_EID)
        doc["channels"] = [
            _reading(channel + ch, lines[ch] if ch < len(lines) else BLANK, now, hz)
            for ch in range(3)
        ]
        out.append(doc)
    return zeroed(out) if zero else out
