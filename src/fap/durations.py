"""Durations as people write them on a command line: ``90s``, ``15m``, ``24h``, ``30d``.

A bare number is seconds, as in every ``--…-seconds`` option; a unit makes long spans readable
(``--keep-results 30d`` rather than ``2592000``). Sentences quote durations back in the same units.
"""

from __future__ import annotations

import math
import re

from fap.errors import ConfigError

__all__ = ("format_duration", "parse_duration")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*")


def parse_duration(text: str | float, what: str) -> float:
    """Seconds in ``text`` (``"45"``, ``"90s"``, ``"15m"``, ``"24h"``, ``"30d"``); ``what`` names
    the setting in the error."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.fullmatch(str(text).lower())
        if match is None:
            raise ConfigError(
                f"{what} must be a duration such as 90s, 15m, 24h or 30d (or seconds), "
                f"not {text!r}."
            )
        seconds = float(match[1]) * _UNITS[match[2] or "s"]
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{what} must be a duration of 0 or more seconds, not {text!r}.")
    return seconds


def format_duration(seconds: float) -> str:
    """``seconds`` in a unit that says it whole: ``"45 s"``, ``"15 min"``, ``"24 h"``, ``"30 d"``.

    Days only from two days on: "24 h" reads better than "1 d" for the day-long defaults.
    """
    for unit, size, least in (("d", 86400, 2 * 86400), ("h", 3600, 3600), ("min", 60, 60)):
        if seconds >= least and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"
