"""A bandwidth limit that may change with the time of day, as rclone's ``--bwlimit`` has it.

Either one rate (``8M``), in force all day, or a timetable of ``HH:MM,RATE`` entries separated
by spaces (or semicolons): ``"08:00,4M 18:00,off"``. The entry in force at a time of day is the
last one that started at or before it; before the first entry of the day, the day's last entry
is still in force (from the evening before). ``off`` means no limit.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, time, timedelta

__all__ = ("BandwidthSchedule", "parse_size")

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_ENTRY = re.compile(r"(?P<hour>\d{1,2}):(?P<minute>\d{2}),(?P<rate>.*)")


def parse_size(text: str) -> float:
    """Bytes per second from ``8M``, ``512K``, ``1.5GiB`` or ``1000000`` (binary suffixes).

    ``ValueError`` (one sentence) for anything else, or for a rate that is not above zero.
    """
    upper = text.strip().upper()
    upper = upper.removesuffix("IB") if upper.endswith("IB") else upper.removesuffix("B")
    unit = upper[-1] if upper and upper[-1] in "KMG" else ""
    try:
        rate = float(upper[: len(upper) - len(unit)]) * _UNITS[unit]
    except ValueError:
        rate = math.nan
    # NaN and infinity parse as floats, and are no rate either.
    if not math.isfinite(rate):
        raise ValueError(f"{text!r} is not a rate in bytes per second (e.g. 8M).")
    if rate <= 0:
        raise ValueError("The bandwidth limit must be above zero.")
    return rate


@dataclass(frozen=True, slots=True)
class BandwidthSchedule:
    """Rates (bytes per second; None: no limit) by the time of day they start, earliest first.

    Times are wall-clock times of day, compared with whatever ``datetime`` the caller passes
    (local time, for a user's ``--bwlimit``).
    """

    starts: tuple[time, ...]
    rates: tuple[float | None, ...]

    @classmethod
    def constant(cls, rate: float | None) -> BandwidthSchedule:
        """One rate, all day."""
        return cls((time(0, 0),), (rate,))

    @classmethod
    def parse(cls, text: str) -> BandwidthSchedule:
        """A single rate or a timetable; ``ValueError`` with one sentence on a mistake."""
        entries = text.replace(";", " ").split()
        if not entries:
            raise ValueError(
                "The bandwidth limit is empty: give a rate (8M) or HH:MM,RATE entries."
            )
        if len(entries) == 1 and "," not in entries[0]:
            return cls.constant(_rate(entries[0]))
        timetable: dict[time, float | None] = {}
        for entry in entries:
            match = _ENTRY.fullmatch(entry)
            if match is None:
                raise ValueError(
                    f"{entry!r} is not a timetable entry: write HH:MM,RATE, for example "
                    '"08:00,4M 18:00,off".'
                )
            hour, minute = int(match["hour"]), int(match["minute"])
            if hour > 23 or minute > 59:
                raise ValueError(
                    f"{entry!r}: {match['hour']}:{match['minute']} is not a time of day."
                )
            start = time(hour, minute)
            if start in timetable:
                raise ValueError(f"{start:%H:%M} appears twice in the bandwidth timetable.")
            timetable[start] = _rate(match["rate"])
        starts = tuple(sorted(timetable))
        return cls(starts, tuple(timetable[start] for start in starts))

    @property
    def unlimited(self) -> bool:
        """No entry limits anything."""
        return all(rate is None for rate in self.rates)

    def rate_at(self, when: datetime) -> float | None:
        """The rate in force at ``when``; None when it is not limited."""
        # Index -1 before the day's first start: the last entry, carried over from the evening.
        return self.rates[bisect_right(self.starts, when.time()) - 1]

    def next_change(self, when: datetime) -> datetime:
        """The first start after ``when`` (tomorrow's first, after the day's last start).

        The rate in force stays the same from ``when`` until then.
        """
        following = bisect_right(self.starts, when.time())
        if following < len(self.starts):
            return datetime.combine(when.date(), self.starts[following], when.tzinfo)
        tomorrow = when.date() + timedelta(days=1)
        return datetime.combine(tomorrow, self.starts[0], when.tzinfo)


def _rate(text: str) -> float | None:
    return None if text.strip().lower() == "off" else parse_size(text)
