"""The embedded store's SQLite file: private from its first byte, and in WAL mode before any use.

Private: SQLite creates a database's ``-wal`` and ``-shm`` files with the permissions of the
database file itself, so a file created 0600 here keeps all three private whatever the umask.

WAL, with retries of its own: switching a database to WAL needs the write lock, and SQLite's busy
timeout does not cover that wait. The switch reads the file's header under a read lock first, and
a connection that holds a read lock and asks for the write lock is refused at once rather than
made to wait (two such connections would wait for each other forever) — so servers starting
together on a new file met "database is locked" despite the timeout. Once the file is in WAL
mode it stays so, and asking again takes no write lock.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import time
from pathlib import Path

__all__ = ("BUSY_TIMEOUT_MS", "prepare_sqlite_file")

logger = logging.getLogger(__name__)

# How long a statement waits for a lock another connection holds; the WAL switch waits as long.
BUSY_TIMEOUT_MS = 10_000
_PRIVATE = 0o600
# The database and the files SQLite keeps beside it in WAL mode.
_SUFFIXES = ("", "-wal", "-shm")
_FIRST_RETRY = 0.005
_MAX_RETRY = 0.1


def prepare_sqlite_file(path: Path) -> None:
    """Create the database file 0600 unless it exists, make it and its companions private, and
    put it in WAL mode. Blocking (the retries sleep): run it on a thread, before connecting."""
    # O_CREAT with 0600: the umask can only take bits away from it.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _PRIVATE))
    for suffix in _SUFFIXES:
        _make_private(path.with_name(path.name + suffix))
    _use_wal(path)


def _make_private(file: Path) -> None:
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        # Made by an older fap, or by hand: the state store holds hashes of every token.
        logger.warning("%s could be read by others (mode %o); it is 0600 now", file, mode)
        file.chmod(_PRIVATE)


def _use_wal(path: Path) -> None:
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = _FIRST_RETRY
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        while True:
            try:
                (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
            except sqlite3.OperationalError as error:
                locked = error.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if not locked or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(_MAX_RETRY, 2 * delay)
                continue
            if mode != "wal":
                # SQLite answers the mode it kept when it cannot use WAL there (no shared memory).
                raise sqlite3.OperationalError(f"{path} cannot use WAL mode (it stays in {mode})")
            return
    finally:
        connection.close()
