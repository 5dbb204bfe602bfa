"""Battery energy in the energy stage: the storage CT's counters, or the battery
power integrated (trapezoid split at zero, gaps), kept across a restart and a
kill -9, and the day fields at local midnight. Exact values throughout."""

from __future__ import annotations

from pathlib import Path

import pytest

from envoy_ingest.energy.battery import Integrator, split_trapezoid
from envoy_ingest.energy.localday import midnight, zone
from envoy_ingest.energy.stage import EnergyStage
from envoy_ingest.energy.store import EnergyStore, progress_path, state_path
from envoy_ingest.point import Point
from tests.support.fakes import FakeClock

TZ = zone("Europe/Berlin")
DAY = 739417  # 2025-06-15
M0 = midnight(DAY, TZ)
M1 = midnight(DAY + 1, TZ)
C, D = "battery_charged_lifetime_wh", "battery_discharged_lifetime_wh"
CT, DT = "battery_charged_today_wh", "battery_discharged_today_wh"


def stage(tmp: Path, clock: FakeClock | None = None) -> EnergyStage:
    store = EnergyStore(
        state_path(tmp, "122238082690"), flush_interval=300, clock=clock or FakeClock(0.0)
    )
    return EnergyStage(store, TZ, label="home")


def totals(t: int, battery_w: float) -> Point:
    return Point("enphase_system", {"production_w": 0.0, "battery_w": battery_w}, t)


def one(s: EnergyStage, p: Point, *, storage_ct: bool = False) -> Point:
    (out,), _ = s.apply([p], storage_ct=storage_ct)
    return out


def test_the_trapezoid_splits_at_zero() -> None:
    assert split_trapezoid(1200.0, 600.0, 60) == (0.0, 15.0)
    assert split_trapezoid(-1200.0, -600.0, 60) == (15.0, 0.0)
    # discharging 600 W to charging 1200 W: the line crosses zero after 20 s
    assert split_trapezoid(600.0, -1200.0, 60) == pytest.approx((20.0 / 3, 5.0 / 3))
    assert split_trapezoid(-1200.0, 600.0, 60) == pytest.approx((20.0 / 3, 5.0 / 3))


def test_no_integration_across_a_gap_of_more_than_three_intervals() -> None:
    i = Integrator()
    for k in range(5):
        assert i.add(M0 + 60 * k, 600.0)
    assert i.discharged == pytest.approx(40.0) and i.interval == 60
    i.add(M0 + 240 + 180, 600.0)  # three intervals: integrated
    assert i.discharged == pytest.approx(70.0)
    i.add(M0 + 420 + 181, 600.0)  # more than three: missing, not invented
    assert i.discharged == pytest.approx(70.0)
    assert not i.add(M0 + 601, -100.0)  # the same report again: nothing
    assert i.add(M0 + 661, -100.0)
    # 600 W to -100 W: the line crosses zero after 6/7 of the minute
    assert (i.charged, i.discharged) == pytest.approx((100 / 840, 70.0 + 3600 / 840))


def test_integrated_counters_start_at_zero_and_never_fall(tmp_path: Path) -> None:
    s = stage(tmp_path)
    p = one(s, totals(M0 + 3600, -1200.0))
    assert C not in p.fields and D not in p.fields  # a first 0 is held, as any counter's
    p = one(s, totals(M0 + 3660, -1200.0))
    assert p.fields[C] == 20.0 and D not in p.fields
    p = one(s, totals(M0 + 3720, 1200.0))  # crosses zero at 30 s
    assert (p.fields[C], p.fields[D]) == (25.0, 5.0)
    assert CT not in p.fields  # no midnight seen yet: today is not known


def test_a_site_with_a_storage_ct_takes_its_counters_not_the_integral(tmp_path: Path) -> None:
    s = stage(tmp_path)
    p = one(s, totals(M0 + 3600, -1200.0), storage_ct=True)
    assert C not in p.fields and s.store.state.battery is None
    ct = Point("enphase_system", {C: 2_971_414.344, D: 2_274_358.602}, M0 + 3600)
    assert one(s, ct, storage_ct=True).fields == ct.fields


def test_day_fields_from_the_storage_ct_at_local_midnight(tmp_path: Path) -> None:
    s = stage(tmp_path)
    for k, t in enumerate(range(M1 - 600, M1 + 900, 300)):
        out = one(
            s, Point("enphase_system", {C: 1000.0 + 10 * k, D: 500.0 + k}, t), storage_ct=True
        )
    # the reading at midnight itself is the day's start: today = now - then, exactly
    assert (out.fields[CT], out.fields[DT]) == (20.0, 2.0)


def test_day_fields_from_the_integral(tmp_path: Path) -> None:
    s = stage(tmp_path)
    for t in range(M1 - 600, M1 + 301, 60):
        out = one(s, totals(t, 600.0 if M1 - 300 <= t < M1 else -600.0))
    # charged 40 + 2.5, discharged 2.5 + 40 + 2.5, charged 2.5 (crossing 00:00), then
    # 5 minutes at 600 W: today is what came after the midnight reading
    assert (out.fields[C], out.fields[D]) == (95.0, 45.0)
    assert (out.fields[CT], out.fields[DT]) == (50.0, 0.0)


def test_a_restart_and_a_kill_9_keep_the_integral(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    first = stage(tmp_path, clock)
    for k in range(3):
        one(first, totals(M0 + 3600 + 60 * k, -1200.0))
    first.store.flush()  # 40 Wh charged on disk
    for k in range(3, 6):
        clock.t = 10.0 * k  # within the flush interval: the state file is not written
        written = one(first, totals(M0 + 3600 + 60 * k, -1200.0))
    assert written.fields[C] == 100.0
    # kill -9: the state file says 40 Wh, its progress file 100 Wh at the last sample
    assert b" 100.0 " in progress_path(first.store.path).read_bytes()
    again = stage(tmp_path, clock)
    p = one(again, totals(M0 + 3600 + 360, -1200.0))
    assert p.fields[C] == 120.0  # on from 100 Wh, the interval since integrated
    again.store.flush()
    third = stage(tmp_path, clock)  # a clean restart: the state file alone
    assert third.store.state.battery is not None and third.store.state.battery.charged == 120.0


def test_a_damaged_progress_file_is_ignored(tmp_path: Path) -> None:
    s = stage(tmp_path)
    one(s, totals(M0, -1200.0))
    one(s, totals(M0 + 60, -1200.0))
    s.store.flush()
    progress_path(s.store.path).write_bytes(b"17 nonsense")
    again = stage(tmp_path)
    assert again.store.state.battery is not None and again.store.state.battery.charged == 20.0


def test_a_reboot_is_still_seen_on_a_site_whose_battery_is_integrated(tmp_path: Path) -> None:
    s = stage(tmp_path)

    def point(t: int, life: float, w: float) -> Point:
        return Point("enphase_system", {"production_lifetime_wh": life, "battery_w": w}, t)

    one(s, point(M0 + 3600, 5_000_000.0, 600.0))
    one(s, point(M0 + 3660, 5_000_010.0, 600.0))
    (out,), events = s.apply([point(M0 + 3720, 0.0, 0.0)])  # every gateway counter 0
    assert [e.tags["kind"] for e in events] == ["reboot"]
    assert "production_lifetime_wh" not in out.fields and out.fields[D] == 15.0


def test_a_site_that_gains_a_storage_ct_carries_on_without_a_step(tmp_path: Path) -> None:
    s = stage(tmp_path)
    for k in range(4):
        last = one(s, totals(M0 + 3600 + 60 * k, -1200.0))
    assert last.fields[C] == 60.0
    out, found = [], []
    for k in range(3):  # the CT's counters, every 5 minutes: a lasting jump
        ct = Point("enphase_system", {C: 2_000_000.0 + 50 * k, D: 1_000_000.0}, M0 + 4200 + 300 * k)
        (p,), events = s.apply([ct], storage_ct=True)
        out.append(p.fields.get(C))
        found += events
    assert out == [None, None, 160.0]  # held, then on from 60 Wh by the CT's 100 Wh
    assert [e.tags["kind"] for e in found] == ["counter_jump"]
