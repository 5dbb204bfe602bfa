"""The simulator's counter faults and its true energy per local day."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from envoy_ingest.simulator import Simulator, SimulatorConfig
from envoy_ingest.simulator.faults import WRAP_J, WRAP_WH, true_day

NOON = 1718971200  # 2024-06-21 12:00 UTC


def sim(**cfg: Any) -> Simulator:
    return Simulator(SimulatorConfig(time_scale=0, start_time=NOON, tz="UTC", **cfg))


def get(s: Simulator, path: str, t: float) -> Any:
    source = s._app.source
    return json.loads(source.answer(path, t).body)


def eim(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    entries = doc["production"] + doc.get("consumption", [])
    return next(e for e in entries if e.get("measurementType") == kind)


def test_reboot_zeros_keep_the_report_times_on_modern_firmware_too() -> None:
    s = sim(family="modern", cts="1phase")
    assert s.faults is not None
    s.faults.zeros(NOON, NOON + 600)
    doc = get(s, "/production.json?details=1", NOON + 60)
    prod = eim(doc, "production")
    assert prod["whLifetime"] == 0 and prod["wNow"] == 0 and prod["lines"][0]["whLifetime"] == 0
    assert prod["readingTime"] == NOON + 60
    readings = get(s, "/ivp/meters/readings", NOON + 60)
    assert readings[0]["actEnergyDlvd"] == 0 and readings[0]["timestamp"] == NOON + 60
    assert eim(get(s, "/production.json?details=1", NOON + 600), "production")["whLifetime"] > 0


def test_a_dip_lowers_every_lifetime_counter_for_its_window() -> None:
    s = sim(family="modern", cts="1phase")
    assert s.faults is not None
    before = get(s, "/production.json?details=1", NOON)
    s.faults.dip(NOON, NOON + 60, 1_200_000.0)
    during = get(s, "/production.json?details=1", NOON)
    for kind in ("production", "total-consumption", "net-consumption"):
        want = eim(before, kind)["whLifetime"] - 1_200_000.0
        assert eim(during, kind)["whLifetime"] == pytest.approx(want)
    assert get(s, "/production.json?details=1", NOON + 60) == get(
        sim(family="modern", cts="1phase"), "/production.json?details=1", NOON + 60
    )


def test_an_inverter_wraps_at_2_32_joules_in_device_data_and_the_totals() -> None:
    s = sim(family="modern", inverters=4)
    assert s.faults is not None and s.model is not None
    model = s.model
    s.faults.wrap(1, NOON + 3600)
    serial = model.site.inverter_serials[1]

    def joules(t: float) -> int:
        doc = get(s, "/ivp/pdm/device_data", t)
        (dev,) = [d for d in doc.values() if isinstance(d, dict) and d.get("sn") == serial]
        return int(dev["channels"][0]["lifetime"]["joulesProduced"])

    def total(t: float) -> tuple[int, float]:
        """The inverters entry's total, and the true one at its report time."""
        entry = get(s, "/production.json", t)["production"][0]
        return entry["whLifetime"], model.inverter_lifetime(entry["readingTime"])

    before, after = joules(NOON + 3000), joules(NOON + 4200)
    assert WRAP_J - 2_000_000 < before < WRAP_J and 0 <= after < 2_000_000
    (a, true_a), (b, true_b) = total(NOON + 3000), total(NOON + 4200)
    assert b - a == pytest.approx(true_b - true_a - WRAP_WH, abs=1)


def test_today_equal_to_lifetime_and_a_late_midnight_reset() -> None:
    s = sim(family="modern", cts="1phase")
    assert s.faults is not None and s.model is not None
    s.faults.today_is_lifetime = True
    prod = eim(get(s, "/production.json?details=1", NOON), "production")
    assert prod["whToday"] == prod["whLastSevenDays"] == prod["whLifetime"]
    late = sim(family="modern", cts="1phase")
    assert late.faults is not None and late.model is not None
    late.faults.late_reset = 1200
    midnight = NOON + 12 * 3600
    yesterday = true_day(late.model, late.model.site.calendar.day_of(NOON)).production
    # (no sun at 00:10: today's own energy is still 0)
    prod = eim(get(late, "/production.json?details=1", midnight + 600), "production")
    assert prod["whToday"] == round(yesterday, 3) == prod["lines"][0]["whToday"]
    assert eim(get(late, "/production.json", midnight + 1200), "production")["whToday"] == 0


def test_the_true_day_is_what_the_counters_say_from_midnight_to_midnight() -> None:
    s = sim(family="modern", cts="1phase")
    assert s.model is not None
    cal = s.model.site.calendar
    day = cal.day_of(NOON)
    a, b = s.model.reading(cal.midnight(day)), s.model.reading(cal.midnight(day + 1))
    energy = true_day(s.model, day)
    assert energy.production == pytest.approx(b.prod_lifetime - a.prod_lifetime)
    assert energy.consumption == pytest.approx(b.cons_lifetime - a.cons_lifetime)
    assert energy.grid_import == pytest.approx(b.import_lifetime - a.import_lifetime)
    assert energy.grid_export == pytest.approx(b.export_lifetime - a.export_lifetime)
    assert energy.production > 10_000 and energy.grid_export > 0


def test_a_clock_that_runs_a_day_in_a_tenth_of_a_second() -> None:
    cfg = SimulatorConfig(family="modern", cts="1phase", time_scale=864_000, start_time=NOON)
    with Simulator(cfg) as s:
        time.sleep(0.15)
        assert s.now() - NOON > 86400
