"""Firmware we have not seen: every recorded answer, mutated many ways (keys
dropped, numbers as strings, NaN / inf / huge values, nulls, HTML, lists
shortened or repeated), must never make the probe or the normalizers raise, nor
write a field of the wrong type, a non-finite number or a bad time."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from envoy_ingest import normalize
from envoy_ingest.envoy.capabilities import detect, probe_paths
from tests import fixtures_io as fx
from tests.conftest import fixture_sets, require_fixtures
from tests.contract import CODES, COUNTS, FLAGS, STATES, TAGS

ROUNDS = 120
ODD_VALUES: list[Any] = [None, "", "abc", "12.5", "NaN", "inf", "1e400", -5, 10**20, [], {}]
ODD_VALUES += ["<html><body>401</body></html>", True, 0, 1.5e308, float("nan")]


def mutate(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            roll = rng.random()
            if roll < 0.1:
                continue  # key dropped
            out[key] = rng.choice(ODD_VALUES) if roll < 0.25 else mutate(item, rng)
        return out
    if isinstance(value, list):
        items = [mutate(item, rng) for item in value if rng.random() > 0.1]
        return items + items[:1] if rng.random() < 0.1 else items
    if isinstance(value, int | float) and not isinstance(value, bool) and rng.random() < 0.2:
        return rng.choice([str(value), -value, value * 1e6, float(value)])
    return value


def check(points: list[Any]) -> None:
    for p in points:
        assert p.measurement in TAGS, p
        assert type(p.time) is int and p.time > 0, p
        assert set(p.tags) <= TAGS[p.measurement], p
        assert all(isinstance(v, str) and v for v in p.tags.values()), p
        for key, value in p.fields.items():
            if key in COUNTS:
                assert type(value) is int and value >= 0, (p.measurement, key, value)
            elif key in CODES:
                assert type(value) is int, (p.measurement, key, value)
            elif key in FLAGS:
                assert type(value) is bool, (p.measurement, key, value)
            elif key in STATES:
                assert type(value) is str and value, (p.measurement, key, value)
            else:
                assert type(value) is float and math.isfinite(value), (p.measurement, key, value)


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_mutated_answers_never_break_the_pipeline(name: str) -> None:
    require_fixtures()
    rng = random.Random(name)  # deterministic per set
    d = fx.set_dir(name)
    info = fx.info(d)
    probe = fx.snapshot(d, probe_paths(info))
    caps = fx.capabilities(d)
    totals = fx.totals_snapshot(d, caps)
    devices = fx.devices_snapshot(d, caps)
    for _ in range(ROUNDS):
        mutated_caps = detect(info, {k: mutate(v, rng) for k, v in probe.items()})
        for use in (caps, mutated_caps):
            check(
                normalize.totals({k: mutate(v, rng) for k, v in totals.items()}, use, 1_700_000_000)
            )
            check(
                normalize.devices(
                    {k: mutate(v, rng) for k, v in devices.items()}, use, 1_700_000_000
                )
            )


@pytest.mark.parametrize("name", fixture_sets() or ["<missing>"])
def test_every_answer_replaced_by_garbage(name: str) -> None:
    """Each endpoint alone answering HTML, an error object, [] or null."""
    require_fixtures()
    d = fx.set_dir(name)
    caps = fx.capabilities(d)
    totals = fx.totals_snapshot(d, caps)
    devices = fx.devices_snapshot(d, caps)
    garbage_answers: list[Any] = ["<html>error</html>", {"error": "404 - Not Found"}, [], None, 0]
    for garbage in garbage_answers:
        for snap, normalizer in ((totals, normalize.totals), (devices, normalize.devices)):
            for path in snap:
                check(normalizer({**snap, path: garbage}, caps, 1_700_000_000))
