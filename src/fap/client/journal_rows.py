"""The journal's rows as typed records (:mod:`fap.client.journal` reads and writes them).

SQLite stores whatever it is given, so each field is checked as a row is read: a row that makes
no sense raises TypeError or ValueError, which the journal turns into one sentence of damage.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

__all__ = ("STATES", "FileRecord", "FileState", "WatchRecord", "file_record", "watch_record")

T = TypeVar("T")

FileState = Literal["pending", "uploading", "uploaded", "done", "failed"]
STATES: tuple[str, ...] = get_args(FileState)


@dataclass(frozen=True, slots=True)
class FileRecord:
    path: str
    size: int
    mtime_ns: int
    sha256: str | None  # None: queued, not read yet
    state: FileState
    upload_id: str | None
    chunk_count: int | None
    chunks_stored: int
    result_path: str | None
    error: str | None
    request_id: str | None = None  # of the upload asked for; journalled before it is asked
    bytes_stored: int = 0  # of the file's own (raw) bytes, in the chunks stored
    updated_at: float = 0.0  # wall-clock time of the row's last change
    server: str = ""

    def same_version(self, size: int, mtime_ns: int) -> bool:
        return self.size == size and self.mtime_ns == mtime_ns

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


@dataclass(frozen=True, slots=True)
class WatchRecord:
    """A watcher of one directory, as it journalled itself."""

    server: str
    root: str
    pid: int
    started_at: float
    stopped_at: float | None  # None: it said nothing of stopping (running, or killed)

    @property
    def running(self) -> bool:
        """Whether it runs still: it did not say it stopped, and its process is there."""
        if self.stopped_at is not None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False  # killed before it could say so
        except PermissionError:
            return True  # a process of that id is there, of another user: not ours to probe
        return True


def file_record(row: sqlite3.Row) -> FileRecord:
    """A row as a record, each field of its type (SQLite stores whatever it is given)."""
    (server, path, size, mtime_ns, sha256, state, upload_id, count, stored, stored_bytes) = row[:10]
    (result, error, request, updated_at) = row[10:]
    if state not in STATES:
        raise ValueError(f"the unknown state {str(state)[:40]!r}")
    return FileRecord(
        server=_typed(server, str, "server"),
        path=_typed(path, str, "path"),
        size=_count(size, "size"),
        mtime_ns=_typed(mtime_ns, int, "mtime"),
        sha256=_optional(sha256, str, "sha256"),
        state=state,
        upload_id=_optional(upload_id, str, "upload id"),
        chunk_count=None if count is None else _count(count, "chunk count"),
        chunks_stored=_count(stored, "count of stored chunks"),
        bytes_stored=_count(stored_bytes, "count of stored bytes"),
        result_path=_optional(result, str, "result path"),
        error=_optional(error, str, "error"),
        request_id=_optional(request, str, "request id"),
        updated_at=_time(updated_at),
    )


def watch_record(row: sqlite3.Row) -> WatchRecord:
    server, root, pid, started_at, stopped_at = row
    return WatchRecord(
        server=_typed(server, str, "server"),
        root=_typed(root, str, "root"),
        pid=_count(pid, "process id"),
        started_at=_time(started_at),
        stopped_at=None if stopped_at is None else _time(stopped_at),
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


def _time(value: object) -> float:
    if not isinstance(value, int | float):
        raise TypeError(f"a time of the wrong type ({type(value).__name__})")
    return float(value)
