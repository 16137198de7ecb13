"""The client's small remembered state: the server last used.

Kept as one line in ``last-server`` in the fap home, so ``fap results list`` after a
``fap upload --server URL`` needs no ``--server``. A server of several replicas is kept as the
whole comma-separated list, so later commands fail over just as the first one did.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from fap.api import parse_servers
from fap.client.private import FILE_MODE, make_private_dir
from fap.errors import ConfigError

__all__ = ("last_server", "remember_server", "resolve_server")

_LAST_SERVER = "last-server"


def last_server(home: Path) -> str | None:
    try:
        text = (home / _LAST_SERVER).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


def remember_server(home: Path, server: str) -> None:
    """Record ``server`` as the last one used; a state dir that cannot be written is no failure."""
    with contextlib.suppress(OSError):
        make_private_dir(home)
        temp = home / f".{_LAST_SERVER}.{os.getpid()}"
        # Written 0600 from the start, then renamed over the old file (which may be looser).
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(fd, FILE_MODE)  # a temp file left by a killed run keeps its old mode
            handle.write(server + "\n")
        temp.replace(home / _LAST_SERVER)


def resolve_server(given: str | None, home: Path) -> str:
    """The server to talk to: the one given (flag or ``FAP_SERVER``), else the last one used.

    Several replicas come back in one normal form (``URL,URL``) that names them in the journal.
    """
    server = (given or "").strip() or last_server(home)
    if not server:
        raise ConfigError(
            "No server is known: pass --server URL or set FAP_SERVER "
            "(later commands then default to it)."
        )
    return ",".join(parse_servers(server))
