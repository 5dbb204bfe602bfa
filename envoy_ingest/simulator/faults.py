"""Counter faults of real gateways, scheduled in simulated time, and the site's
true energy per local day to compare against.

Faults change the JSON answers after they are rendered (only while some fault
is configured), so the physics in ``model.py`` stays the truth:

- ``zeros(start, end)``: every value 0 but the report times (a reboot, on any
  firmware: legacy and modern alike);
- ``dip(start, end, wh)``: every lifetime counter (production.json
  ``whLifetime`` of every entry and line, ``/api/v1/production``) ``wh`` lower
  (``None``: 0), as in one low answer or a lifetime that reads 0 for minutes;
- ``wrap(index, at)``: microinverter ``index``'s 32-bit joule counter is set
  so that it wraps at simulated time ``at``: device_data ``joulesProduced``
  and the inverter totals (the ``inverters`` entry, ``/api/v1/production``
  without CTs) step down by 2^32 J = 1,193,046.47 Wh for good;
- ``late_reset``: seconds after local midnight during which ``whToday`` still
  adds yesterday's energy (a day counter reset late);
- ``today_is_lifetime``: ``whToday`` and ``whLastSevenDays`` of the CT entries
  equal ``whLifetime`` (8.3.5433, the 8.3.1598 collar).

And two of the site rather than of its counters, which the model renders:

- ``outage(start, end)``: the grid is cut (the System Controller's relay opens,
  nothing is imported or exported, the batteries and the generator carry the
  house: ``backup.py``); the physics changes, so the model's truth does too;
- ``storage_mode(at, mode, reserve)``: from ``at`` the storage settings
  (``/admin/lib/tariff``) say ``mode`` and reserve ``reserve`` %, as when the
  Enphase cloud overwrites them.

Net ``whToday`` / ``whLastSevenDays`` are always 0, as on real gateways.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from envoy_ingest.simulator.model import Model

WRAP_J = 2**32
WRAP_WH = WRAP_J / 3600

_TIME_KEYS = frozenset({"readingTime", "timestamp", "endDate", "created", "createdTime", "eid"})
_KEEP = frozenset({"type", "measurementType", "state", "activeCount", "devName", "sn"})


@dataclass(frozen=True, slots=True)
class DayEnergy:
    """What the site really did on one local day (Wh)."""

    production: float
    consumption: float
    grid_import: float
    grid_export: float
    battery_charged: float
    battery_discharged: float


def true_day(model: Model, day: int) -> DayEnergy:
    """The true energy of local day ``day`` (a date ordinal)."""
    a, b = model.day_start(day), model.day_start(day + 1)
    return DayEnergy(
        b.prod_wh - a.prod_wh,
        b.cons_wh - a.cons_wh,
        b.import_wh - a.import_wh,
        b.export_wh - a.export_wh,
        b.charged_wh - a.charged_wh,
        b.discharged_wh - a.discharged_wh,
    )


def _zero(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: v if k in _TIME_KEYS or k in _KEEP else _zero(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_zero(v) for v in doc]
    if isinstance(doc, bool) or not isinstance(doc, int | float):
        return doc
    return 0


@dataclass
class Faults:
    zero_windows: list[tuple[float, float]] = field(default_factory=list)
    dips: list[tuple[float, float, float | None]] = field(default_factory=list)
    wraps: dict[int, float] = field(default_factory=dict)
    late_reset: float = 0.0
    today_is_lifetime: bool = False
    model: Model | None = None  # the site whose grid an outage cuts
    storage_changes: list[tuple[float, str, float]] = field(default_factory=list)
    _extra: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def active(self) -> bool:
        return bool(
            self.zero_windows
            or self.dips
            or self.wraps
            or self.late_reset
            or self.today_is_lifetime
        )

    # scheduling -------------------------------------------------------------------

    def zeros(self, start: float, end: float) -> None:
        self.zero_windows.append((start, end))

    def dip(self, start: float, end: float, wh: float | None = None) -> None:
        self.dips.append((start, end, wh))

    def wrap(self, index: int, at: float) -> None:
        self.wraps[index] = at

    def outage(self, start: float, end: float) -> None:
        """Cut the grid from ``start`` to ``end`` (before that time comes)."""
        if self.model is None:
            raise ValueError("an outage needs the simulated site (a synthetic gateway)")
        self.model.cut_grid(start, end)

    def storage_mode(self, at: float, mode: str, reserve: float) -> None:
        self.storage_changes.append((at, mode, reserve))
        self.storage_changes.sort()

    def storage_at(self, t: float, mode: str, reserve: float) -> tuple[str, float]:
        """The storage mode and reserve in force at ``t`` (given the site's own)."""
        for at, m, r in self.storage_changes:
            if at <= t:
                mode, reserve = m, r
        return mode, reserve

    # the inverters' counters ---------------------------------------------------------

    def _offset(self, model: Model, index: int) -> float:
        """Wh added to inverter ``index``'s counter so that it reaches 2^32 J at its wrap."""
        with self._lock:
            if index not in self._extra:
                at = self.wraps[index]
                base = model.inverter(index, at).lifetime_wh
                self._extra[index] = (WRAP_WH - base) % WRAP_WH
            return self._extra[index]

    def inverter_wh(self, model: Model, index: int, t: float, true_wh: float) -> float:
        """Inverter ``index``'s counter as it reports it at ``t`` (Wh, wrapped)."""
        if index not in self.wraps:
            return true_wh
        value = true_wh + self._offset(model, index)
        return value - WRAP_WH if value >= WRAP_WH else value

    def total_adjust(self, model: Model, t: float) -> float:
        """What the wraps add to the inverter total at ``t``."""
        out = 0.0
        for i in self.wraps:
            rep = model.inverter(i, t)
            out += self.inverter_wh(model, i, t, rep.lifetime_wh) - rep.lifetime_wh
        return out

    # answers ------------------------------------------------------------------------

    def apply(self, path: str, doc: Any, model: Model, t: float) -> Any:
        """The answer to ``path`` (without query) at ``t``, with the faults."""
        if any(a <= t < b for a, b in self.zero_windows):
            return _zero(doc)
        dip = self._dip(t)
        if path == "/production.json" and isinstance(doc, dict):
            self._production_json(doc, model, t, dip)
        elif path == "/api/v1/production" and isinstance(doc, dict):
            if "wattHoursLifetime" in doc:
                adjust = 0.0 if model.site.metered else self.total_adjust(model, t)
                doc["wattHoursLifetime"] = round(
                    self._lower(doc["wattHoursLifetime"] + adjust, dip)
                )
            late = self._late(model, t, "p")
            if "wattHoursToday" in doc and late is not None:
                doc["wattHoursToday"] = round(late)
        elif path == "/ivp/pdm/device_data" and isinstance(doc, dict):
            serials = {s: i for i, s in enumerate(model.site.inverter_serials)}
            for dev in doc.values():
                if isinstance(dev, dict) and dev.get("sn") in serials:
                    i = serials[dev["sn"]]
                    life = dev["channels"][0]["lifetime"]
                    wh = self.inverter_wh(model, i, t, life["joulesProduced"] / 3600)
                    life["joulesProduced"] = round(wh * 3600)
        return doc

    def _dip(self, t: float) -> float | None:
        total = 0.0
        for a, b, wh in self.dips:
            if a <= t < b:
                if wh is None:
                    return None
                total += wh
        return total

    @staticmethod
    def _lower(value: float, dip: float | None) -> float:
        return 0.0 if dip is None else value - dip

    def _late(self, model: Model, t: float, flow: str) -> float | None:
        """While the day counter is not reset yet: yesterday's energy plus today's
        so far (None once it is reset)."""
        cal = model.site.calendar
        day = cal.day_of(t)
        if not self.late_reset or t - cal.midnight(day) >= self.late_reset:
            return None
        energy, now = true_day(model, day - 1), model.reading(t)
        if flow == "p":
            return energy.production + now.prod_today
        return energy.consumption + now.cons_today

    def _production_json(
        self, doc: dict[str, Any], model: Model, t: float, dip: float | None
    ) -> None:
        entries = [e for key in ("production", "consumption") for e in doc.get(key) or []]
        for entry in entries:
            kind = entry.get("measurementType")
            if entry.get("type") == "inverters" and "whLifetime" in entry:
                entry["whLifetime"] = round(entry["whLifetime"] + self.total_adjust(model, t))
            flow = {"production": "p", "total-consumption": "c"}.get(kind or "")
            for e in [entry, *(entry.get("lines") or [])]:
                if "whLifetime" in e:
                    e["whLifetime"] = self._lower(e["whLifetime"], dip)
                if flow is None or entry.get("type") != "eim":
                    continue
                late = self._late(model, t, flow)
                if self.today_is_lifetime:
                    e["whToday"] = e["whLastSevenDays"] = e["whLifetime"]
                elif late is not None:
                    share = e["whLifetime"] / entry["whLifetime"] if entry["whLifetime"] else 1.0
                    e["whToday"] = round(late * share, 3)
