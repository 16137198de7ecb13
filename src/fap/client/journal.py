"""The client's journal: every file seen and every upload's progress, in SQLite.

A row per (server, path) says which version of the file (size, mtime, sha256) was seen, which
upload carries it and how far that upload got, so a restart — even after ``kill -9`` — neither
repeats a finished file nor loses an unfinished one. States::

    pending ──► uploading ──► uploaded ──► done
       │  (upload id known)  (all chunks   └──► failed   (the job failed on the server)
       │                      stored)
          └─ a new version of the file (size, mtime, hash) starts again at pending

A file's request id is written before its upload is asked for, so that a process killed between
the server's answer and its own record asks again with the same id after a restart, and the
server answers with the upload it made then instead of making a second one.

A journal that is damaged (not SQLite, truncated, rows that make no sense) is refused with
:class:`JournalDamaged`: one sentence that names the file and says what to do with it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar, get_args

import aiosqlite

from fap.client.private import FILE_MODE, make_private_dir, tighten_file
from fap.errors import FapError, InputError

__all__ = ("JOURNAL_NAME", "FileRecord", "FileState", "Journal", "JournalDamaged")

JOURNAL_NAME = "journal.sqlite3"

T = TypeVar("T")

FileState = Literal["pending", "uploading", "uploaded", "done", "failed"]
_STATES: tuple[str, ...] = get_args(FileState)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    server        TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    mtime_ns      INTEGER NOT NULL,
    sha256        TEXT,
    state         TEXT    NOT NULL,
    upload_id     TEXT,
    chunk_count   INTEGER,
    chunks_stored INTEGER NOT NULL DEFAULT 0,
    result_path   TEXT,
    error         TEXT,
    updated_at    REAL    NOT NULL,
    request_id    TEXT,
    PRIMARY KEY (server, path)
)
"""
# Columns added after the first release, with their type: an older journal gains them on open.
_ADDED_COLUMNS = {"request_id": "TEXT"}

_COLUMNS = (
    "path, size, mtime_ns, sha256, state, upload_id, chunk_count, chunks_stored, result_path, "
    "error, request_id"
)
# What SQLite says of a file that is not a database, of one whose pages are damaged, and (our
# SQL being fixed) of one whose tables are not the journal's: "no such column".
_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_ERROR})


class JournalDamaged(InputError):
    """The journal file cannot be read as a journal: it must be moved aside."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            f"The journal {path} is damaged ({detail.rstrip('.')}); move it aside with its "
            "-wal and -shm files and run again, and fap starts a new one (which sends every "
            "file again)."
        )


@dataclass(frozen=True, slots=True)
class FileRecord:
    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    state: FileState
    upload_id: str | None
    chunk_count: int | None
    chunks_stored: int
    result_path: str | None
    error: str | None
    request_id: str | None = None  # of the upload asked for; journalled before it is asked

    def same_version(self, size: int, mtime_ns: int) -> bool:
        return self.size == size and self.mtime_ns == mtime_ns

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


class Journal:
    """One server's view of the journal; open it with ``async with Journal(path, server)``."""

    def __init__(self, db_path: Path, server: str) -> None:
        self.db_path = db_path
        self.server = server
        self._db: aiosqlite.Connection | None = None

    async def __aenter__(self) -> Journal:
        try:
            make_private_dir(self.db_path.parent)
            # Created 0600 before SQLite sees it: SQLite gives its -wal and -shm files the mode
            # of the database file.
            os.close(os.open(self.db_path, os.O_RDWR | os.O_CREAT, FILE_MODE))
            self._db = await aiosqlite.connect(self.db_path)
        except (sqlite3.Error, OSError) as error:
            await self.__aexit__(None, None, None)
            raise InputError(
                f"The journal {self.db_path} cannot be opened: {error}; check that FAP_HOME is "
                "writable."
            ) from error
        try:
            await self._prepare()
        except sqlite3.Error as error:
            await self.__aexit__(None, None, None)
            if _is_damage(error):
                raise JournalDamaged(self.db_path, str(error)) from error
            raise InputError(
                f"The journal {self.db_path} cannot be opened: {error}; check that FAP_HOME is "
                "writable."
            ) from error
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _prepare(self) -> None:
        db = self.db
        # WAL + NORMAL: a committed row survives a killed process; readers never block.
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA busy_timeout=10000")
        # Damage found now is one clear sentence at start-up, not a failure in the middle of a
        # run; quick_check reads every page once, milliseconds for a journal of many files.
        async with db.execute("PRAGMA quick_check(1)") as cursor:
            (verdict,) = await cursor.fetchone() or ("no answer",)
        if verdict != "ok":
            raise JournalDamaged(self.db_path, str(verdict))
        await db.execute(_SCHEMA)
        async with db.execute("PRAGMA table_info(files)") as cursor:
            present = {row[1] for row in await cursor.fetchall()}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in present:
                await db.execute(f"ALTER TABLE files ADD COLUMN {column} {kind}")
        # A table of the right name but other columns is no journal of ours.
        await db.execute(f"SELECT {_COLUMNS} FROM files LIMIT 0")  # noqa: S608
        await db.commit()
        for suffix in ("", "-wal", "-shm"):  # one made by an older fap may be open to others
            tighten_file(self.db_path.with_name(self.db_path.name + suffix))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("The journal is not open; use it as an async context manager.")
        return self._db

    async def get(self, path: str) -> FileRecord | None:
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM files WHERE server = ? AND path = ?",  # noqa: S608
            (self.server, path),
        )
        return self._record(rows[0]) if rows else None

    async def under(self, root: str, *states: FileState) -> list[FileRecord]:
        """Records of files below the directory ``root`` (in the given states), by path."""
        prefix = root.rstrip("/") + "/"
        wanted = states or _STATES
        marks = ", ".join("?" for _ in wanted)
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM files WHERE server = ? AND substr(path, 1, ?) = ? "  # noqa: S608
            f"AND state IN ({marks}) ORDER BY path",
            (self.server, len(prefix), prefix, *wanted),
        )
        return [self._record(row) for row in rows]

    async def record_version(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        """A new version of ``path`` was seen: it starts again at pending, with no upload."""
        await self._write(
            "INSERT INTO files (server, path, size, mtime_ns, sha256, state, updated_at) "
            "VALUES (?, ?, ?, ?, ?, 'pending', ?) "
            "ON CONFLICT (server, path) DO UPDATE SET size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, state = 'pending', "
            "upload_id = NULL, chunk_count = NULL, chunks_stored = 0, result_path = NULL, "
            "error = NULL, request_id = NULL, updated_at = excluded.updated_at",
            (self.server, path, size, mtime_ns, sha256, time.time()),
        )

    async def touch(self, path: str, size: int, mtime_ns: int) -> None:
        """The file's size or mtime changed but not its content: keep its state."""
        await self._update(path, "size = ?, mtime_ns = ?", size, mtime_ns)

    async def record_request(self, path: str, request_id: str) -> None:
        """The request id the upload of this version is (about to be) asked for with."""
        await self._update(path, "request_id = ?", request_id)

    async def record_upload(
        self, path: str, upload_id: str, chunk_count: int, chunks_stored: int
    ) -> None:
        await self._update(
            path,
            "state = 'uploading', upload_id = ?, chunk_count = ?, chunks_stored = ?, error = NULL",
            upload_id,
            chunk_count,
            chunks_stored,
        )

    async def record_progress(self, path: str, chunks_stored: int) -> None:
        await self._update(path, "chunks_stored = ?", chunks_stored)

    async def record_uploaded(self, path: str) -> None:
        await self._update(path, "state = 'uploaded', chunks_stored = chunk_count")

    async def record_done(self, path: str, result_path: str) -> None:
        await self._update(path, "state = 'done', result_path = ?, error = NULL", result_path)

    async def record_failed(self, path: str, error: str) -> None:
        await self._update(path, "state = 'failed', error = ?", error)

    async def record_error(self, path: str, error: str) -> None:
        """A transient problem (server away, file busy): the state stays, the reason is kept."""
        await self._update(path, "error = ?", error)

    async def forget(self, path: str) -> None:
        await self._write("DELETE FROM files WHERE server = ? AND path = ?", (self.server, path))

    async def _update(self, path: str, assignments: str, *values: object) -> None:
        await self._write(
            f"UPDATE files SET {assignments}, updated_at = ? WHERE server = ? AND path = ?",  # noqa: S608
            (*values, time.time(), self.server, path),
        )

    async def _read(self, sql: str, parameters: tuple[object, ...]) -> list[sqlite3.Row]:
        try:
            async with self.db.execute(sql, parameters) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.Error as error:
            if _is_damage(error):
                raise JournalDamaged(self.db_path, str(error)) from error
            raise FapError(f"The journal {self.db_path} cannot be read: {error}.") from error

    async def _write(self, sql: str, parameters: tuple[object, ...]) -> None:
        try:
            await self.db.execute(sql, parameters)
            await self.db.commit()
        except sqlite3.Error as error:
            if _is_damage(error):
                raise JournalDamaged(self.db_path, str(error)) from error
            raise FapError(f"The journal {self.db_path} cannot be written: {error}.") from error

    def _record(self, row: sqlite3.Row) -> FileRecord:
        try:
            return _record(row)
        except (TypeError, ValueError) as error:
            raise JournalDamaged(self.db_path, f"a row holds {error}") from error


def _is_damage(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _DAMAGE_CODES


def _record(row: sqlite3.Row) -> FileRecord:
    """A row as a record, each field of its type (SQLite stores whatever it is given)."""
    (path, size, mtime_ns, sha256, state, upload_id, count, stored, result, error, request) = row
    if state not in _STATES:
        raise ValueError(f"the unknown state {str(state)[:40]!r}")
    return FileRecord(
        path=_typed(path, str, "path"),
        size=_count(size, "size"),
        mtime_ns=_typed(mtime_ns, int, "mtime"),
        sha256=_optional(sha256, str, "sha256"),
        state=state,
        upload_id=_optional(upload_id, str, "upload id"),
        chunk_count=None if count is None else _count(count, "chunk count"),
        chunks_stored=_count(stored, "count of stored chunks"),
        result_path=_optional(result, str, "result path"),
        error=_optional(error, str, "error"),
        request_id=_optional(request, str, "request id"),
    )


def _typed(value: object, kind: type[T], what: str) -> T:
    # bool is an int to Python, never to SQLite: no row holds one, so no special case.
    if not isinstance(value, kind):
        raise TypeError(f"a {what} of the wrong type ({type(value).__name__})")
    return value


def _optional(value: object, kind: type[T], what: str) -> T | None:
    return None if value is None else _typed(value, kind, what)


def _count(value: object, what: str) -> int:
    number = _typed(value, int, what)
    if number < 0:
        raise ValueError(f"a negative {what}")
    return number
