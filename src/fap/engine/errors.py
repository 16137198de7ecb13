"""What can stop an engine from starting. The engine keeps to itself: the CLI turns this into
fap's own error tree, so no other fap module is needed here."""

from __future__ import annotations

__all__ = ("EngineSetupError",)


class EngineSetupError(Exception):
    """The engine cannot start: a bad analyzer, engine name or socket path. ``str()`` says which."""
