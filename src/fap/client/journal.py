"""The client's journal: every file seen and every upload's progress, in SQLite.

A row per (server, path) says which version of the file (size, mtime, sha256) was seen, which
upload carries it and how far that upload got, so a restart — even after ``kill -9`` — neither
repeats a finished file nor loses an unfinished one. States::

    pending ──► uploading ──► uploaded ──► done
       │  (upload id known)  (all chunks   └──► failed   (the job failed on the server)
       │                      stored)
       └─ a new version of the file (size, mtime, hash) starts again at pending
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, get_args

import aiosqlite

from fap.errors import FapError, InputError

__all__ = ("JOURNAL_NAME", "FileRecord", "FileState", "Journal")

JOURNAL_NAME = "journal.sqlite3"

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
    PRIMARY KEY (server, path)
)
"""

_COLUMNS = (
    "path, size, mtime_ns, sha256, state, upload_id, chunk_count, chunks_stored, result_path, error"
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
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            self._db = await aiosqlite.connect(self.db_path)
            # WAL + NORMAL: a committed row survives a killed process; readers never block.
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA synchronous=NORMAL")
            await self._db.execute("PRAGMA busy_timeout=10000")
            await self._db.execute(_SCHEMA)
            await self._db.commit()
        except (sqlite3.Error, OSError) as error:
            await self.__aexit__(None, None, None)
            raise InputError(
                f"The journal {self.db_path} cannot be opened: {error}; check that FAP_HOME is "
                "writable."
            ) from error
        return self

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
        async with self.db.execute(
            f"SELECT {_COLUMNS} FROM files WHERE server = ? AND path = ?",  # noqa: S608
            (self.server, path),
        ) as cursor:
            row = await cursor.fetchone()
        return _record(row) if row is not None else None

    async def under(self, root: str, *states: FileState) -> list[FileRecord]:
        """Records of files below the directory ``root`` (in the given states), by path."""
        prefix = root.rstrip("/") + "/"
        wanted = states or _STATES
        marks = ", ".join("?" for _ in wanted)
        async with self.db.execute(
            f"SELECT {_COLUMNS} FROM files WHERE server = ? AND substr(path, 1, ?) = ? "  # noqa: S608
            f"AND state IN ({marks}) ORDER BY path",
            (self.server, len(prefix), prefix, *wanted),
        ) as cursor:
            rows = await cursor.fetchall()
        return [_record(row) for row in rows]

    async def record_version(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        """A new version of ``path`` was seen: it starts again at pending, with no upload."""
        await self._write(
            "INSERT INTO files (server, path, size, mtime_ns, sha256, state, updated_at) "
            "VALUES (?, ?, ?, ?, ?, 'pending', ?) "
            "ON CONFLICT (server, path) DO UPDATE SET size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, state = 'pending', "
            "upload_id = NULL, chunk_count = NULL, chunks_stored = 0, result_path = NULL, "
            "error = NULL, updated_at = excluded.updated_at",
            (self.server, path, size, mtime_ns, sha256, time.time()),
        )

    async def touch(self, path: str, size: int, mtime_ns: int) -> None:
        """The file's size or mtime changed but not its content: keep its state."""
        await self._update(path, "size = ?, mtime_ns = ?", size, mtime_ns)

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

    async def _write(self, sql: str, parameters: tuple[object, ...]) -> None:
        try:
            await self.db.execute(sql, parameters)
            await self.db.commit()
        except sqlite3.Error as error:
            raise FapError(f"The journal {self.db_path} cannot be written: {error}.") from error


def _record(row: sqlite3.Row) -> FileRecord:
    (path, size, mtime_ns, sha256, state, upload_id, chunk_count, stored, result, error) = row
    if state not in _STATES:
        raise ValueError(f"The journal holds the unknown state {state!r}.")
    return FileRecord(
        path=path,
        size=size,
        mtime_ns=mtime_ns,
        sha256=sha256,
        state=state,
        upload_id=upload_id,
        chunk_count=chunk_count,
        chunks_stored=stored,
        result_path=result,
        error=error,
    )
