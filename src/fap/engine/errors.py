"""What can stop an engine from starting, and how an analyzer's failure is told in one line.

The engine keeps to itself: the CLI turns EngineSetupError into fap's own error tree, so no other
fap module is needed here.
"""

from __future__ import annotations

__all__ = ("EngineSetupError", "one_line")

# An error's sentence becomes a job's error, shown by `fap upload` and `fap status`: a line, not
# a page. Long enough for a path and a reason.
ONE_LINE = 300


class EngineSetupError(Exception):
    """The engine cannot start: a bad analyzer, engine name or socket path. ``str()`` says which."""


def one_line(error: BaseException) -> str:
    """``TypeName: first line of the message``, at most ``ONE_LINE`` characters."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0].strip()}" if lines else type(error).__name__
    return text if len(text) <= ONE_LINE else text[: ONE_LINE - 1] + "…"
