"""What a watch leaves in the journal for others: a graceful stop's checkpoint, the files it has
queued, itself as a watcher; and what it takes from it: a file ``fap retry`` set back, the request
ids of small files whose batch a stop or a kill cut short."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from tests.unit.client.real_app import App, chunk_put
from tests.unit.client.test_folder import (
    Heard,
    batch_request_ids,
    folder,
    journaled,
    small_files,
    wait_for,
)
from tests.unit.client.test_small_files import posts_to, sent_to
from tests.unit.server.harness import CHUNK

import fap.client.folder as folder_module
from fap.api import UPLOADS_BATCH, UPLOADS_REPORTS
from fap.client import JOURNAL_NAME, FileRecord, FolderSync, Journal, retry_failed

# A hang guard for a run that should end by itself, not a measure of how fast it does.
ENDS_WITHIN = 30.0


@asynccontextmanager
async def reader(app: App) -> AsyncIterator[Journal]:
    """The journal as ``fap watch --status`` reads it: read-only, beside the running watch."""
    async with Journal(app.settings.home / JOURNAL_NAME, None, read_only=True) as journal:
        yield journal


async def record_of(app: App, path: Path) -> FileRecord:
    async with reader(app) as journal:
        record = await journal.get(str(path))
    assert record is not None, f"{path} is not journaled"
    return record


def watching(sync: FolderSync) -> asyncio.Task[object]:
    return asyncio.create_task(sync.run())


async def test_a_stopped_watch_lets_the_chunks_being_put_land_and_starts_no_more(
    app: App, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    big = inbox / "big.bin"
    big.write_bytes(os.urandom(24 * CHUNK))
    parallel = app.settings.parallel_puts
    in_flight = app.wire.hold(chunk_put(at_least=4), every=True)

    async with folder(app, inbox) as (sync, _):
        run = watching(sync)
        await wait_for(
            app,
            lambda: app.reports_answered() >= 4 and in_flight.waiting == parallel,
            "four chunks stored and a PUT in flight on every connection",
        )
        sync.stop()
        in_flight.release()  # the PUTs begun before the stop go on, and land
        await asyncio.wait_for(run, ENDS_WITHIN)

    [upload] = await app.uploads()
    assert upload.chunks_stored == list(range(4 + parallel))
    assert len(app.puts()) == 4 + parallel, "no PUT begins after the stop"
    checkpoint = await record_of(app, big)
    assert (checkpoint.state, checkpoint.upload_id) == ("uploading", upload.id)
    assert checkpoint.chunks_stored == 4 + parallel
    assert checkpoint.bytes_stored == (4 + parallel) * CHUNK

    async with folder(app, inbox) as (sync, runtime):
        summary = await sync.run(once=True)

    assert not summary.failed
    assert [u.id for u in await app.uploads()] == [upload.id]
    assert [len(app.puts(seq)) for seq in range(24)] == [1] * 24, "each chunk is PUT once"
    assert runtime.uploader.bytes_sent == (24 - 4 - parallel) * CHUNK


async def test_a_stop_cancels_what_has_not_landed_when_its_grace_is_over(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folder_module, "STOP_GRACE_SECONDS", 0.2)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    big = inbox / "big.bin"
    big.write_bytes(os.urandom(12 * CHUNK))
    stuck = app.wire.hold(chunk_put(at_least=2), every=True)  # a link that never comes back

    async with folder(app, inbox) as (sync, _):
        run = watching(sync)
        await wait_for(
            app, lambda: app.reports_answered() >= 2 and stuck.waiting > 0, "a stuck chunk"
        )
        sync.stop()
        await asyncio.wait_for(run, ENDS_WITHIN)
    stuck.release()

    checkpoint = await record_of(app, big)
    assert (checkpoint.state, checkpoint.chunks_stored) == ("uploading", 2)


async def test_files_waiting_for_a_sender_are_journaled_as_queued(app: App, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    files = [inbox / f"file-{number}.txt" for number in range(folder_module.FILES_IN_FLIGHT + 2)]
    for path in files:
        # Two chunks each: a file sent alone holds its sender (a small one would not: it waits
        # for its batch elsewhere).
        path.write_bytes(f"the data of {path.name}\n".encode().ljust(CHUNK + 1, b"."))
    blocked = app.wire.hold(chunk_put(0), every=True)

    async def rows() -> list[FileRecord]:
        async with reader(app) as journal:
            return await journal.under(str(inbox.resolve()))

    async def every_sender_busy() -> bool:
        read = [row for row in await rows() if row.sha256 is not None]
        return len(read) == folder_module.FILES_IN_FLIGHT

    async with folder(app, inbox) as (sync, _):
        run = watching(sync)
        await app.wire.until(every_sender_busy, "a file in each sender", poll=0.02)
        queued = [row for row in await rows() if row.sha256 is None]
        sync.stop()
        blocked.release()
        await asyncio.wait_for(run, ENDS_WITHIN)

    assert len(queued) == 2
    assert all(row.state == "pending" and row.upload_id is None for row in queued)
    # The next run takes them as any other file; one that went meanwhile leaves no row.
    gone = Path(queued[0].path)
    gone.unlink()
    async with folder(app, inbox) as (sync, _):
        summary = await sync.run(once=True)
    assert sorted(summary.outcomes) == sorted(path.name for path in files if path.name != gone.name)
    assert not summary.failed
    assert gone not in [Path(row.path) for row in await rows()]


async def test_a_watch_journals_itself_running_and_then_stopped(app: App, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    async with folder(app, inbox) as (sync, _):
        run = watching(sync)

        async def journaled() -> bool:
            async with reader(app) as journal:
                return bool(await journal.watches())

        await app.wire.until(journaled, "the watch's row", poll=0.02)
        async with reader(app) as journal:
            [running] = await journal.watches()
        sync.stop()
        await asyncio.wait_for(run, ENDS_WITHIN)
    async with reader(app) as journal:
        [stopped] = await journal.watches()

    assert (running.root, running.pid, running.running) == (str(inbox.resolve()), os.getpid(), True)
    assert stopped.stopped_at is not None and not stopped.running


async def test_a_running_watch_sends_a_retried_file_again(app: App, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "a.txt"
    path.write_text("refused once\n")
    app.fail_with = "the engine refused it"
    heard = Heard()
    result = tmp_path / "results" / "a.txt.result.json"

    def failed() -> bool:
        return any(outcome.status == "failed" for outcome, _ in heard.outcomes)

    async with folder(app, inbox, heard) as (sync, _):
        run = watching(sync)
        await wait_for(app, failed, "the analysis to fail")
        app.fail_with = None
        [retried] = await retry_failed([path], home=app.settings.home)
        await wait_for(app, result.exists, "the result of the file sent again")
        sync.stop()
        await asyncio.wait_for(run, ENDS_WITHIN)

    assert (retried.retried, retried.state) == (True, "failed")
    assert retried.watcher is not None and retried.watcher.pid == os.getpid()
    assert len(await app.uploads()) == 2, "sent again as a new upload"
    assert (await record_of(app, path)).state == "done"


@pytest.mark.parametrize("state", ["done", "uploaded"])
async def test_a_retry_leaves_a_file_that_has_not_failed_as_it_is(
    app: App, tmp_path: Path, state: str
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "a.txt"
    path.write_text("fine\n")
    marks: dict[str, Callable[[Journal, str], object]] = {
        "done": lambda journal, key: journal.record_done(key, "/out/a.txt.result.json"),
        "uploaded": lambda journal, key: journal.record_uploaded(key),
    }
    async with Journal(app.settings.home / JOURNAL_NAME, app.settings.server) as journal:
        key = str(path.resolve())
        await journal.record_version(key, 5, 1, "aa")
        await journal.record_upload(key, "up-1", 1, 0)
        await marks[state](journal, key)  # type: ignore[misc]

    [left] = await retry_failed([path], home=app.settings.home)

    assert (left.retried, left.state) == (False, state)
    assert (await record_of(app, path)).state == state


async def test_a_file_retried_while_no_watch_runs_is_sent_by_the_next_once_run(
    app: App, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "a.txt"
    path.write_text("refused once\n")
    app.fail_with = "the engine refused it"
    async with folder(app, inbox) as (sync, _):
        first = await sync.run(once=True)
    assert [outcome.status for outcome in first.failed] == ["failed"]
    app.fail_with = None

    [retried] = await retry_failed([], [inbox], home=app.settings.home)
    async with folder(app, inbox) as (sync, _):
        again = await sync.run(once=True)

    assert retried.retried and retried.watcher is None
    assert not again.failed
    assert len(await app.uploads()) == 2


async def test_a_stop_sends_none_of_the_files_waiting_for_a_batch_and_the_next_run_does(
    app: App, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    names = small_files(inbox, 12)
    held = app.wire.hold(posts_to(UPLOADS_BATCH), every=True)
    heard = Heard()

    async with folder(app, inbox, heard) as (sync, _):
        run = watching(sync)
        await wait_for(
            app,
            lambda: len(heard.begun) == len(names) and held.waiting == 2,
            "two batches out and every other file waiting for the next",
        )
        sync.stop()
        held.release()  # the batches out before the stop go on, and land
        await asyncio.wait_for(run, ENDS_WITHIN)

    out = batch_request_ids(app)
    assert sent_to(app, UPLOADS_BATCH) == 2, "no batch is made after the stop"
    assert len(await app.uploads()) == len(out)
    rows = await journaled(app, inbox)
    assert {row.request_id for row in rows if row.state in ("uploaded", "done")} == set(out)
    waiting = [row for row in rows if row.request_id not in out]
    assert len(waiting) == len(names) - len(out)
    assert all(row.state == "pending" and row.upload_id is None for row in waiting)

    before = len(app.wire.sent)
    async with folder(app, inbox) as (sync, _):
        summary = await sync.run(once=True)

    assert sorted(summary.outcomes) == names
    assert not summary.failed
    assert sorted(upload.name for upload in await app.uploads()) == names
    # Asked for with the ids journalled for them before the stop.
    assert sorted(batch_request_ids(app, since=before)) == sorted(
        row.request_id for row in waiting if row.request_id is not None
    )


@pytest.mark.parametrize(
    "lost", [UPLOADS_BATCH, UPLOADS_REPORTS], ids=["uploads made", "chunks reported"]
)
async def test_a_watch_killed_mid_batch_makes_no_upload_twice_when_it_runs_again(
    app: App, tmp_path: Path, lost: str
) -> None:
    inbox = tmp_path / "inbox"
    names = small_files(inbox, 12)
    # The server does the work of two batches; its answers wait at the wire, and the watch is
    # killed there: what ``kill -9`` at that moment leaves behind.
    answers = app.wire.hold(posts_to(lost), answered=True, every=True)
    heard = Heard()

    async with folder(app, inbox, heard) as (sync, _):
        run = watching(sync)
        await wait_for(
            app,
            lambda: len(heard.begun) == len(names) and answers.waiting == 2,
            "two batches' answers held and every other file waiting",
        )
        run.cancel()  # like a kill: nothing more is told to the server or the journal
        await asyncio.gather(run, return_exceptions=True)
    answers.release()
    made = {upload.id for upload in await app.uploads()}
    assert made, "the batches out were made"
    fresh = {row.request_id for row in await journaled(app, inbox) if row.state == "pending"}

    before = len(app.wire.sent)
    async with folder(app, inbox) as (sync, _):
        summary = await sync.run(once=True)

    assert not summary.failed
    uploads = await app.uploads()
    assert sorted(upload.name for upload in uploads) == names, "one upload for each file"
    assert made <= {upload.id for upload in uploads}
    assert set(batch_request_ids(app, since=before)) == fresh, "the same request ids"
    assert sorted(app.completed) == sorted(upload.id for upload in uploads)
    assert {row.state for row in await journaled(app, inbox)} == {"done"}
