"""The token policy's time arithmetic (envoy/tokens/policy.py): pure functions,
tested with plain numbers."""

from __future__ import annotations

import pytest

from envoy_ingest.envoy.tokens.claims import DAY, TokenInfo
from envoy_ingest.envoy.tokens.policy import (
    MAX_IDLE,
    MIN_SLEEP,
    due,
    next_wake,
    pasted_wakes,
    pasted_warnings,
    renew_at,
    renewal_time,
    sleep_for,
)

T0 = 1_750_000_000.0
YEAR = 365 * DAY


def token(expires: float, issued: float | None) -> TokenInfo:
    return TokenInfo("not-a-real-token", expires, issued, "owner", "Enlighten")


def test_renew_at_a_tenth_of_the_lifetime_at_most_30_days_ahead() -> None:
    hour = token(T0 + 3600, T0)
    assert renew_at(hour, T0, False, T0) == T0 + 3600 - 360
    year = token(T0 + YEAR, T0)
    assert renew_at(year, T0, False, T0) == T0 + YEAR - 30 * DAY
    # without an issue time the lifetime counts from when it was obtained
    assert renew_at(token(T0 + 1000, None), T0 - 1000, False, T0) == T0 + 1000 - 200
    assert renew_at(None, T0, False, T0 + 5) == T0 + 5  # none: at once
    assert renew_at(year, T0, True, T0 + 5) == T0 + 5  # refused: at once


def test_due_from_the_renewal_time_on() -> None:
    hour = token(T0 + 3600, T0)
    assert not due(hour, T0, False, T0 + 3239)
    assert due(hour, T0, False, T0 + 3240)
    assert due(hour, T0, False, T0 + 4000)  # expired: still due


def test_renewal_time_waits_for_the_account_s_backoff() -> None:
    hour = token(T0 + 3600, T0)
    assert renewal_time(hour, T0, False, 0.0, T0) == T0 + 3240
    assert renewal_time(hour, T0, False, T0 + 5000, T0) == T0 + 5000  # backoff is later
    assert renewal_time(None, T0, False, T0 + 60, T0) == T0 + 60
    assert renewal_time(hour, T0, True, 0.0, T0 + 10) == T0 + 10


def test_next_wake_is_the_earliest_and_at_most_an_hour_away() -> None:
    assert next_wake(T0, []) == T0 + MAX_IDLE == T0 + 3600
    assert next_wake(T0, [T0 + 7200, T0 + 90]) == T0 + 90
    assert next_wake(T0, [T0 - 50]) == T0 - 50  # overdue: now


@pytest.mark.parametrize(
    ("wake", "slept"),
    [(T0 + 90, 90.0), (T0, MIN_SLEEP), (T0 - 50, MIN_SLEEP), (T0 + 9000, MAX_IDLE)],
)
def test_sleep_for_is_bounded(wake: float, slept: float) -> None:
    assert sleep_for(wake, T0) == slept


def test_pasted_warnings_once_per_threshold() -> None:
    assert pasted_warnings(31 * DAY, set()) == set()
    assert pasted_warnings(30 * DAY, set()) == {30.0}
    assert pasted_warnings(29 * DAY, {30.0}) == set()
    assert pasted_warnings(6 * DAY, {30.0}) == {30.0, 7.0}  # the new one, said with the old
    assert pasted_warnings(0.5 * DAY, {30.0, 7.0}) == {30.0, 7.0, 1.0}
    assert pasted_warnings(0.0, {30.0, 7.0, 1.0}) == {0.0}
    assert pasted_warnings(-DAY, {0.0}) == set()


def test_pasted_wakes_are_the_warnings_not_given_yet() -> None:
    expires = T0 + 40 * DAY
    assert pasted_wakes(expires, set()) == [
        expires - 30 * DAY,
        expires - 7 * DAY,
        expires - DAY,
        expires,
    ]
    assert pasted_wakes(expires, {30.0, 7.0}) == [expires - DAY, expires]
    assert pasted_wakes(expires, {30.0, 7.0, 1.0, 0.0}) == []
