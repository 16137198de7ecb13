"""The journal: what a restart must find, and what it must not repeat."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fap.client import Journal
from fap.errors import InputError

SERVER = "http://fap.test"


async def test_a_new_version_starts_pending_and_moves_through_its_upload(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.sqlite3", SERVER) as journal:
        await journal.record_version("/in/a.txt", 10, 111, "aa")
        record = await journal.get("/in/a.txt")
        assert record is not None
        assert (record.state, record.upload_id) == ("pending", None)

        await journal.record_upload("/in/a.txt", "up-1", chunk_count=3, chunks_stored=0)
        await journal.record_progress("/in/a.txt", 2)
        record = await journal.get("/in/a.txt")
        assert record is not None
        assert (record.state, record.upload_id, record.chunks_stored) == ("uploading", "up-1", 2)

        await journal.record_uploaded("/in/a.txt")
        await journal.record_done("/in/a.txt", "/out/a.txt.result.json")
        record = await journal.get("/in/a.txt")
        assert record is not None
        assert record.finished
        assert (record.chunks_stored, record.result_path) == (3, "/out/a.txt.result.json")


async def test_a_reopened_journal_remembers_finished_and_unfinished_files(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    async with Journal(path, SERVER) as journal:
        await journal.record_version("/in/done.txt", 1, 1, "d")
        await journal.record_upload("/in/done.txt", "up-1", 1, 0)
        await journal.record_uploaded("/in/done.txt")
        await journal.record_done("/in/done.txt", "/out/done.txt.result.json")
        await journal.record_version("/in/half.bin", 9, 9, "h")
        await journal.record_upload("/in/half.bin", "up-2", 9, 4)
        await journal.record_version("/in/waiting.txt", 2, 2, "w")
        await journal.record_upload("/in/waiting.txt", "up-3", 1, 0)
        await journal.record_uploaded("/in/waiting.txt")
    # The process is gone; a new one opens the same file.
    async with Journal(path, SERVER) as journal:
        done = await journal.get("/in/done.txt")
        half = await journal.get("/in/half.bin")
        assert done is not None and done.state == "done" and done.same_version(1, 1)
        assert half is not None and (half.state, half.upload_id, half.chunks_stored) == (
            "uploading",
            "up-2",
            4,
        )
        waiting = await journal.under("/in", "uploaded")
        assert [r.path for r in waiting] == ["/in/waiting.txt"]
        assert [r.path for r in await journal.under("/in")] == [
            "/in/done.txt",
            "/in/half.bin",
            "/in/waiting.txt",
        ]


async def test_a_changed_file_starts_again_and_a_touched_one_keeps_its_state(
    tmp_path: Path,
) -> None:
    async with Journal(tmp_path / "j.sqlite3", SERVER) as journal:
        await journal.record_version("/in/a", 1, 1, "old")
        await journal.record_upload("/in/a", "up-1", 1, 1)
        await journal.record_done("/in/a", "/out/a.result.json")

        await journal.touch("/in/a", 1, 2)
        touched = await journal.get("/in/a")
        assert touched is not None and touched.state == "done" and touched.mtime_ns == 2

        await journal.record_version("/in/a", 5, 3, "new")
        changed = await journal.get("/in/a")
        assert changed is not None
        assert (changed.state, changed.upload_id, changed.sha256) == ("pending", None, "new")


async def test_each_server_has_its_own_records_and_prefixes_do_not_leak(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    async with Journal(path, SERVER) as one, Journal(path, "http://other.test") as other:
        await one.record_version("/in/a", 1, 1, "a")
        await one.record_version("/inbox/b", 1, 1, "b")
        assert await other.get("/in/a") is None
        assert [r.path for r in await one.under("/in")] == ["/in/a"]


async def test_a_journal_that_cannot_be_opened_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state dir should be\n")
    with pytest.raises(InputError, match="cannot be opened"):
        async with Journal(blocker / "journal.sqlite3", SERVER):
            pass


async def test_a_request_id_is_kept_until_a_new_version_of_the_file_starts_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.sqlite3"
    async with Journal(path, SERVER) as journal:
        await journal.record_version("/in/a", 1, 1, "old")
        await journal.record_request("/in/a", "req-1")
    async with Journal(path, SERVER) as journal:  # a restart finds it before any upload id
        record = await journal.get("/in/a")
        assert record is not None and (record.state, record.request_id) == ("pending", "req-1")
        await journal.record_version("/in/a", 2, 2, "new")
        changed = await journal.get("/in/a")
        assert changed is not None and changed.request_id is None


async def test_a_journal_of_an_older_fap_gains_the_request_id_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.sqlite3"
    with sqlite3.connect(path) as db:  # the schema before request ids were journalled
        db.execute(
            "CREATE TABLE files (server TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, "
            "mtime_ns INTEGER NOT NULL, sha256 TEXT, state TEXT NOT NULL, upload_id TEXT, "
            "chunk_count INTEGER, chunks_stored INTEGER NOT NULL DEFAULT 0, result_path TEXT, "
            "error TEXT, updated_at REAL NOT NULL, PRIMARY KEY (server, path))"
        )
        db.execute(
            "INSERT INTO files VALUES (?, '/in/a', 1, 1, 'aa', 'uploading', 'up-1', 3, 1, "
            "NULL, NULL, 0)",
            (SERVER,),
        )

    async with Journal(path, SERVER) as journal:
        record = await journal.get("/in/a")
        assert record is not None
        assert (record.state, record.upload_id, record.request_id) == ("uploading", "up-1", None)
        await journal.record_request("/in/a", "req-2")
        again = await journal.get("/in/a")
        assert again is not None and again.request_id == "req-2"
