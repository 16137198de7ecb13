"""The one backoff rule: doubling from ``first``, capped, jittered by ±50 % where asked."""

from __future__ import annotations

import pytest

from fap.backoff import Backoff


def test_waits_double_from_the_first_up_to_the_cap() -> None:
    plain = Backoff(first=0.5, cap=3.0, jitter=False)
    assert [plain.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_attempt_zero_or_less_waits_the_first_delay() -> None:
    assert Backoff(first=0.25, cap=1.0, jitter=False).delay(0) == 0.25


def test_a_very_late_attempt_waits_the_cap_without_overflowing() -> None:
    assert Backoff(first=0.1, cap=30.0, jitter=False).delay(100_000) == 30.0


@pytest.mark.parametrize("attempt", [1, 2, 3, 10])
def test_jitter_stays_within_half_and_one_and_a_half_times_the_curve(attempt: int) -> None:
    jittered = Backoff(first=0.4, cap=5.0)
    plain = Backoff(first=0.4, cap=5.0, jitter=False).delay(attempt)
    waits = {jittered.delay(attempt) for _ in range(200)}
    assert all(0.5 * plain <= wait < 1.5 * plain for wait in waits)
    assert len(waits) > 1  # spread out, not one value
