"""Sizes as people write them on a command line: ``512M``, ``2G``, ``1.5GiB``, ``4096``.

A bare number is bytes. A unit is a power of 1024 whether it is written ``G``, ``GB`` or ``GiB``
(as ``ulimit``, Docker and systemd read them): a memory limit of ``2G`` is 2 GiB. Sentences quote
sizes back in binary units (``"512 MiB"``).
"""

from __future__ import annotations

import math
import re

from fap.errors import ConfigError

__all__ = ("format_size", "parse_size")

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])(?:i?b)?|(b?))\s*")
# Words that mean "no limit" where a setting allows one (its value is then 0).
_UNLIMITED = frozenset({"0", "unlimited", "none", "off"})


def parse_size(text: str | int, what: str, *, unlimited: bool = False) -> int:
    """Bytes in ``text`` (``"4096"``, ``"512M"``, ``"2G"``, ``"1.5GiB"``); ``what`` names the
    setting in the error. With ``unlimited``, ``0`` or ``"unlimited"`` answer 0: no limit."""
    if isinstance(text, int) and not isinstance(text, bool):
        size = float(text)
    elif unlimited and str(text).strip().lower() in _UNLIMITED:
        return 0
    else:
        match = _SIZE.fullmatch(str(text).lower())
        if match is None:
            allowed = " (or unlimited)" if unlimited else ""
            raise ConfigError(
                f"{what} must be a size such as 512M, 2G or 4096 (bytes){allowed}, not {text!r}."
            )
        size = float(match[1]) * _UNITS[match[2] or ""]
    if not math.isfinite(size) or size < 0 or (size == 0 and not unlimited):
        raise ConfigError(f"{what} must be a size of more than 0 bytes, not {text!r}.")
    return round(size)


def format_size(size: int) -> str:
    """``size`` in the largest binary unit that says it in few digits: ``"512 MiB"``,
    ``"1.5 GiB"``, ``"1000 bytes"``."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and (size * 10) % scale == 0:
            return f"{size / scale:g} {unit}"
    return f"{size} bytes"
