"""The client's small remembered state: the server last used, and the zstd level uploads settled on.

Each is one line of a file in the fap home (0600). ``last-server``: so ``fap results list`` after a
``fap upload --server URL`` needs no ``--server``; a server of several replicas is kept as the
whole comma-separated list, so later commands fail over just as the first one did.
``zstd-level``: the level the last run's uploads ended at (``fap.transfer.adapt``), where the next
run starts: a run of a few chunks would otherwise end before it had learned the link.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from fap.api import parse_servers
from fap.client.private import FILE_MODE, make_private_dir
from fap.errors import ConfigError
from fap.transfer.codec import MAX_LEVEL, MIN_LEVEL

__all__ = ("last_server", "learned_level", "remember_level", "remember_server", "resolve_server")

_LAST_SERVER = "last-server"
_ZSTD_LEVEL = "zstd-level"


def last_server(home: Path) -> str | None:
    return _read(home, _LAST_SERVER)


def remember_server(home: Path, server: str) -> None:
    """Record ``server`` as the last one used; a state dir that cannot be written is no failure."""
    _write(home, _LAST_SERVER, server)


def learned_level(home: Path) -> int | None:
    """The zstd level the last run ended at; None if none is known (or the file is not one)."""
    text = _read(home, _ZSTD_LEVEL)
    if text is None or not text.isdigit() or not MIN_LEVEL <= int(text) <= MAX_LEVEL:
        return None
    return int(text)


def remember_level(home: Path, level: int) -> None:
    _write(home, _ZSTD_LEVEL, str(level))


def _read(home: Path, name: str) -> str | None:
    try:
        text = (home / name).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


def _write(home: Path, name: str, line: str) -> None:
    with contextlib.suppress(OSError):
        make_private_dir(home)
        temp = home / f".{name}.{os.getpid()}"
        # Written 0600 from the start, then renamed over the old file (which may be looser).
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(fd, FILE_MODE)  # a temp file left by a killed run keeps its old mode
            handle.write(line + "\n")
        temp.replace(home / name)


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
