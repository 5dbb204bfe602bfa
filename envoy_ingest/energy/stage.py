"""The energy stage: between normalize/ (pure) and the sink, run by the worker.

For each point of one gateway it corrects every lifetime counter
(``*_lifetime_wh``, :mod:`envoy_ingest.energy.counter`), then chooses the day
fields (``*_today_wh``, ``*_7d_wh``, :mod:`envoy_ingest.energy.daily`), and
returns ``enphase_event`` points for what it decided. docs/schema.md states
every rule.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo

from envoy_ingest.energy import battery, counter, daily
from envoy_ingest.energy.events import EVENT as EVENT
from envoy_ingest.energy.events import observe
from envoy_ingest.energy.store import EnergyStore
from envoy_ingest.point import FieldValue, Point
from envoy_ingest.telemetry import metrics

log = logging.getLogger(__name__)

# Measurements whose state changes are events (energy/events.py).
_OBSERVED = frozenset({"enphase_system", "enphase_generator"})
# The plausible power of a series: this times the highest power seen on its
# points (or MIN_RATE_W when that is lower).
RATE_MARGIN = 3.0
MIN_RATE_W = 3000.0
# Series that count microinverter joules and so may wrap at 2^32 J.
_WRAPS = {("enphase_inverter", "lifetime_wh"), ("enphase_system", "production_lifetime_wh")}


@dataclass(frozen=True, slots=True)
class DayField:
    lifetime: str
    days: int
    add: bool  # derived where the gateway does not report the field at all
    today: str | None = None  # 7-day fields: the day field it must hold at least


DAY_FIELDS: Mapping[str, Mapping[str, DayField]] = {
    "enphase_system": {
        "production_today_wh": DayField("production_lifetime_wh", 1, True),
        "production_7d_wh": DayField("production_lifetime_wh", 7, True, "production_today_wh"),
        "consumption_today_wh": DayField("consumption_lifetime_wh", 1, True),
        "consumption_7d_wh": DayField("consumption_lifetime_wh", 7, True, "consumption_today_wh"),
        "grid_import_today_wh": DayField("grid_import_lifetime_wh", 1, True),
        "grid_export_today_wh": DayField("grid_export_lifetime_wh", 1, True),
        "battery_charged_today_wh": DayField(battery.CHARGED, 1, True),
        "battery_discharged_today_wh": DayField(battery.DISCHARGED, 1, True),
    },
    "enphase_meter": {
        "today_wh": DayField("lifetime_wh", 1, False),
        "last_7d_wh": DayField("lifetime_wh", 7, False, "today_wh"),
    },
}
# Net day fields that real gateways report as 0: consumption minus production.
NET_FIELDS = {"net_today_wh": "today_wh", "net_7d_wh": "7d_wh"}


def is_counter(name: str) -> bool:
    return name == "lifetime_wh" or name.endswith("_lifetime_wh")


# Per set of field names (in the point's order): its power fields (``*_w``) and
# its lifetime counters (:func:`is_counter`). The data contract's few dozen
# sets, shared by a fleet's gateways; bounded, emptied when full.
_Plan = tuple[tuple[str, ...], tuple[str, ...]]
_PLANS: dict[tuple[str, ...], _Plan] = {}
_PLANS_KEPT = 1024


def _plan(fields: Mapping[str, FieldValue]) -> _Plan:
    names = tuple(fields)
    plan = _PLANS.get(names)
    if plan is None:
        power = tuple(k for k in names if k.endswith("_w"))
        counters = tuple(k for k in names if is_counter(k))
        if len(_PLANS) >= _PLANS_KEPT:
            _PLANS.clear()
        plan = _PLANS[names] = (power, counters)
    return plan


def _signed(p: Point, name: str) -> bool:
    """Net counters (import minus export) may fall; a CT's delivered and received
    energies (import, export) do not."""
    if p.measurement == "enphase_meter":
        return name == "lifetime_wh" and p.tags.get("flow") == "net"
    return name.startswith("net_")


def _group(p: Point) -> str:
    tags = ",".join(f"{k}={v}" for k, v in sorted(p.tags.items()) if k not in ("gateway", "site"))
    return sys.intern(f"{p.measurement},{tags}") if tags else p.measurement


def _scan(fields: Mapping[str, FieldValue], plan: _Plan) -> tuple[float, list[tuple[str, float]]]:
    """The highest power (W) a point reports, of any sign, and its lifetime
    counters (:func:`is_counter`) with float values, in order (``plan``: :func:`_plan`)."""
    power = 0.0
    for k in plan[0]:
        v = fields[k]
        if isinstance(v, float) and v == v and abs(v) > power:
            power = abs(v)
    counters = [(k, v) for k in plan[1] if isinstance(v := fields[k], float)]
    return power, counters


def _merged(found: list[Point], extra: Mapping[str, str]) -> list[Point]:
    """One event per time and kind, the texts joined (other fields, such as a
    ``duration_s``, kept): InfluxDB keeps one point per series and time, so
    separate ones would overwrite each other."""
    merged: dict[tuple[int, str], dict[str, FieldValue]] = {}
    for e in found:
        fields = merged.get((e.time, e.tags["kind"]))
        if fields is None:
            merged[(e.time, e.tags["kind"])] = dict(e.fields)
        else:
            fields.update({k: v for k, v in e.fields.items() if k != "text"})
            fields["text"] = f"{fields['text']}; {e.fields['text']}"
    return [
        Point(EVENT, fields, t, {"kind": kind, **extra}) for (t, kind), fields in merged.items()
    ]


class EnergyStage:
    """One gateway's counters and days; ``apply`` is called with each job's points."""

    def __init__(
        self, store: EnergyStore, tz: tzinfo, *, label: str, raw_fields: bool = False
    ) -> None:
        self.store = store
        self.tz = tz
        self.label = label
        self.raw_fields = raw_fields

    def apply(
        self,
        points: Sequence[Point],
        extra: Mapping[str, str] | None = None,
        *,
        storage_ct: bool = False,
    ) -> tuple[list[Point], list[Point]]:
        """The points with corrected counters and day fields, and the events.
        ``extra``: tags added to every point and event returned (the worker's
        ``gateway`` and ``site``), so that each is made once, with its final tags.
        ``storage_ct``: the site's storage CT counts battery energy; else the
        battery power of the system points is integrated (energy/battery.py)."""
        out: list[Point] = []
        events: list[Point] = []
        urgent = touched = False
        for p in points:
            integrated = False
            if p.measurement in _OBSERVED:
                seen = observe(self.store.state.site, p)
                if seen:
                    events += seen
                    urgent = touched = True
                if p.measurement == "enphase_system" and not storage_ct:
                    p, integrated = self._integrate(p)
            tags = ({**p.tags, **extra} if p.tags else extra) if extra else p.tags
            plan = _plan(p.fields)
            if not plan[1] and p.measurement not in DAY_FIELDS:
                out.append(Point(p.measurement, p.fields, p.time, tags) if extra else p)
                continue
            fields, new_events, decided = self._point(p, plan, integrated)
            if new_events:
                events += new_events
            urgent = urgent or decided
            touched = True
            out.append(Point(p.measurement, fields, p.time, tags))
        if touched:
            self.store.changed(urgent=urgent)
        return out, _merged(events, extra or {}) if events else []

    def _integrate(self, p: Point) -> tuple[Point, bool]:
        """The system point with the battery energy integrated from its ``battery_w``
        (and True), or as it is."""
        w = p.fields.get("battery_w")
        if not isinstance(w, float) or w != w or battery.CHARGED in p.fields:
            return p, False
        state = self.store.state
        integrator = state.battery
        if integrator is None:
            integrator = state.battery = battery.Integrator()
        if integrator.add(p.time, w):
            self.store.progress(integrator.progress())
        fields = {
            **p.fields,
            battery.CHARGED: integrator.charged,
            battery.DISCHARGED: integrator.discharged,
        }
        return Point(p.measurement, fields, p.time, p.tags), True

    def _point(
        self, p: Point, plan: _Plan, integrated: bool = False
    ) -> tuple[dict[str, FieldValue], list[Point], bool]:
        state = self.store.state
        group = _group(p)
        # The highest power grows at most twofold per point: one absurd power
        # reading cannot open the bound for an absurd counter.
        power, counters = _scan(p.fields, plan)
        seen = state.peaks.get(group, 0.0)
        peak = max(seen, min(power, 2 * max(seen, MIN_RATE_W)))
        state.peaks[group] = peak
        rate = RATE_MARGIN * max(peak, MIN_RATE_W)
        fields = dict(p.fields)
        events: list[Point] = []
        urgent = False
        raws: dict[str, float] = {}
        written: dict[str, bool] = {}
        keys: dict[str, str] = {}  # counter -> its key in the state, for _reboot and _days
        for name, value in counters:
            key = keys[name] = sys.intern(f"{group}|{name}")  # one string for a fleet's gateways
            c = state.counters.get(key)
            if c is None:
                c = counter.Counter(signed=_signed(p, name), wraps=(p.measurement, name) in _WRAPS)
                state.counters[key] = c
            raws[name] = value
            result = counter.update(c, p.time, value, rate)
            written[name] = result.value is not None
            if result.value is None:
                del fields[name]
            else:
                fields[name] = result.value
                track = state.days.get(key)
                if track is None:
                    track = state.days[key] = daily.DayTrack()
                before = track.day
                track.advance(p.time, result.value, self.tz)
                urgent = urgent or (before is not None and track.day != before)
            if self.raw_fields:
                fields[f"{name}_raw"] = value
            if result.correction is not None:
                urgent = True
                events += self._correction(key, result.correction)
        if p.measurement == "enphase_system":
            if integrated:  # the stage's own counters say nothing of a reboot
                own = (battery.CHARGED, battery.DISCHARGED)
                gateway = {k: v for k, v in raws.items() if k not in own}
                events += self._reboot(p, keys, gateway, {k: written[k] for k in gateway})
            else:
                events += self._reboot(p, keys, raws, written)
        self._days(p, keys, fields, raws, written, rate)
        return fields, events, urgent

    def _correction(self, key: str, corr: counter.Correction) -> list[Point]:
        """Counted, logged once, and an event; the zeros of a reboot already seen
        as one are logged at debug level, without an event of their own."""
        text = corr.describe(key)
        metrics.record_counter_correction(self.label, corr.kind)
        reboot = self.store.state.rebooting and not any(corr.held)
        if corr.kind == "glitch" and reboot:
            log.debug("%s: %s", self.label, text)
            return []
        log.warning("%s: %s", self.label, text)
        return [Point(EVENT, {"text": text}, corr.since, {"kind": f"counter_{corr.kind}"})]

    def _reboot(
        self,
        p: Point,
        keys: Mapping[str, str],
        raws: Mapping[str, float],
        written: Mapping[str, bool],
    ) -> list[Point]:
        """All lifetime counters of the system point 0: the gateway rebooted."""
        if p.measurement != "enphase_system" or not raws:
            return []
        state = self.store.state
        seen = any((c := state.counters.get(keys[name])) is not None and c.last for name in raws)
        if all(v == 0 for v in raws.values()) and not any(written.values()):
            if state.rebooting or not seen:
                return []
            state.rebooting = True
            text = "the gateway answered 0 for every lifetime counter: it rebooted"
            log.warning("%s: %s", self.label, text)
            metrics.record_counter_correction(self.label, "reboot")
            return [Point(EVENT, {"text": text}, p.time, {"kind": "reboot"})]
        if any(written.values()):
            state.rebooting = False
        return []

    def _days(
        self,
        p: Point,
        keys: Mapping[str, str],
        fields: dict[str, FieldValue],
        raws: Mapping[str, float],
        written: Mapping[str, bool],
        rate: float,
    ) -> None:
        state = self.store.state
        specs = DAY_FIELDS.get(p.measurement)
        if specs is None or p.tags.get("flow") == "net":
            specs = {}
        for name, spec in specs.items():
            if spec.lifetime not in raws:
                continue
            reported = p.fields.get(name)
            if reported is None and not spec.add:
                continue
            gateway = reported if isinstance(reported, float) else None
            today = fields.get(spec.today) if spec.today else None
            floor = today if isinstance(today, float) else None
            key = keys[spec.lifetime]
            track = state.days.get(key)
            if track is None:
                track = state.days[key] = daily.DayTrack()
            value = daily.resolve(
                name,
                track,
                t=p.time,
                tz=self.tz,
                days=spec.days,
                gateway=gateway,
                raw_lifetime=raws[spec.lifetime],
                written=written[spec.lifetime],
                rate_w=rate,
                floor=floor,
            )
            if value is None:
                fields.pop(name, None)
            else:
                fields[name] = value
        if p.measurement == "enphase_system":
            for net, suffix in NET_FIELDS.items():
                if p.fields.get(net) != 0:
                    continue
                cons, prod = fields.get(f"consumption_{suffix}"), fields.get(f"production_{suffix}")
                if isinstance(cons, float) and isinstance(prod, float):
                    fields[net] = cons - prod
                else:
                    fields.pop(net, None)
