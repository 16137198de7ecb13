"""The journal beside its watcher: progress in bytes, queued files, a read-only reader that
neither waits for nor disturbs the writer, retries, watchers, and journals of an older fap."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from fap.client import JOURNAL_NAME, Journal, NoJournal

SERVER = "http://fap.test"


async def test_progress_is_journaled_in_chunks_and_raw_bytes(tmp_path: Path) -> None:
    async with Journal(tmp_path / JOURNAL_NAME, SERVER) as journal:
        await journal.record_version("/in/big", 2500, 1, "bb")
        await journal.record_upload("/in/big", "up-1", 3, 1, 1000)
        await journal.record_progress("/in/big", 2, 2000)
        halfway = await journal.get("/in/big")
        await journal.record_uploaded("/in/big")
        whole = await journal.get("/in/big")

    assert halfway is not None and (halfway.chunks_stored, halfway.bytes_stored) == (2, 2000)
    assert whole is not None and (whole.chunks_stored, whole.bytes_stored) == (3, 2500)


async def test_a_queued_file_gets_a_row_without_a_hash_and_a_known_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    async with Journal(tmp_path / JOURNAL_NAME, SERVER) as journal:
        await journal.record_version("/in/done", 1, 1, "dd")
        await journal.record_done("/in/done", "/out/done.result.json")

        await journal.record_queued([("/in/new", 7, 70), ("/in/done", 1, 1)])

        new = await journal.get("/in/new")
        done = await journal.get("/in/done")
        assert new is not None and (new.state, new.sha256, new.size) == ("pending", None, 7)
        assert done is not None and (done.state, done.sha256) == ("done", "dd")

        await journal.forget_queued("/in/new")
        await journal.forget_queued("/in/done")  # read once: not a queued file to forget
        assert await journal.get("/in/new") is None
        assert await journal.get("/in/done") is not None


async def test_a_reader_sees_what_was_committed_while_the_writer_holds_its_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / JOURNAL_NAME
    async with Journal(path, SERVER) as journal:
        await journal.record_version("/in/a", 1, 1, "aa")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # a watcher in the middle of a write
        writer.execute("UPDATE files SET state = 'failed'")

        async with Journal(path, None, read_only=True) as reading:
            seen = await reading.get("/in/a")

        writer.execute("COMMIT")  # the writer was not held up by the reader either
    finally:
        writer.close()
    assert seen is not None and seen.state == "pending"


async def test_a_reader_of_no_journal_says_so_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"

    with pytest.raises(NoJournal, match="No watcher has journaled anything"):
        async with Journal(home / JOURNAL_NAME, None, read_only=True):
            pass

    assert not home.exists()


async def test_a_reader_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_NAME
    async with Journal(path, SERVER):
        pass
    async with Journal(path, SERVER, read_only=True) as reading:
        with pytest.raises(RuntimeError):
            await reading.record_failed("/in/a", "no")


async def test_a_reader_of_every_server_sees_each_ones_rows(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_NAME
    async with Journal(path, SERVER) as one, Journal(path, "http://other.test") as other:
        await one.record_version("/in/a", 1, 1, "a")
        await other.record_version("/in/b", 1, 1, "b")
    async with Journal(path, None, read_only=True) as every:
        rows = await every.under("/in")
    assert [(row.path, row.server) for row in rows] == [
        ("/in/a", SERVER),
        ("/in/b", "http://other.test"),
    ]


async def test_a_retry_sets_a_failed_file_back_to_pending_and_leaves_others(
    tmp_path: Path,
) -> None:
    path = tmp_path / JOURNAL_NAME
    async with Journal(path, SERVER) as journal:
        await journal.record_version("/in/bad", 9, 9, "bb")
        await journal.record_request("/in/bad", "req-1")
        await journal.record_upload("/in/bad", "up-1", 1, 0)
        await journal.record_uploaded("/in/bad")
        await journal.record_failed("/in/bad", "The analysis failed: no.")
        await journal.record_version("/in/good", 1, 1, "gg")
        await journal.record_done("/in/good", "/out/good.result.json")

    async with Journal(path, None) as anyone:
        assert await anyone.retry("/in/bad")
        assert not await anyone.retry("/in/good")
        bad = await anyone.get("/in/bad")
        good = await anyone.get("/in/good")

    assert bad is not None
    assert (bad.state, bad.upload_id, bad.request_id, bad.error) == ("pending", None, None, None)
    assert (bad.size, bad.mtime_ns, bad.sha256) == (9, 9, "bb"), "the same version, sent again"
    assert good is not None and good.state == "done"


async def test_a_change_by_another_process_is_noticed_and_ones_own_is_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / JOURNAL_NAME
    async with Journal(path, SERVER) as watcher:
        await watcher.record_version("/in/a", 1, 1, "aa")
        await watcher.record_failed("/in/a", "no")
        assert not await watcher.changed_elsewhere()  # the baseline
        await watcher.record_error("/in/a", "still no")
        assert not await watcher.changed_elsewhere()

        code = (
            "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
            "db.execute(\"UPDATE files SET state = 'pending'\"); db.commit()"
        )
        subprocess.run([sys.executable, "-c", code, str(path)], check=True)

        assert await watcher.changed_elsewhere()
        assert not await watcher.changed_elsewhere()


async def test_a_watcher_is_journaled_until_it_says_it_stopped_or_its_process_is_gone(
    tmp_path: Path,
) -> None:
    path = tmp_path / JOURNAL_NAME
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    async with Journal(path, SERVER) as journal:
        await journal.watch_started("/in", os.getpid())
        await journal.watch_started("/killed", int(gone.stdout))
        [killed, running] = await journal.watches()
        await journal.watch_stopped("/in", os.getpid())
        stopped = [watch for watch in await journal.watches() if watch.root == "/in"]

    assert (running.root, running.running) == ("/in", True)
    assert (killed.root, killed.running, killed.stopped_at) == ("/killed", False, None)
    assert stopped[0].stopped_at is not None and not stopped[0].running


def _older_journal(path: Path) -> None:
    """A journal as the fap before bytes and watchers were journaled left it."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE files (server TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, "
            "mtime_ns INTEGER NOT NULL, sha256 TEXT, state TEXT NOT NULL, upload_id TEXT, "
            "chunk_count INTEGER, chunks_stored INTEGER NOT NULL DEFAULT 0, result_path TEXT, "
            "error TEXT, updated_at REAL NOT NULL, request_id TEXT, PRIMARY KEY (server, path))"
        )
        db.execute(
            "INSERT INTO files VALUES (?, '/in/a', 3000, 1, 'aa', 'uploading', 'up-1', 3, 1, "
            "NULL, NULL, 0, 'req-1')",
            (SERVER,),
        )
    db.close()


def _columns(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[1] for row in db.execute("PRAGMA table_info(files)")}


async def test_a_reader_reads_an_older_journal_without_changing_it(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_NAME
    _older_journal(path)
    before = _columns(path)

    async with Journal(path, None, read_only=True) as reading:
        record = await reading.get("/in/a")
        watches = await reading.watches()

    assert record is not None
    assert (record.state, record.chunks_stored, record.bytes_stored) == ("uploading", 1, 0)
    assert watches == []
    assert _columns(path) == before


async def test_an_older_journal_gains_bytes_and_watchers_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / JOURNAL_NAME
    _older_journal(path)

    async with Journal(path, SERVER) as journal:
        record = await journal.get("/in/a")
        await journal.record_progress("/in/a", 2, 2000)
        await journal.watch_started("/in", os.getpid())
        progressed = await journal.get("/in/a")
        watches = await journal.watches()

    assert record is not None and (record.upload_id, record.request_id) == ("up-1", "req-1")
    assert progressed is not None and progressed.bytes_stored == 2000
    assert [watch.root for watch in watches] == ["/in"]
    assert "bytes_stored" in _columns(path)
