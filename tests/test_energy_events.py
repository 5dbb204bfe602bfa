"""Site events in the energy stage: the grid lost and back (with its duration),
the generator started and stopped, the storage mode or reserve changed; none
on the first observation unless the state file remembers another state."""

from __future__ import annotations

from pathlib import Path

from envoy_ingest.energy.events import duration_text
from envoy_ingest.energy.localday import zone
from envoy_ingest.energy.stage import EnergyStage
from envoy_ingest.energy.store import EnergyStore, state_path
from envoy_ingest.point import FieldValue, Point
from tests.support.fakes import FakeClock

T0 = 1_750_000_000
TZ = zone("Europe/Berlin")
TAGS = {"gateway": "122238082690", "site": "home"}


def stage(tmp: Path) -> EnergyStage:
    store = EnergyStore(state_path(tmp, "122238082690"), flush_interval=300, clock=FakeClock(0.0))
    return EnergyStage(store, TZ, label="home")


def system(t: int, **fields: FieldValue) -> Point:
    return Point("enphase_system", {"production_w": 0.0, **fields}, t)


def events(s: EnergyStage, *points: Point) -> list[tuple[int, str, dict[str, FieldValue]]]:
    _, found = s.apply(list(points), TAGS)
    assert all(e.tags == {"kind": e.tags["kind"], **TAGS} for e in found)
    return [(e.time, e.tags["kind"], dict(e.fields)) for e in found]


def test_grid_lost_and_back_with_its_duration(tmp_path: Path) -> None:
    s = stage(tmp_path)
    assert events(s, system(T0, grid_connected=True)) == []  # the first observation
    assert events(s, system(T0 + 60, grid_connected=True)) == []
    assert events(s, system(T0 + 120, grid_connected=False)) == [
        (T0 + 120, "grid", {"text": "grid lost"})
    ]
    assert events(s, system(T0 + 180, grid_connected=False)) == []
    assert events(s, system(T0 + 120 + 5100, grid_connected=True)) == [
        (T0 + 5220, "grid", {"text": "grid back after 1 h 25 min", "duration_s": 5100.0})
    ]
    assert events(s, system(T0 + 60, grid_connected=False)) == []  # older: ignored


def test_an_outage_across_a_restart_ends_with_its_whole_duration(tmp_path: Path) -> None:
    s = stage(tmp_path)
    events(s, system(T0, grid_connected=True))
    events(s, system(T0 + 60, grid_connected=False))  # an event: the state is written at once
    again = stage(tmp_path)
    assert events(again, system(T0 + 3660, grid_connected=True)) == [
        (T0 + 3660, "grid", {"text": "grid back after 1 h 00 min", "duration_s": 3600.0})
    ]


def test_no_event_on_the_first_observation_after_start(tmp_path: Path) -> None:
    s = stage(tmp_path)
    assert events(s, system(T0, grid_connected=False, storage_mode="backup")) == []
    again = stage(tmp_path)
    assert events(again, system(T0 + 60, grid_connected=False)) == []


def test_generator_started_and_stopped(tmp_path: Path) -> None:
    s = stage(tmp_path)

    def gen(t: int, running: bool) -> Point:
        return Point("enphase_generator", {"running": running, "oper_state": "x"}, t)

    assert events(s, gen(T0, False)) == []
    assert events(s, gen(T0 + 300, True)) == [
        (T0 + 300, "generator", {"text": "generator started"})
    ]
    out, found = s.apply([gen(T0 + 2700, False)], TAGS)
    assert out == [
        Point("enphase_generator", {"running": False, "oper_state": "x"}, T0 + 2700, TAGS)
    ]
    assert [(e.tags["kind"], e.fields) for e in found] == [
        ("generator", {"text": "generator stopped after 40 min", "duration_s": 2400.0})
    ]


def test_storage_mode_and_reserve_changes(tmp_path: Path) -> None:
    s = stage(tmp_path)
    first = system(T0, storage_mode="self-consumption", storage_reserve_pct=20.0)
    assert events(s, first) == []
    assert events(s, system(T0 + 60, storage_mode="self-consumption")) == []
    assert events(s, system(T0 + 3600, storage_mode="backup", storage_reserve_pct=100.0)) == [
        (
            T0 + 3600,
            "storage_mode",
            {
                "text": "storage mode changed from self-consumption to backup; "
                "battery reserve changed from 20 % to 100 %"
            },
        )
    ]
    assert events(s, system(T0 + 7200, storage_reserve_pct=30.0)) == [
        (T0 + 7200, "storage_mode", {"text": "battery reserve changed from 100 % to 30 %"})
    ]


def test_durations_read_as_people_say_them() -> None:
    assert [duration_text(s) for s in (45, 420, 7500, 90000)] == [
        "45 s",
        "7 min",
        "2 h 05 min",
        "25 h 00 min",
    ]
