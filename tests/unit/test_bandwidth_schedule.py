"""``--bwlimit``: one rate all day, or a timetable of rates by the time of day, as rclone has it."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from fap.transfer.schedule import BandwidthSchedule, parse_size

MiB = 1024 * 1024
DAY = datetime(2026, 3, 10)


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute, second=second)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("8M", 8 * MiB),
        ("8m", 8 * MiB),
        ("8MiB", 8 * MiB),
        ("8MB", 8 * MiB),
        ("512K", 512 * 1024),
        ("1.5G", 1.5 * 1024**3),
        ("1000000", 1_000_000),
        (" 4M ", 4 * MiB),
    ],
)
def test_a_size_is_bytes_per_second_with_binary_suffixes(text: str, rate: float) -> None:
    assert parse_size(text) == rate


def test_a_single_rate_holds_all_day_and_never_changes_its_value() -> None:
    schedule = BandwidthSchedule.parse("8M")
    for when in (at(0), at(7, 59), at(12), at(23, 59, 59)):
        assert schedule.rate_at(when) == 8 * MiB
    assert not schedule.unlimited
    # Its one boundary is midnight, where it changes to itself.
    assert schedule.next_change(at(12)) == datetime(2026, 3, 11)
    assert schedule.rate_at(schedule.next_change(at(12))) == 8 * MiB


def test_off_alone_limits_nothing() -> None:
    schedule = BandwidthSchedule.parse("off")
    assert schedule.unlimited
    assert schedule.rate_at(at(9)) is None


def test_each_entry_holds_from_its_time_until_the_next_one() -> None:
    schedule = BandwidthSchedule.parse("08:00,4M 12:00,10M 18:00,off")
    assert schedule.rate_at(at(8)) == 4 * MiB
    assert schedule.rate_at(at(11, 59, 59)) == 4 * MiB
    assert schedule.rate_at(at(12)) == 10 * MiB
    assert schedule.rate_at(at(17, 59)) == 10 * MiB
    assert schedule.rate_at(at(18)) is None
    assert not schedule.unlimited


def test_before_the_first_entry_the_last_one_holds_from_the_evening_before() -> None:
    schedule = BandwidthSchedule.parse("08:00,4M 18:00,off")
    assert schedule.rate_at(at(0)) is None
    assert schedule.rate_at(at(7, 59, 59)) is None

    night = BandwidthSchedule.parse("08:00,off 22:00,1M")
    assert night.rate_at(at(3)) == 1 * MiB
    assert night.rate_at(at(23)) == 1 * MiB
    assert night.rate_at(at(9)) is None


def test_the_next_change_is_the_next_entry_or_tomorrows_first() -> None:
    schedule = BandwidthSchedule.parse("08:00,4M 18:00,off")
    assert schedule.next_change(at(3)) == at(8)
    assert schedule.next_change(at(8)) == at(18), "a boundary itself is past: the next one"
    assert schedule.next_change(at(12)) == at(18)
    assert schedule.next_change(at(18)) == datetime(2026, 3, 11, 8)
    assert schedule.next_change(at(23, 59)) == datetime(2026, 3, 11, 8)


def test_the_rate_stays_the_same_until_the_next_change() -> None:
    schedule = BandwidthSchedule.parse("06:30,1M 09:15,2M 17:45,3M 23:00,off")
    when = at(0)
    while when < datetime(2026, 3, 12):
        change = schedule.next_change(when)
        assert change > when
        assert schedule.rate_at(when) == schedule.rate_at(change - timedelta(seconds=1))
        when = change


def test_entries_may_come_in_any_order_and_be_separated_by_semicolons() -> None:
    spaced = BandwidthSchedule.parse("18:00,off 08:00,4M")
    semicolons = BandwidthSchedule.parse("08:00,4M;18:00,off")
    assert spaced == semicolons == BandwidthSchedule.parse("8:00,4M 18:00,OFF")
    assert spaced.starts == (time(8), time(18))


def test_a_timezone_aware_time_is_read_on_its_own_clock() -> None:
    schedule = BandwidthSchedule.parse("08:00,4M 18:00,off")
    when = datetime(2026, 3, 10, 19, tzinfo=UTC)
    assert schedule.rate_at(when) is None
    assert schedule.next_change(when) == datetime(2026, 3, 11, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("fast", "'fast' is not a rate in bytes per second"),
        ("0", "must be above zero"),
        ("-8M", "must be above zero"),
        ("nan", "'nan' is not a rate"),
        ("inf", "'inf' is not a rate"),
        ("8M 4M", "'8M' is not a timetable entry: write HH:MM,RATE"),
        ("08:00 4M", "'08:00' is not a timetable entry"),
        ("0800,4M", "'0800,4M' is not a timetable entry"),
        ("Mon-08:00,4M", "is not a timetable entry"),
        ("24:00,4M", "24:00 is not a time of day"),
        ("08:60,4M", "08:60 is not a time of day"),
        ("08:00,", "'' is not a rate"),
        ("08:00,fast 18:00,off", "'fast' is not a rate"),
        ("08:00,0 18:00,off", "must be above zero"),
        ("08:00,4M 8:00,off", "08:00 appears twice"),
    ],
)
def test_a_mistake_is_one_sentence(text: str, said: str) -> None:
    with pytest.raises(ValueError) as raised:
        BandwidthSchedule.parse(text)
    message = str(raised.value)
    assert said in message
    assert "\n" not in message and message.endswith(".")
