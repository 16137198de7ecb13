"""``fap watch``'s work against the real server app: mirror a tree, never repeat, never lose;
small files in batches."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import pytest
from tests.unit.client.real_app import App, chunk_put
from tests.unit.client.test_small_files import posts_to, sent_to
from tests.unit.server.harness import CHUNK

import fap.client.folder as folder_module
from fap.api import UPLOADS, UPLOADS_BATCH, UPLOADS_REPORTS, UPLOADS_WAIT, UploadBatch
from fap.client import JOURNAL_NAME, FileOutcome, FileRecord, FolderSync, Journal, Runtime

# A hang guard for a run that should end by itself, not a measure of how fast it does.
ENDS_WITHIN = 30.0


class Heard:
    def __init__(self) -> None:
        self.outcomes: list[tuple[FileOutcome, bool]] = []
        self.retries: list[str] = []
        self.begun: list[str] = []  # files about to be sent: a small one is in its batch

    def started(self, file: str, size: int) -> None:
        self.begun.append(file)

    def advanced(self, file: str, raw_bytes: int) -> None:
        pass

    def uploaded(self, outcome: FileOutcome) -> None:
        pass

    def finished(self, outcome: FileOutcome, *, earlier: bool) -> None:
        self.outcomes.append((outcome, earlier))

    def retrying(self, message: str) -> None:
        self.retries.append(message)


@asynccontextmanager
async def folder(
    app: App, inbox: Path, heard: Heard | None = None
) -> AsyncIterator[tuple[FolderSync, Runtime]]:
    """A watch as one run of ``fap watch`` holds it: its own runtime, the shared journal."""
    settings = app.settings
    async with (
        app.runtime() as runtime,
        Journal(settings.home / JOURNAL_NAME, settings.server) as journal,
    ):
        results = inbox.parent / "results"
        yield FolderSync(runtime, journal, inbox, results, reporter=heard), runtime


async def wait_for(app: App, check: Callable[[], bool], what: str) -> None:
    """Until ``check()`` holds: looked at whenever the client sends or hears, and now and then
    for what only the disk shows (a result written)."""
    await app.wire.until(check, what, poll=0.02)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def small_files(inbox: Path, count: int) -> list[str]:
    """``count`` files of one chunk each in ``inbox``: what a batch takes. Their names, sorted."""
    inbox.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        (inbox / f"small-{n:02d}.log").write_bytes(f"line {n}\n".encode() * (40 + n))
    return sorted(path.name for path in inbox.iterdir())


def batch_request_ids(app: App, *, since: int = 0) -> list[str]:
    """The request ids of every upload asked for in a batch, from the ``since``-th request on."""
    return [
        upload.request_id
        for sent in app.wire.sent[since:]
        if sent.method == "POST" and sent.path == UPLOADS_BATCH
        for upload in msgspec.json.decode(sent.body, type=UploadBatch).uploads
        if upload.request_id is not None
    ]


async def journaled(app: App, inbox: Path) -> list[FileRecord]:
    """The journal's rows below ``inbox``, read as ``fap watch --status`` reads them."""
    async with Journal(app.settings.home / JOURNAL_NAME, None, read_only=True) as journal:
        return await journal.under(str(inbox.resolve()))


def result_of(inbox: Path, relative: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(
        (inbox.parent / "results" / f"{relative}.result.json").read_text()
    )
    return loaded


async def test_once_mirrors_the_tree_and_leaves_what_it_must_alone(
    app: App, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "deep" / "er").mkdir(parents=True)
    taken = {"top.txt": b"top\n", "deep/er/nested file.csv": b"1,2,3\n"}
    for name, data in taken.items():
        (inbox / name).write_bytes(data)
    for name in (".hidden", "download.part", "draft.tmp", "~$lock.docx"):
        (inbox / name).write_text("not for analysis\n")
    (tmp_path / "outside.txt").write_text("outside\n")
    (inbox / "link-out.txt").symlink_to(tmp_path / "outside.txt")
    os.mkfifo(inbox / "a-fifo")

    async with folder(app, inbox) as (sync, _):
        summary = await sync.run(once=True)

    assert sorted(summary.outcomes) == sorted(taken)
    assert not summary.failed
    for name in taken:
        assert result_of(inbox, name)["sha256"] == sha(inbox / name)
    assert sorted(upload.name for upload in await app.uploads()) == sorted(taken)
    written = sorted(
        p.relative_to(tmp_path / "results").as_posix()
        for p in (tmp_path / "results").rglob("*.json")
    )
    assert written == sorted(f"{name}.result.json" for name in taken)


async def test_a_second_run_repeats_nothing_but_reports_every_file(
    app: App, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.txt").write_text("a\n")
    async with folder(app, inbox) as (sync, _):
        await sync.run(once=True)
    os.utime(inbox / "a.txt")  # touched, not changed: the same content needs no new upload
    heard = Heard()

    async with folder(app, inbox, heard) as (sync, runtime):
        summary = await sync.run(once=True)

    assert len(await app.uploads()) == 1
    assert runtime.uploader.bytes_sent == 0
    [(outcome, earlier)] = heard.outcomes
    assert (outcome.status, earlier) == ("done", True)
    assert list(summary.outcomes) == ["a.txt"]


async def test_a_changed_file_is_uploaded_again(app: App, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "a.txt"
    path.write_text("first\n")
    async with folder(app, inbox) as (sync, _):
        await sync.run(once=True)
    path.write_text("second version\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns - 10**10))

    async with folder(app, inbox) as (sync, _):
        await sync.run(once=True)

    assert len(await app.uploads()) == 2
    assert result_of(inbox, "a.txt")["sha256"] == sha(path)


async def test_an_interrupted_watch_resumes_from_the_chunks_already_stored(
    app: App, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    big = inbox / "big.bin"
    big.write_bytes(os.urandom(24 * CHUNK))
    # The link stalls after chunk 3, so the watch is stopped mid-upload.
    stalled = app.wire.hold(chunk_put(at_least=4), every=True)

    def stopped_mid_upload() -> bool:
        # Four chunks are stored and every PUT the senders have started waits at the wire;
        # nothing else but the long-poll for results is out, so the kill lands between requests.
        out = app.wire.in_flight()
        return (
            app.reports_answered() >= 4
            and stalled.waiting > 0
            and len(out) == stalled.waiting + sum(sent.path == UPLOADS_WAIT for sent in out)
        )

    async with folder(app, inbox) as (sync, _):
        watching = asyncio.create_task(sync.run())
        await wait_for(app, stopped_mid_upload, "part of the upload")
        watching.cancel()  # like a kill: nothing is told to the server or the journal
        await asyncio.gather(watching, return_exceptions=True)
    stalled.release()
    [upload] = await app.uploads()
    stored_before = len(upload.chunks_stored)
    assert upload.chunks_stored == [0, 1, 2, 3]

    heard = Heard()
    async with folder(app, inbox, heard) as (sync, runtime):
        summary = await sync.run(once=True)

    assert not summary.failed
    assert [u.id for u in await app.uploads()] == [upload.id], "the same upload carries on"
    assert runtime.uploader.bytes_sent == (24 - stored_before) * CHUNK < big.stat().st_size
    [(outcome, _)] = heard.outcomes
    assert outcome.bytes_sent == runtime.uploader.bytes_sent
    assert result_of(inbox, "big.bin")["sha256"] == sha(big)


async def test_a_running_watch_takes_new_files_from_change_events(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folder_module, "EARLY_RESCAN_SECONDS", 3600.0)  # events alone
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    inbox.mkdir()
    (inbox / "first.txt").write_text("there at start-up\n")
    moved = tmp_path / "elsewhere" / "batch"
    moved.mkdir(parents=True)
    (moved / "m.txt").write_text("moved in with its directory\n")
    async with folder(app, inbox) as (sync, _):
        watching = asyncio.create_task(sync.run())
        try:
            await wait_for(app, (results / "first.txt.result.json").exists, "the start-up scan")
            (inbox / "new.txt").write_text("dropped in\n")
            (inbox / "ignored.part").write_text("still downloading\n")
            moved.rename(inbox / "batch")
            await wait_for(app, (results / "new.txt.result.json").exists, "a new file's result")
            moved_in = results / "batch/m.txt.result.json"
            await wait_for(app, moved_in.exists, "a moved-in directory")
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
    assert sorted(upload.name for upload in await app.uploads()) == [
        "batch/m.txt",
        "first.txt",
        "new.txt",
    ]


async def test_a_server_that_is_away_is_waited_for_and_nothing_is_lost(
    app: App, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.txt").write_text("patience\n")
    away = app.wire.outage()

    heard = Heard()
    result = tmp_path / "results" / "a.txt.result.json"
    async with folder(app, inbox, heard) as (sync, _):
        watching = asyncio.create_task(sync.run())
        try:
            await wait_for(app, lambda: bool(heard.retries), "the watch to say it is waiting")
            assert await app.uploads() == []
            away.end()
            await wait_for(app, result.exists, "the result once the server is back")
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
    assert "did not answer" in heard.retries[0]
    assert len(await app.uploads()) == 1
    assert result_of(inbox, "a.txt")["sha256"] == sha(inbox / "a.txt")


async def test_small_files_wait_for_a_batch_together_and_each_gets_its_result(
    app: App, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    names = small_files(inbox, 40)
    # The first two batches wait at the wire while every other file settles and is handed on.
    held = app.wire.hold(posts_to(UPLOADS_BATCH), every=True)
    heard = Heard()

    async with folder(app, inbox, heard) as (sync, _):
        run = asyncio.create_task(sync.run(once=True))
        await wait_for(
            app,
            lambda: len(heard.begun) == len(names) and held.waiting == 2,
            "two batches out and every other file waiting for the next",
        )
        held.release()
        summary = await asyncio.wait_for(run, ENDS_WITHIN)

    assert sorted(summary.outcomes) == names
    assert not summary.failed
    # Not one request a file: the third batch took every file that waited, none went alone.
    assert (sent_to(app, UPLOADS_BATCH), sent_to(app, UPLOADS_REPORTS)) == (3, 3)
    assert sent_to(app, UPLOADS) == 0
    assert sorted(upload.name for upload in await app.uploads()) == names
    for name in names:
        assert result_of(inbox, name)["sha256"] == sha(inbox / name)
    assert {row.state for row in await journaled(app, inbox)} == {"done"}
    # Each sealed result came in a wait's answer: none was fetched from the store.
    assert app.result_gets() == []


async def test_results_the_worker_stored_at_their_urls_are_fetched_from_there(
    app: App, tmp_path: Path
) -> None:
    app.results_by_url = True  # as a large result is: the server keeps none of them itself
    inbox = tmp_path / "inbox"
    names = small_files(inbox, 5)
    async with folder(app, inbox, Heard()) as (sync, _):
        summary = await asyncio.wait_for(sync.run(once=True), ENDS_WITHIN)
    assert sorted(summary.outcomes) == names
    for name in names:
        assert result_of(inbox, name)["sha256"] == sha(inbox / name)
    assert len(app.result_gets()) == len(names)


async def test_a_watch_hands_batches_no_more_small_files_than_fill_them(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folder_module, "FILES_TO_FILL", 5)
    inbox = tmp_path / "inbox"
    names = small_files(inbox, 12)
    held = app.wire.hold(posts_to(UPLOADS_BATCH), every=True)
    heard = Heard()

    async def each_sender_holds_one_more() -> bool:
        read = [row for row in await journaled(app, inbox) if row.sha256 is not None]
        return len(read) == 5 + folder_module.FILES_IN_FLIGHT

    async with folder(app, inbox, heard) as (sync, _):
        run = asyncio.create_task(sync.run(once=True))
        await app.wire.until(each_sender_holds_one_more, "the senders waiting", poll=0.02)
        begun = len(heard.begun)
        held.release()
        summary = await asyncio.wait_for(run, ENDS_WITHIN)

    assert begun == 5, "the senders wait for a place rather than hand on more"
    assert sorted(summary.outcomes) == names
    assert not summary.failed


async def test_a_batch_that_finds_the_server_away_says_so_once_and_its_files_go_later(
    app: App, tmp_path: Path
) -> None:
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    names = small_files(inbox, 12)
    held = app.wire.hold(posts_to(UPLOADS_BATCH), every=True)
    heard = Heard()

    async with folder(app, inbox, heard) as (sync, _):
        watching = asyncio.create_task(sync.run())
        try:
            await wait_for(
                app,
                lambda: len(heard.begun) == len(names) and held.waiting == 2,
                "two batches out and every other file waiting for the next",
            )
            away = app.wire.outage(posts_to(UPLOADS_BATCH))  # the next batch finds no server
            out = set(batch_request_ids(app))
            held.release()

            async def next_batch_refused() -> bool:
                rows = await journaled(app, inbox)
                return sum(row.error is not None for row in rows) == len(names) - len(out)

            await app.wire.until(next_batch_refused, "the files of the next batch", poll=0.02)
            assert len(heard.retries) == 1, heard.retries
            assert "did not answer" in heard.retries[0]
            away.end()
            await wait_for(
                app,
                lambda: all((results / f"{name}.result.json").exists() for name in names),
                "every result once the server is back",
            )
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
    assert sorted(upload.name for upload in await app.uploads()) == names
