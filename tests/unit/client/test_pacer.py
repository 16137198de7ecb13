"""The uploader's pacing follows the bandwidth schedule live, as the clock crosses each boundary.

The wall clock the schedule is read by is injected; the spacing is asked of the pacer at given
loop times, so no test sleeps through a boundary or measures a rate.
"""

from __future__ import annotations

from datetime import datetime

from fap.client.uploader import _Pacer
from fap.transfer.schedule import BandwidthSchedule

MiB = 1024 * 1024


class Clock:
    """A wall clock the test sets."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def pacer(timetable: str, clock: Clock) -> _Pacer:
    return _Pacer(BandwidthSchedule.parse(timetable), clock=clock)


def test_puts_are_spaced_so_the_rate_in_force_is_not_exceeded() -> None:
    clock = Clock(datetime(2026, 3, 10, 9))
    paced = pacer("08:00,1M 18:00,off", clock)

    assert paced.delay(MiB, now=100.0) == 0.0, "the first PUT starts at once"
    assert paced.delay(MiB, now=100.0) == 1.0, "the next waits for the first's second"
    assert paced.delay(MiB // 2, now=100.5) == 1.5
    # A link left idle builds no credit: a PUT after a pause starts at once, then paces again.
    assert paced.delay(MiB, now=200.0) == 0.0
    assert paced.delay(MiB, now=200.0) == 1.0


def test_the_limit_lifts_as_the_clock_crosses_into_off() -> None:
    clock = Clock(datetime(2026, 3, 10, 17, 59, 58))
    paced = pacer("08:00,1M 18:00,off", clock)
    paced.delay(4 * MiB, now=0.0)
    assert paced.delay(MiB, now=1.0) == 3.0, "before 18:00: 1 MiB/s"

    clock.now = datetime(2026, 3, 10, 18, 0)
    assert paced.delay(MiB, now=2.0) == 0.0, "the backlog at the old rate is not waited for"
    assert paced.delay(1024 * MiB, now=2.0) == 0.0


def test_the_limit_comes_back_at_the_next_mornings_boundary() -> None:
    clock = Clock(datetime(2026, 3, 10, 23, 0))
    paced = pacer("08:00,4M 18:00,off", clock)
    assert paced.delay(100 * MiB, now=0.0) == 0.0
    clock.now = datetime(2026, 3, 11, 7, 59, 59)
    assert paced.delay(100 * MiB, now=10.0) == 0.0, "still off, from the evening before"

    clock.now = datetime(2026, 3, 11, 8, 0)
    assert paced.delay(4 * MiB, now=20.0) == 0.0
    assert paced.delay(4 * MiB, now=20.0) == 1.0, "from 08:00: 4 MiB/s"


def test_a_rate_that_changes_paces_each_put_at_the_rate_in_force_when_it_was_taken() -> None:
    clock = Clock(datetime(2026, 3, 10, 11, 59))
    paced = pacer("08:00,1M 12:00,4M", clock)
    assert paced.delay(2 * MiB, now=0.0) == 0.0  # 2 s at 1 MiB/s
    clock.now = datetime(2026, 3, 10, 12, 0)
    assert paced.delay(4 * MiB, now=0.0) == 2.0  # after the first; 1 s at 4 MiB/s
    assert paced.delay(4 * MiB, now=0.0) == 3.0


def test_a_clock_set_back_across_a_boundary_brings_the_earlier_rate_back() -> None:
    clock = Clock(datetime(2026, 3, 10, 18, 30))
    paced = pacer("08:00,1M 18:00,off", clock)
    assert paced.delay(MiB, now=0.0) == 0.0
    assert paced.delay(MiB, now=0.0) == 0.0

    clock.now = datetime(2026, 3, 10, 17, 30)  # a correction, or the end of summer time
    assert paced.delay(MiB, now=1.0) == 0.0
    assert paced.delay(MiB, now=1.0) == 1.0


def test_a_single_rate_paces_all_day() -> None:
    clock = Clock(datetime(2026, 3, 10, 23, 59, 59))
    paced = pacer("2M", clock)
    assert paced.delay(2 * MiB, now=0.0) == 0.0
    clock.now = datetime(2026, 3, 11, 0, 0, 1)
    assert paced.delay(2 * MiB, now=0.0) == 1.0


async def test_taking_while_off_does_not_wait() -> None:
    # At one byte a second, any wait would outlast the test's timeout: none is taken.
    clock = Clock(datetime(2026, 3, 10, 19, 0))
    paced = pacer("08:00,1 18:00,off", clock)
    for _ in range(3):
        await paced.take(1024 * MiB)
