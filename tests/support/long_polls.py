"""Server processes whose long-polls may last far longer than any test runs.

A test that checks a long-poll was *woken* (by work, a result, a shutdown), not ended by its time
running out, asks for a poll of :data:`FOREVER` seconds from a server that allows it. That is
longer than the test may run at all (pytest's timeout): a poll that answers was woken, however
slow the machine, and the test asserts on the answer instead of on seconds.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ("FOREVER", "WOKEN_WITHIN", "held_forever")

FOREVER = 3600.0
# How long a test waits for a wake-up's answer before it fails: generous on a loaded machine,
# and far below FOREVER, so that an answer within it cannot be a timeout's.
WOKEN_WITHIN = 60.0


def held_forever(home: Path) -> dict[str, str]:
    """The environment of a ``fap serve`` whose long-polls may last FOREVER: a fap home at
    ``home`` whose config file raises the server's cap (20 s by default)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f"[server]\nlong_poll_seconds = {FOREVER}\n")
    return {"FAP_HOME": str(home)}
