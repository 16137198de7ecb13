"""The client's journal: every file seen and every upload's progress, in SQLite.

A row per (server, path) says which version of the file (size, mtime, sha256) was seen, which
upload carries it and how far that upload got (chunks and raw bytes stored), so a restart — even
after ``kill -9`` — neither repeats a finished file nor loses an unfinished one. States::

    pending ──► uploading ──► uploaded ──► done
       │  (upload id known)  (all chunks   └──► failed   (the job failed on the server)
       │                      stored)             │
       ├─ a new version of the file (size, mtime, hash) starts again at pending
       └─◄────────────── fap retry ───────────────┘

A pending row without a hash is a file queued to be sent, not yet read. A second table,
``watches``, says which directory a watcher watches, with its process id, and when it stopped.

Other processes read the journal while a watcher writes it: ``fap watch --status`` opens it
read-only (WAL: a reader never blocks the writer, nor waits for it), and ``fap retry`` writes a
row back to pending, which a running watcher notices by SQLite's ``data_version``.

A file's request id is written before its upload is asked for, so that a process killed between
the server's answer and its own record asks again with the same id after a restart, and the
server answers with the upload it made then instead of making a second one.

A journal that is damaged (not SQLite, truncated, rows that make no sense) is refused with
:class:`JournalDamaged`: one sentence that names the file and says what to do with it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

import aiosqlite

from fap.client.journal_rows import (
    STATES,
    FileRecord,
    FileState,
    WatchRecord,
    file_record,
    watch_record,
)
from fap.client.private import FILE_MODE, make_private_dir, tighten_file
from fap.errors import FapError, InputError

__all__ = (
    "JOURNAL_NAME",
    "FileRecord",
    "FileState",
    "Journal",
    "JournalDamaged",
    "NoJournal",
    "WatchRecord",
)

JOURNAL_NAME = "journal.sqlite3"

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
    bytes_stored  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (server, path)
)
"""
_WATCHES = """
CREATE TABLE IF NOT EXISTS watches (
    server     TEXT    NOT NULL,
    root       TEXT    NOT NULL,
    pid        INTEGER NOT NULL,
    started_at REAL    NOT NULL,
    stopped_at REAL,
    PRIMARY KEY (server, root)
)
"""
# Columns added after the first release: an older journal gains them on open (their type), and
# a read-only reader of one not opened by a newer fap yet reads their default instead.
_ADDED_COLUMNS = {
    "request_id": ("TEXT", "NULL"),
    "bytes_stored": ("INTEGER NOT NULL DEFAULT 0", "0"),
}

_FIELDS = (
    "server",
    "path",
    "size",
    "mtime_ns",
    "sha256",
    "state",
    "upload_id",
    "chunk_count",
    "chunks_stored",
    "bytes_stored",
    "result_path",
    "error",
    "request_id",
    "updated_at",
)
_WATCH_FIELDS = "server, root, pid, started_at, stopped_at"
# A reset to pending with no upload: what a new version of a file and a retried one start from.
_NO_UPLOAD = (
    "state = 'pending', upload_id = NULL, chunk_count = NULL, chunks_stored = 0, "
    "bytes_stored = 0, result_path = NULL, error = NULL"
)
_START_AGAIN = f"{_NO_UPLOAD}, request_id = NULL"
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


class NoJournal(InputError):
    """A reader found no journal: no watcher has run with this fap home."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"No watcher has journaled anything in {path.parent} yet: start one with "
            "fap watch DIR (or point FAP_HOME at the fap home the watcher uses)."
        )


class Journal:
    """One server's view of the journal; open it with ``async with Journal(path, server)``.

    ``server=None`` sees every server's rows (for a reader, or for :meth:`retry`).
    ``read_only`` opens an existing journal for reading alone, beside a watcher that writes it:
    nothing is created, migrated or locked.
    """

    def __init__(self, db_path: Path, server: str | None, *, read_only: bool = False) -> None:
        self.db_path = db_path
        self.server = server
        self.read_only = read_only
        self._db: aiosqlite.Connection | None = None
        self._select = ", ".join(_FIELDS)
        self._has_watches = True
        self._data_version: int | None = None

    async def __aenter__(self) -> Journal:
        try:
            if self.read_only:
                if not await asyncio.to_thread(self.db_path.is_file):
                    raise NoJournal(self.db_path)
                # mode=ro: this connection can write nothing, whatever a bug in it would try.
                uri = f"{self.db_path.absolute().as_uri()}?mode=ro"
                self._db = await aiosqlite.connect(uri, uri=True)
            else:
                make_private_dir(self.db_path.parent)
                # Created 0600 before SQLite sees it: SQLite gives its -wal and -shm files the
                # mode of the database file.
                os.close(os.open(self.db_path, os.O_RDWR | os.O_CREAT, FILE_MODE))
                self._db = await aiosqlite.connect(self.db_path)
        except (sqlite3.Error, OSError) as error:
            await self.__aexit__(None, None, None)
            raise self._unopenable(error) from error
        try:
            await (self._prepare_reader() if self.read_only else self._prepare())
        except sqlite3.Error as error:
            await self.__aexit__(None, None, None)
            if _is_damage(error):
                raise JournalDamaged(self.db_path, str(error)) from error
            raise self._unopenable(error) from error
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    def _unopenable(self, error: BaseException) -> InputError:
        where = "readable" if self.read_only else "writable"
        return InputError(
            f"The journal {self.db_path} cannot be opened: {error}; check that FAP_HOME is {where}."
        )

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
        await db.execute(_WATCHES)
        present = await self._columns("files")
        for column, (kind, _) in _ADDED_COLUMNS.items():
            if column not in present:
                await db.execute(f"ALTER TABLE files ADD COLUMN {column} {kind}")
        # A table of the right name but other columns is no journal of ours.
        await db.execute(f"SELECT {self._select} FROM files LIMIT 0")  # noqa: S608
        await db.commit()
        for suffix in ("", "-wal", "-shm"):  # one made by an older fap may be open to others
            tighten_file(self.db_path.with_name(self.db_path.name + suffix))

    async def _prepare_reader(self) -> None:
        db = self.db
        # A reader of a WAL journal waits for no writer; the timeout covers the moments a
        # watcher opening the journal holds it to migrate it.
        await db.execute("PRAGMA busy_timeout=5000")
        present = await self._columns("files")
        if not present:  # made, never written: nothing is journaled
            raise NoJournal(self.db_path)
        # A journal no newer fap has opened yet lacks the later columns: read their default.
        self._select = ", ".join(
            f"{_ADDED_COLUMNS[name][1]} AS {name}"
            if name in _ADDED_COLUMNS and name not in present
            else name
            for name in _FIELDS
        )
        await db.execute(f"SELECT {self._select} FROM files LIMIT 0")  # noqa: S608
        self._has_watches = bool(await self._columns("watches"))

    async def _columns(self, table: str) -> set[str]:
        async with self.db.execute(f"PRAGMA table_info({table})") as cursor:
            return {row[1] for row in await cursor.fetchall()}

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

    # -- reading ---------------------------------------------------------------------------

    async def get(self, path: str) -> FileRecord | None:
        """The record of ``path`` (seen by every server: the one changed last)."""
        scope, values = self._scope()
        rows = await self._read(
            f"SELECT {self._select} FROM files WHERE {scope} AND path = ? "  # noqa: S608
            "ORDER BY updated_at DESC LIMIT 1",
            (*values, path),
        )
        return self._record(rows[0]) if rows else None

    async def under(self, root: str, *states: FileState) -> list[FileRecord]:
        """Records of files below the directory ``root`` (in the given states), by path."""
        prefix = root.rstrip("/") + "/"
        wanted = states or STATES
        marks = ", ".join("?" for _ in wanted)
        scope, values = self._scope()
        rows = await self._read(
            f"SELECT {self._select} FROM files WHERE {scope} AND substr(path, 1, ?) = ? "  # noqa: S608
            f"AND state IN ({marks}) ORDER BY path, server",
            (*values, len(prefix), prefix, *wanted),
        )
        return [self._record(row) for row in rows]

    async def everything(self, *states: FileState) -> list[FileRecord]:
        """Every record (in the given states), by path."""
        wanted = states or STATES
        marks = ", ".join("?" for _ in wanted)
        scope, values = self._scope()
        rows = await self._read(
            f"SELECT {self._select} FROM files WHERE {scope} "  # noqa: S608
            f"AND state IN ({marks}) ORDER BY path, server",
            (*values, *wanted),
        )
        return [self._record(row) for row in rows]

    async def watches(self) -> list[WatchRecord]:
        """Every watcher that journalled itself, the latest first."""
        if not self._has_watches:
            return []
        scope, values = self._scope()
        rows = await self._read(
            f"SELECT {_WATCH_FIELDS} FROM watches WHERE {scope} "  # noqa: S608
            "ORDER BY started_at DESC",
            values,
        )
        try:
            return [watch_record(row) for row in rows]
        except (TypeError, ValueError) as error:
            raise JournalDamaged(self.db_path, f"a watch holds {error}") from error

    async def changed_elsewhere(self) -> bool:
        """Whether another connection committed a change since this one last asked.

        SQLite's ``data_version`` answers from the page cache, without reading a table: cheap
        enough to ask at every pass of a loop. The first call only takes the baseline.
        """
        async with self.db.execute("PRAGMA data_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        changed = self._data_version is not None and version != self._data_version
        self._data_version = version
        return changed

    # -- writing ---------------------------------------------------------------------------

    async def record_queued(self, files: Iterable[tuple[str, int, int]]) -> None:
        """Files (path, size, mtime) about to be sent: a row, with no hash, for those that
        have none, so that a reader sees them queued. One transaction for them all."""
        server = self._writer()
        now = time.time()
        rows: list[tuple[object, ...]] = [
            (server, path, size, mtime_ns, now) for path, size, mtime_ns in files
        ]
        if not rows:
            return
        await self._write_many(
            "INSERT INTO files (server, path, size, mtime_ns, state, updated_at) "
            "VALUES (?, ?, ?, ?, 'pending', ?) ON CONFLICT (server, path) DO NOTHING",
            rows,
        )

    async def record_version(
        self, path: str, size: int, mtime_ns: int, sha256: str, *, request_id: str | None = None
    ) -> FileRecord:
        """A new version of ``path`` was seen: it starts again at pending, with no upload (and
        ``request_id``, the id its upload is to be asked for with, in the same write). The
        record as it now is."""
        server, now = self._writer(), time.time()
        await self._write(
            "INSERT INTO files "  # noqa: S608
            "(server, path, size, mtime_ns, sha256, state, request_id, updated_at) "
            "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) "
            "ON CONFLICT (server, path) DO UPDATE SET size = excluded.size, "
            f"mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, {_NO_UPLOAD}, "
            "request_id = excluded.request_id, updated_at = excluded.updated_at",
            (server, path, size, mtime_ns, sha256, request_id, now),
        )
        return FileRecord(
            path=path,
            size=size,
            mtime_ns=mtime_ns,
            sha256=sha256,
            state="pending",
            upload_id=None,
            chunk_count=None,
            chunks_stored=0,
            result_path=None,
            error=None,
            request_id=request_id,
            updated_at=now,
            server=server,
        )

    async def touch(self, path: str, size: int, mtime_ns: int) -> None:
        """The file's size or mtime changed but not its content: keep its state."""
        await self._update(path, "size = ?, mtime_ns = ?", size, mtime_ns)

    async def record_request(self, path: str, request_id: str) -> None:
        """The request id the upload of this version is (about to be) asked for with."""
        await self._update(path, "request_id = ?", request_id)

    async def record_upload(
        self,
        path: str,
        upload_id: str,
        chunk_count: int,
        chunks_stored: int,
        bytes_stored: int = 0,
    ) -> None:
        await self._update(
            path,
            "state = 'uploading', upload_id = ?, chunk_count = ?, chunks_stored = ?, "
            "bytes_stored = ?, error = NULL",
            upload_id,
            chunk_count,
            chunks_stored,
            bytes_stored,
        )

    async def record_progress(
        self, path: str, chunks_stored: int, bytes_stored: int | None = None
    ) -> None:
        if bytes_stored is None:
            await self._update(path, "chunks_stored = ?", chunks_stored)
        else:
            await self._update(
                path, "chunks_stored = ?, bytes_stored = ?", chunks_stored, bytes_stored
            )

    async def record_uploaded(self, path: str) -> None:
        await self._update(
            path, "state = 'uploaded', chunks_stored = chunk_count, bytes_stored = size"
        )

    async def record_done(self, path: str, result_path: str) -> None:
        await self._update(path, "state = 'done', result_path = ?, error = NULL", result_path)

    async def record_failed(self, path: str, error: str) -> None:
        await self._update(path, "state = 'failed', error = ?", error)

    async def record_error(self, path: str, error: str) -> None:
        """A transient problem (server away, file busy): the state stays, the reason is kept."""
        await self._update(path, "error = ?", error)

    async def retry(self, path: str) -> bool:
        """A failed file goes back to pending, to be sent again as a new upload; False if it
        was not failed (the row is then left as it is). A watcher's scan, or a running one
        that notices the change, sends it."""
        scope, values = self._scope()
        changed = await self._write(
            f"UPDATE files SET {_START_AGAIN}, updated_at = ? "  # noqa: S608
            f"WHERE {scope} AND path = ? AND state = 'failed'",
            (time.time(), *values, path),
        )
        return changed > 0

    async def forget(self, path: str) -> None:
        await self._write("DELETE FROM files WHERE server = ? AND path = ?", (self._writer(), path))

    async def forget_queued(self, path: str) -> None:
        """A queued file went away before it was read: it leaves no row behind."""
        await self._write(
            "DELETE FROM files WHERE server = ? AND path = ? AND sha256 IS NULL",
            (self._writer(), path),
        )

    async def watch_started(self, root: str, pid: int) -> None:
        await self._write(
            "INSERT INTO watches (server, root, pid, started_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (server, root) DO UPDATE SET pid = excluded.pid, "
            "started_at = excluded.started_at, stopped_at = NULL",
            (self._writer(), root, pid, time.time()),
        )

    async def watch_stopped(self, root: str, pid: int) -> None:
        # By pid: a watcher that outlived its successor's start leaves the successor's row be.
        await self._write(
            "UPDATE watches SET stopped_at = ? WHERE server = ? AND root = ? AND pid = ?",
            (time.time(), self._writer(), root, pid),
        )

    async def _update(self, path: str, assignments: str, *values: object) -> None:
        await self._write(
            f"UPDATE files SET {assignments}, updated_at = ? WHERE server = ? AND path = ?",  # noqa: S608
            (*values, time.time(), self._writer(), path),
        )

    def _scope(self) -> tuple[str, tuple[object, ...]]:
        """The condition that keeps to this journal's server (none for every server's view)."""
        return ("server = ?", (self.server,)) if self.server is not None else ("1 = 1", ())

    def _writer(self) -> str:
        if self.server is None or self.read_only:
            raise RuntimeError("Only one server's writable view of the journal records files.")
        return self.server

    async def _read(self, sql: str, parameters: tuple[object, ...]) -> list[sqlite3.Row]:
        try:
            async with self.db.execute(sql, parameters) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.Error as error:
            if _is_damage(error):
                raise JournalDamaged(self.db_path, str(error)) from error
            raise FapError(f"The journal {self.db_path} cannot be read: {error}.") from error

    async def _write(self, sql: str, parameters: tuple[object, ...]) -> int:
        """Run one statement and commit it; the count of rows it changed."""
        try:
            async with self.db.execute(sql, parameters) as cursor:
                changed = cursor.rowcount
            await self.db.commit()
        except sqlite3.Error as error:
            raise self._unwritable(error) from error
        return changed

    async def _write_many(self, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        try:
            await self.db.executemany(sql, rows)
            await self.db.commit()
        except sqlite3.Error as error:
            raise self._unwritable(error) from error

    def _unwritable(self, error: sqlite3.Error) -> FapError:
        if _is_damage(error):
            return JournalDamaged(self.db_path, str(error))
        return FapError(f"The journal {self.db_path} cannot be written: {error}.")

    def _record(self, row: sqlite3.Row) -> FileRecord:
        try:
            return file_record(row)
        except (TypeError, ValueError) as error:
            raise JournalDamaged(self.db_path, f"a row holds {error}") from error


def _is_damage(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _DAMAGE_CODES
