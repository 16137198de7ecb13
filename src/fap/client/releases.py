"""Telling the user that a newer fap is out: at most once a day, and never by updating itself.

Every answer of a server names the newest client release it knows of (``Fap-Client-Latest``: its
own version, unless its operator sets ``client_latest``). When that is newer than this fap, the
command says so on stderr, the way it gives every warning, and records when in ``release-notice``
in the fap home (0600), so that the day's first command says it and the others do not. A notice
that cannot be recorded (a read-only home) is not shown at all: at most once a day is the promise.
A release that is not plain ``X.Y.Z`` digits is ignored.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from fap import __version__
from fap.api import CLIENT_RELEASE
from fap.client.private import write_private_text

__all__ = ("NOTICE_FILE", "QUIET_SECONDS", "is_newer", "release_notice")

log = logging.getLogger(__name__)

NOTICE_FILE = "release-notice"
QUIET_SECONDS = 24 * 3600.0

_LEADING = re.compile(r"\d+(?:\.\d+)*")


def is_newer(latest: str, current: str = __version__) -> bool:
    """Whether release ``latest`` (X.Y.Z) comes after ``current`` (whose pre-release or dev
    suffix, if any, is not compared)."""
    if not CLIENT_RELEASE.fullmatch(latest.strip()):
        return False
    ours = _LEADING.match(current.strip())
    if ours is None:
        return False
    theirs_parts = [int(part) for part in latest.strip().split(".")]
    ours_parts = [int(part) for part in ours.group().split(".")]
    width = max(len(theirs_parts), len(ours_parts))
    theirs_parts += [0] * (width - len(theirs_parts))
    ours_parts += [0] * (width - len(ours_parts))
    return theirs_parts > ours_parts


def release_notice(
    home: Path, latest: str | None, *, current: str = __version__, now: float | None = None
) -> str | None:
    """The sentence to tell the user now, recorded as told; None when there is nothing to tell,
    or it was told less than a day ago."""
    if latest is None or not is_newer(latest, current):
        return None
    now = time.time() if now is None else now
    last = _last_notice(home / NOTICE_FILE)
    if last is not None and 0 <= now - last < QUIET_SECONDS:
        return None
    try:
        write_private_text(home / NOTICE_FILE, f"{now!r}\n{latest.strip()}\n")
    except OSError as error:
        log.debug("the release notice cannot be recorded in %s: %s", home, error)
        return None
    return (
        f"fap {latest.strip()} is out (this is {current}); upgrade when it suits you: fap never "
        "updates itself."
    )


def _last_notice(path: Path) -> float | None:
    """When the last notice was told, from the first line of its record."""
    try:
        first = path.read_text(encoding="utf-8").partition("\n")[0]
        return float(first)
    except (OSError, ValueError):
        return None
