"""The poller keeps of the other job's answers only what that job's normalizer
reads (normalize/kept.py): the points are exactly the same from the reduced
answers as from the whole ones, on every recorded set and on mutated answers."""

from __future__ import annotations

import random
from typing import Any

import pytest

from envoy_ingest import normalize
from envoy_ingest.envoy.capabilities import (
    API_V1_INVERTERS,
    DRY_CONTACT_SETTINGS,
    ENSEMBLE_INVENTORY,
    ENSEMBLE_POWER,
    Capabilities,
    detect,
)
from envoy_ingest.normalize.kept import kept
from tests import fixtures_io as fx
from tests.conftest import fixture_sets, require_fixtures
from tests.test_normalize_mutations import mutate

T = 1_700_000_000
KEPT_PATHS = (API_V1_INVERTERS, ENSEMBLE_INVENTORY, ENSEMBLE_POWER, DRY_CONTACT_SETTINGS)


def same_points(snap: dict[str, Any], caps: Capabilities) -> None:
    """Each job's normalizer gives the same points when the other job's answers it
    reads (its extra paths) are the kept ones, as the poller merges them."""
    jobs = (
        (normalize.totals, caps.totals_paths, caps.totals_extra_paths),
        (
            normalize.devices,
            caps.devices_paths,
            caps.devices_extra_paths + caps.settings_kept_paths,
        ),
    )
    for normalizer, own, extra in jobs:
        whole = {p: snap[p] for p in (*extra, *own) if p in snap}
        reduced = {p: kept(p, snap[p]) for p in extra if p in snap and p not in own}
        assert normalizer({**whole, **reduced}, caps, T) == normalizer(whole, caps, T)


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_kept_answers_give_the_same_points(name: str) -> None:
    require_fixtures()
    d = fx.set_dir(name)
    info, probe, caps = fx.probed(d)
    # Everything either job may read, as both jobs' merged snapshots.
    snap = fx.snapshot(d, [*caps.totals_paths, *caps.devices_paths, *KEPT_PATHS])
    same_points(snap, caps)
    rng = random.Random(name)
    for _ in range(40):
        mutated = {k: mutate(v, rng) for k, v in snap.items()}
        for use in (caps, detect(info, {k: mutate(v, rng) for k, v in probe.items()})):
            same_points(mutated, use)


def test_kept_drops_what_no_reader_reads() -> None:
    inverters = [
        {"serialNumber": "1", "lastReportDate": 1, "devType": 1, "lastReportWatts": 5},
        {"serialNumber": "2", "maxReportWatts": 9},
        "odd",
    ]
    assert kept(API_V1_INVERTERS, inverters) == [
        {"serialNumber": "1", "devType": 1},
        {"serialNumber": "2"},
    ]
    inventory = [
        {"type": "ENCPT", "devices": [{"serial_num": "9"}]},
        {
            "type": "ENCHARGE",
            "devices": [{"serial_num": "3", "percentFull": 50, "temperature": 20}],
        },
    ]
    assert kept(ENSEMBLE_INVENTORY, inventory) == [
        {"type": "ENCHARGE", "devices": [{"serial_num": "3", "percentFull": 50}]}
    ]
    power = {"devices:": [{"serial_num": "3", "real_power_mw": -100, "apparent_power_mva": 1}]}
    assert kept(ENSEMBLE_POWER, power) == {"devices:": [{"serial_num": "3", "real_power_mw": -100}]}
    assert kept(ENSEMBLE_POWER, "<html>") == "<html>"
    assert kept("/production.json?details=1", inventory) is inventory
    settings = {
        "dry_contacts": [
            {"id": "NC1", "load_name": "Pump", "mode": "soc", "soc_low": 30, "gen_action": "x"},
            {"id": "NO1", "pv_serial_nb": []},
            None,
        ],
        "other": 1,
    }
    assert kept(DRY_CONTACT_SETTINGS, settings) == {
        "dry_contacts": [
            {"id": "NC1", "load_name": "Pump", "mode": "soc", "soc_low": 30},
            {"id": "NO1"},
        ]
    }
    assert kept(DRY_CONTACT_SETTINGS, {"error": "x"}) == {}
    assert kept(DRY_CONTACT_SETTINGS, {"dry_contacts": "x"}) == {"dry_contacts": "x"}
