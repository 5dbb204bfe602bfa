"""At stop every gateway's energy state is written (one sync for all), and a
state file that a power cut left empty or garbled is moved aside at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from envoy_ingest.energy.localday import zone
from envoy_ingest.energy.stage import EnergyStage
from envoy_ingest.energy.store import EnergyStore, state_path
from envoy_ingest.point import Point
from envoy_ingest.settings import Settings
from envoy_ingest.sink.file import FileSink
from envoy_ingest.worker.scheduler import Worker

T0 = 1_749_945_600  # 2025-06-15 00:00 UTC


def test_the_stop_flush_writes_every_dirty_state_and_it_loads_back_exactly(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    settings = Settings(
        gateways=[{"host": f"10.0.0.{i}", "serial": f"1222380826{i:02d}"} for i in range(12)],
        file={"directory": tmp_path / "data"},
        state={"directory": state},
    )
    worker = Worker(settings, sink=FileSink(tmp_path / "data"))
    stages = {}
    for i, poller in enumerate(worker.pollers):
        if i == 11:
            continue  # never polled: no energy stage, nothing to write
        store = EnergyStore(state_path(state, f"1222380826{i:02d}"), flush_interval=1e9)
        poller.energy = stages[store.path] = EnergyStage(
            store, zone("Europe/Berlin"), label=poller.label
        )
        for k in range(2):
            life = 1_000_000.0 * (i + 1) + 250.0 * k
            poller.energy.apply(
                [Point("enphase_system", {"production_lifetime_wh": life}, T0 + 60 * k)]
            )
    assert not any(path.exists() for path in stages)  # all dirty, none written yet

    worker.flush_states()

    assert sorted(state.glob("energy-*.json")) == sorted(stages)
    assert not list(state.glob(".*.tmp"))
    for path, stage in stages.items():
        loaded = EnergyStore(path).state
        assert loaded.to_json() == stage.store.state.to_json()
        i = int(path.stem[-2:])
        counter = loaded.counters["enphase_system|production_lifetime_wh"].to_json()
        assert counter["last"] == 1_000_000.0 * (i + 1) + 250.0
        assert stage.store.flush() is False  # clean now: nothing written again


@pytest.mark.parametrize("damage", [b"", b"\0" * 187, b'{"version":1,"coun'])
def test_a_state_file_a_power_cut_left_empty_or_garbled_is_moved_aside(
    tmp_path: Path, damage: bytes
) -> None:
    path = state_path(tmp_path, "122238082690")
    path.write_bytes(damage)
    store = EnergyStore(path)
    assert store.state.to_json() == EnergyStore(tmp_path / "none.json").state.to_json()
    assert not path.exists()
    (aside,) = tmp_path.glob("energy-122238082690.json.corrupt-*")
    assert aside.read_bytes() == damage
