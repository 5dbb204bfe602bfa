"""The energy stage on points: restarts, kill -9, a damaged state file, the day
fields at local midnight, events and metrics. Exact values throughout."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from envoy_ingest.energy.localday import midnight, zone
from envoy_ingest.energy.stage import EnergyStage
from envoy_ingest.energy.store import EnergyStore, state_path
from envoy_ingest.point import Point
from envoy_ingest.telemetry import metrics
from tests.support.fakes import FakeClock

TZ = zone("Europe/Berlin")
DAY = 739417  # 2025-06-15
M0 = midnight(DAY, TZ)
M1 = midnight(DAY + 1, TZ)


def stage(tmp: Path, clock: FakeClock | None = None, *, raw: bool = False) -> EnergyStage:
    clock = clock or FakeClock(0.0)
    store = EnergyStore(state_path(tmp, "122238082690"), flush_interval=300, clock=clock)
    return EnergyStage(store, TZ, label="home", raw_fields=raw)


def system(t: int, life: float, today: float | None = None, **extra: float) -> Point:
    fields: dict[str, float] = {"production_w": 1000.0, "production_lifetime_wh": life}
    if today is not None:
        fields["production_today_wh"] = today
    fields.update(extra)
    return Point("enphase_system", fields, t)


def run(s: EnergyStage, *points: Point) -> tuple[list[Point], list[Point]]:
    return s.apply(list(points))


def test_a_healthy_point_is_written_unchanged(tmp_path: Path) -> None:
    p = system(M0 + 3600, 5_000_000.0, 1234.5, production_7d_wh=20_000.0)
    out, events = run(stage(tmp_path), p)
    assert out == [p] and events == []


def test_a_restart_reloads_the_state_and_makes_no_step(tmp_path: Path) -> None:
    first = stage(tmp_path)
    run(first, system(M0 + 3600, 5_000_000.0))
    # an inverter wrap, decided before the restart
    out = [
        run(first, system(M0 + 3600 + 300 * i, 5_000_000.0 + i - 1193046.4711111111))[0][0]
        for i in range(1, 4)
    ]
    assert out[-1].fields["production_lifetime_wh"] == pytest.approx(5_000_003.0)
    first.store.flush()
    again = stage(tmp_path)
    (p,), _ = run(again, system(M0 + 3600 + 1200, 5_000_004.0 - 1193046.4711111111))
    assert p.fields["production_lifetime_wh"] == pytest.approx(5_000_004.0)


def test_after_kill_9_an_older_state_makes_no_step_and_no_phantom(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    first = stage(tmp_path, clock)
    run(first, system(M0 + 3600, 5_000_000.0))
    first.store.flush()  # the state on disk stops here
    for i in range(1, 5):
        clock.t = 10.0 * i  # within the flush interval: not written
        run(first, system(M0 + 3600 + 60 * i, 5_000_000.0 + 20 * i))
    # kill -9: a new process reads the older state
    again = stage(tmp_path, clock)
    assert again.store.state.counters["enphase_system|production_lifetime_wh"].last == 5_000_000.0
    (p,), events = run(again, system(M0 + 3600 + 300, 5_000_100.0))
    assert p.fields["production_lifetime_wh"] == 5_000_100.0 and events == []
    (p,), _ = run(again, system(M0 + 3600 + 360, 0.0))  # and a reboot zero is still held
    assert "production_lifetime_wh" not in p.fields


def test_a_correction_is_written_to_disk_at_once(tmp_path: Path) -> None:
    s = stage(tmp_path)
    run(s, system(M0 + 3600, 5_000_000.0))
    s.store.flush()
    for i in range(1, 4):
        run(s, system(M0 + 3600 + 300 * i, 100.0 * i))  # a reset, decided at the third
    on_disk = EnergyStore(s.store.path).state.counters["enphase_system|production_lifetime_wh"]
    assert on_disk.offset == 5_000_000.0 - 100.0 and on_disk.last == 5_000_200.0


def test_periodic_writes_fsync_the_file_and_urgent_ones_the_directory_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write fsyncs the new file before the rename (a power cut leaves one
    whole file); only an urgent one (a correction) also fsyncs the directory."""
    synced: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    clock = FakeClock(0.0)
    s = stage(tmp_path, clock)
    run(s, system(M0 + 3600, 5_000_000.0))
    assert synced == [] and not s.store.path.exists()  # within the interval: not written
    clock.t = 300.0
    run(s, system(M0 + 3900, 5_000_100.0))  # the interval passed: a periodic write
    assert synced == ["file"]
    on_disk = EnergyStore(s.store.path).state.counters["enphase_system|production_lifetime_wh"]
    assert on_disk.last == 5_000_100.0
    for i in range(1, 4):
        clock.t = 300.0 + i
        run(s, system(M0 + 3900 + 300 * i, 100.0 * i))  # a reset, decided at the third
    assert synced == ["file", "file", "dir"]
    on_disk = EnergyStore(s.store.path).state.counters["enphase_system|production_lifetime_wh"]
    assert on_disk.offset == 5_000_100.0 - 100.0
    s.store.flush()  # (nothing moved since)
    assert synced == ["file", "file", "dir"]


def test_a_damaged_state_file_is_moved_aside_and_the_worker_starts_afresh(tmp_path: Path) -> None:
    path = state_path(tmp_path, "122238082690")
    path.write_text('{"version": 1, "counters": {"x": {"signed": 3}}')
    s = stage(tmp_path)
    assert not path.exists()
    assert len(list(tmp_path.glob("energy-122238082690.json.corrupt-*"))) == 1
    (p,), _ = run(s, system(M0 + 3600, 5_000_000.0))
    assert p.fields["production_lifetime_wh"] == 5_000_000.0
    s.store.flush()
    assert path.exists()


def test_today_is_derived_from_the_counter_at_local_midnight(tmp_path: Path) -> None:
    s = stage(tmp_path)
    life = 5_000_000.0
    # 8.3.5433: whToday = whLifetime. Before a midnight is seen: left out.
    (p,), _ = run(s, system(M1 - 600, life, life))
    assert "production_today_wh" not in p.fields
    # Midnight lies two thirds of the way between these readings: 5,000,020 Wh there.
    (p,), _ = run(s, system(M1 + 300, life + 30.0, life + 30.0))
    assert p.fields["production_today_wh"] == pytest.approx(10.0)
    (p,), _ = run(s, system(M1 + 3600, life + 1020.0, life + 1020.0))
    assert p.fields["production_today_wh"] == pytest.approx(1000.0)
    day = s.store.state.days["enphase_system|production_lifetime_wh"]
    assert day.midnights == {DAY + 1: pytest.approx(life + 20.0)}


def test_a_late_reset_is_replaced_for_the_whole_day(tmp_path: Path) -> None:
    s = stage(tmp_path)
    run(s, system(M1 - 60, 5_000_000.0, 20_000.0))
    (p,), _ = run(s, system(M1 + 60, 5_000_000.0, 20_000.0))  # not reset at midnight
    assert p.fields["production_today_wh"] == 0.0
    (p,), _ = run(s, system(M1 + 1200, 5_000_050.0, 50.0))  # reset now: agrees, still derived
    assert p.fields["production_today_wh"] == 50.0


def test_a_gateway_value_that_agrees_is_kept_as_reported(tmp_path: Path) -> None:
    s = stage(tmp_path)
    run(s, system(M1 - 60, 5_000_000.0, 20_000.0))
    (p,), _ = run(s, system(M1 + 3600, 5_001_000.0, 1010.5))
    assert p.fields["production_today_wh"] == 1010.5


def test_a_stale_day_counter_is_left_out_before_a_midnight_is_known(tmp_path: Path) -> None:
    s = stage(tmp_path)
    # 00:10 and the gateway still says 20 kWh today: more than 10 minutes can make.
    (p,), _ = run(s, system(M1 + 600, 5_000_000.0, 20_000.0))
    assert "production_today_wh" not in p.fields


def test_time_going_back_never_starts_a_day_and_a_jump_of_days_invents_nothing(
    tmp_path: Path,
) -> None:
    s = stage(tmp_path)
    life = 5_000_000.0
    run(s, system(M1 - 60, life, life))
    (p,), _ = run(s, system(M1 + 60, life + 2.0, life + 2.0))
    assert p.fields["production_today_wh"] == pytest.approx(1.0)
    (p,), _ = run(s, system(M1 - 30, life + 3.0, life + 3.0))  # the clock goes back
    assert "production_today_wh" not in p.fields and "production_lifetime_wh" not in p.fields
    # NTP moves the clock three days on: that midnight is not known, nothing guessed.
    later = midnight(DAY + 4, TZ) + 3600
    (p,), _ = run(s, system(later, life + 50.0, life + 50.0))
    assert p.fields["production_lifetime_wh"] == life + 50.0
    assert "production_today_wh" not in p.fields


def test_net_and_grid_day_energy(tmp_path: Path) -> None:
    s = stage(tmp_path)
    grid = {"grid_import_lifetime_wh": 900_000.0, "grid_export_lifetime_wh": 400_000.0}
    fields = {"consumption_lifetime_wh": 7_000_000.0, "consumption_today_wh": 9000.0}
    p0 = system(M1 - 300, 5_000_000.0, 15_000.0, net_today_wh=0.0, **fields)
    (p,), _ = run(s, p0)
    assert p.fields["net_today_wh"] == 9000.0 - 15_000.0
    g = Point("enphase_system", grid, M1 - 300)
    (p,), _ = run(s, g)
    assert "grid_import_today_wh" not in p.fields  # no midnight seen yet
    g2 = Point("enphase_system", {k: v + 300.0 for k, v in grid.items()}, M1 + 300)
    (p,), _ = run(s, g2)
    assert p.fields["grid_import_today_wh"] == pytest.approx(150.0)
    assert p.fields["grid_export_today_wh"] == pytest.approx(150.0)


def test_raw_counters_opt_in_and_events_and_metrics(tmp_path: Path) -> None:
    s = stage(tmp_path, raw=True)
    glitches = metrics.COUNTER_CORRECTIONS.labels("home", "glitch")
    before = glitches._value.get()
    run(s, system(M0 + 3600, 5_000_000.0))
    (p,), events = run(s, system(M0 + 3660, 0.0))
    assert p.fields["production_lifetime_wh_raw"] == 0.0
    assert "production_lifetime_wh" not in p.fields
    assert [(e.tags, e.time) for e in events] == [({"kind": "reboot"}, M0 + 3660)]
    # the zeros come back: counted, but the reboot event already says it
    (p,), events = run(s, system(M0 + 3720, 5_000_020.0))
    assert p.fields["production_lifetime_wh"] == 5_000_020.0 and events == []
    assert glitches._value.get() == before + 1
    # a low answer that is no reboot is an event of its own
    run(s, system(M0 + 3780, 3_800_000.0))
    (p,), events = run(s, system(M0 + 3840, 5_000_050.0))
    (event,) = events
    assert event.measurement == "enphase_event" and event.time == M0 + 3780
    assert event.tags == {"kind": "counter_glitch"}
    assert event.fields["text"] == (
        "enphase_system|production_lifetime_wh: gateway read 3800000.000 Wh after "
        "5000020.000 Wh written; came back: a glitch, those readings were not written "
        "(offset now 0.000 Wh)"
    )
    assert glitches._value.get() == before + 2


def test_one_absurd_power_reading_does_not_let_an_absurd_counter_through(tmp_path: Path) -> None:
    s = stage(tmp_path)
    run(s, system(M0 + 3600, 5_000_000.0))
    glitch = system(M0 + 3660, 9_000_000.0, production_w=1e9)
    (p,), _ = run(s, glitch)
    assert "production_lifetime_wh" not in p.fields
    assert s.store.state.peaks["enphase_system"] == 6000.0  # 2 x max(1 kW, 3 kW)
    (p,), _ = run(s, system(M0 + 3720, 5_000_030.0))
    assert p.fields["production_lifetime_wh"] == 5_000_030.0
