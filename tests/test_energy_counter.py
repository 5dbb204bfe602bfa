"""The counter state machine, fault by fault, with exact values."""

from __future__ import annotations

import json

import pytest

from envoy_ingest.energy.counter import (
    SLACK_WH,
    WRAP_WH,
    Counter,
    Outcome,
    bound_wh,
    update,
)

RATE = 9000.0  # W: 3 x a 3 kW site
LIFE = 88_712_345.5


def feed(c: Counter, readings: list[tuple[int, float]]) -> list[Outcome]:
    return [update(c, t, raw, RATE) for t, raw in readings]


def values(outs: list[Outcome]) -> list[float | None]:
    return [o.value for o in outs]


def kinds(outs: list[Outcome]) -> list[str]:
    return [o.correction.kind for o in outs if o.correction is not None]


def test_a_healthy_counter_is_written_as_read() -> None:
    c = Counter()
    readings = [(1000 + 60 * i, LIFE + 25.5 * i) for i in range(5)]
    outs = feed(c, readings)
    assert values(outs) == [v for _, v in readings]
    assert kinds(outs) == [] and c.offset == 0


def test_reboot_zeros_are_held_and_dropped_when_the_counter_comes_back() -> None:
    c = Counter()
    outs = feed(c, [(0, LIFE), (60, 0.0), (120, 0.0), (180, LIFE + 30.0)])
    assert values(outs) == [LIFE, None, None, LIFE + 30.0]
    (corr,) = [o.correction for o in outs if o.correction]
    assert corr.kind == "glitch" and corr.since == 60 and corr.held == (0.0, 0.0)
    assert corr.last == LIFE and c.offset == 0


def test_zeros_lasting_under_an_hour_stay_held_then_count_as_a_reset() -> None:
    c = Counter()
    feed(c, [(0, LIFE)])
    held = feed(c, [(60 * i, 0.0) for i in range(1, 60)])  # 59 minutes of zeros
    assert set(values(held)) == {None}
    out = update(c, 3660, 0.0, RATE)  # an hour of zeros: the gateway was wiped
    assert out.value == LIFE and out.correction is not None
    assert out.correction.kind == "reset" and c.offset == LIFE
    assert update(c, 3720, 12.0, RATE).value == LIFE + 12.0


def test_a_one_off_low_answer_is_a_glitch() -> None:
    c = Counter()
    outs = feed(c, [(0, LIFE), (60, LIFE - 1_200_000.0), (120, LIFE + 40.0)])
    assert values(outs) == [LIFE, None, LIFE + 40.0]
    assert kinds(outs) == ["glitch"]


def test_a_one_off_high_answer_is_a_glitch() -> None:
    c = Counter()
    outs = feed(c, [(0, LIFE), (60, LIFE + 1_200_000.0), (120, LIFE + 40.0)])
    assert values(outs) == [LIFE, None, LIFE + 40.0]
    assert kinds(outs) == ["glitch"]


def test_an_inverter_wrap_is_compensated_exactly() -> None:
    c = Counter(wraps=True)
    before = 5_400_000.0
    # One inverter wrapped: the total steps down by 2^32 J, for good; 300 s reports.
    readings = [(0, before), (300, before + 20.0 - WRAP_WH)]
    readings += [(300 * i, before + 20.0 * i - WRAP_WH) for i in range(2, 5)]
    outs = feed(c, readings)
    assert values(outs)[:3] == [before, None, None]
    assert outs[3].correction is not None and outs[3].correction.kind == "wrap"
    assert c.offset == WRAP_WH
    # The energy produced while held is kept: the counter carries on exactly.
    assert outs[3].value == pytest.approx(before + 60.0, abs=1e-6)
    assert outs[4].value == pytest.approx(before + 80.0, abs=1e-6)


def test_two_wraps_at_once_are_compensated() -> None:
    c = Counter(wraps=True)
    feed(c, [(0, 3_000_000.0)])
    outs = feed(c, [(300 * i, 3_000_000.0 + i - 2 * WRAP_WH) for i in range(1, 4)])
    assert kinds(outs) == ["wrap"] and c.offset == 2 * WRAP_WH
    assert outs[-1].value == pytest.approx(3_000_003.0, abs=1e-6)


def test_a_wrap_sized_fall_of_a_ct_counter_is_a_reset() -> None:
    c = Counter(wraps=False)
    feed(c, [(0, 3_000_000.0)])
    outs = feed(c, [(300 * i, 3_000_000.0 + i - WRAP_WH) for i in range(1, 4)])
    assert kinds(outs) == ["reset"]
    assert outs[-1].value == 3_000_000.0 + 2.0  # carries on from the first held reading


def test_a_persistent_reset_carries_on_from_the_last_written_value() -> None:
    c = Counter()
    outs = feed(c, [(0, LIFE), (300, 100.0), (600, 130.0), (900, 170.0), (1200, 200.0)])
    assert values(outs) == [LIFE, None, None, LIFE + 70.0, LIFE + 100.0]
    assert kinds(outs) == ["reset"] and c.offset == LIFE - 100.0


def test_an_implausible_jump_up_that_stays_carries_on() -> None:
    c = Counter()
    other = LIFE + 35_000_000.0  # a value from another gateway
    outs = feed(c, [(0, LIFE), (300, other), (600, other + 10.0), (900, other + 20.0)])
    assert values(outs) == [LIFE, None, None, LIFE + 20.0]
    assert kinds(outs) == ["jump"]


def test_energy_that_fits_the_elapsed_time_is_believed_after_a_gap() -> None:
    c = Counter()
    six_hours = 6 * 3600
    allowed = bound_wh(RATE, six_hours)
    assert allowed == RATE * 6 + SLACK_WH
    outs = feed(c, [(0, LIFE), (six_hours, LIFE + 20_000.0)])
    assert values(outs) == [LIFE, LIFE + 20_000.0]
    # ... but not more than could have been produced in that time.
    c2 = Counter()
    assert feed(c2, [(0, LIFE), (60, LIFE + 20_000.0)])[1].value is None


def test_a_first_reading_of_zero_waits_for_a_real_one() -> None:
    c = Counter()
    outs = feed(c, [(0, 0.0), (60, 0.0), (120, LIFE)])
    assert values(outs) == [None, None, LIFE]
    assert c.offset == 0


def test_a_new_gateway_whose_counter_starts_at_zero_is_believed_after_an_hour() -> None:
    c = Counter()
    outs = feed(c, [(600 * i, 0.0) for i in range(7)])
    assert values(outs) == [None] * 6 + [0.0]


def test_a_net_counter_may_fall_but_not_to_a_reboot_zero() -> None:
    c = Counter(signed=True)
    outs = feed(c, [(0, -500_000.0), (60, -500_030.0), (120, 0.0), (180, -500_040.0)])
    assert values(outs) == [-500_000.0, -500_030.0, None, -500_040.0]
    assert kinds(outs) == ["glitch"]


def test_report_times_that_repeat_or_go_back() -> None:
    c = Counter()
    feed(c, [(1000, LIFE)])
    assert update(c, 1000, LIFE, RATE).value == LIFE  # the same report read again
    assert update(c, 1000, LIFE + 5.0, RATE).value is None
    assert update(c, 900, LIFE + 5.0, RATE).value is None  # never written before the last
    assert c.last == LIFE and c.last_t == 1000


def test_a_fall_within_rounding_is_written_as_the_last_value() -> None:
    c = Counter()
    outs = feed(c, [(0, 1000.4), (60, 1000.0), (120, 1001.0)])
    assert values(outs) == [1000.4, 1000.4, 1001.0]
    assert kinds(outs) == []


def test_state_round_trips_through_json_and_rejects_damage() -> None:
    c = Counter(wraps=True)
    feed(c, [(0, LIFE), (60, 0.0)])
    again = Counter.from_json(json.loads(json.dumps(c.to_json())))
    assert again == c
    bad: object
    for bad in ({"signed": "no"}, [], {**c.to_json(), "offset": float("nan")}):
        with pytest.raises((ValueError, KeyError)):
            Counter.from_json(bad)
