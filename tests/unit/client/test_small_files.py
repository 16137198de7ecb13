"""Small files in batches: one request makes a batch's uploads, one reports their chunks; a batch
the server refuses as a whole is sent file by file, and no file is made twice; closed, the
batches out finish and the files waiting are not sent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TypeVar

import httpx
import msgspec
import pytest
from tests.support.app_transport import Sent as SentRequest
from tests.unit.client.conftest import no_worker
from tests.unit.client.real_app import App

from fap.api import (
    UPLOADS,
    UPLOADS_BATCH,
    UPLOADS_REPORTS,
    JobState,
    UploadBatch,
    UploadCreate,
)
from fap.client import Runtime
from fap.client.small_files import SmallFiles
from fap.client.uploader import FileChanged, LocalFile, Sent, UploadStopped

T = TypeVar("T")

# A hang guard for work that should end by itself, not a measure of how fast it does.
ENDS_WITHIN = 30.0


def posts_to(path: str):  # type: ignore[no-untyped-def]
    def matches(request: httpx.Request) -> bool:
        return request.method == "POST" and request.url.path == path

    return matches


def sent_to(app: App, path: str) -> int:
    return sum(1 for sent in app.wire.sent if sent.method == "POST" and sent.path == path)


def small(tmp_path: Path, count: int) -> list[Path]:
    paths = []
    for n in range(count):
        path = tmp_path / f"small-{n:02d}.log"
        path.write_bytes(f"line {n}\n".encode() * (50 + n))
        paths.append(path)
    return paths


async def send(
    runtime: Runtime, paths: list[Path], *, before: object | None = None
) -> list[Sent | BaseException]:
    """Every file of ``paths`` through one SmallFiles, all waiting at once."""
    await runtime.device()
    batches = SmallFiles(runtime.uploader)
    files = [await runtime.uploader.inspect(path) for path in paths]
    async with asyncio.TaskGroup() as group:
        running = group.create_task(batches.run())
        sent = await asyncio.gather(
            *(batches.upload(file) for file in files), return_exceptions=True
        )
        running.cancel()
    return sent


@no_worker
async def test_a_folder_of_small_files_takes_a_request_or_two_per_batch(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    paths = small(tmp_path, 40)

    sent = await send(runtime, paths)

    assert all(isinstance(one, Sent) for one in sent), sent
    uploads = {upload.id: upload for upload in await app.uploads()}
    assert len(uploads) == 40
    for path, one in zip(paths, sent, strict=True):
        assert isinstance(one, Sent)
        assert one.info.state == JobState.QUEUED and one.info.chunks_stored == [0]
        assert await app.file_bytes(one.info.id) == path.read_bytes()
    assert sent_to(app, UPLOADS) == 0  # no file was made alone
    # All forty were waiting when the first batch was made: one request made them, one PUT
    # stored their chunks end to end, one request reported them.
    assert sent_to(app, UPLOADS_BATCH) == sent_to(app, UPLOADS_REPORTS) == 1
    assert (len(app.pack_puts()), len(app.puts())) == (1, 0)


@no_worker
async def test_a_file_that_changed_since_it_was_hashed_fails_alone(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    paths = small(tmp_path, 3)
    await runtime.device()
    batches = SmallFiles(runtime.uploader)
    files = [await runtime.uploader.inspect(path) for path in paths]
    paths[1].write_bytes(b"another version, of another size\n")

    async with asyncio.TaskGroup() as group:
        running = group.create_task(batches.run())
        sent = await asyncio.gather(
            *(batches.upload(file) for file in files), return_exceptions=True
        )
        running.cancel()

    assert isinstance(sent[1], FileChanged)
    assert "changed while it was being uploaded" in str(sent[1])
    assert isinstance(sent[0], Sent) and isinstance(sent[2], Sent)
    assert len(await app.uploads()) == 2


@no_worker
async def test_a_refused_batch_is_sent_file_by_file_with_the_same_request_ids(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    app.wire.refuse(posts_to(UPLOADS_BATCH), status=429, detail="Too many uploads in flight.")
    paths = small(tmp_path, 5)

    sent = await send(runtime, paths)

    assert all(isinstance(one, Sent) for one in sent), sent
    assert len(await app.uploads()) == 5
    batched = [body(s, UploadBatch).uploads for s in app.wire.sent if s.path == UPLOADS_BATCH]
    alone = [body(s, UploadCreate) for s in app.wire.sent if s.path == UPLOADS]
    assert sorted(c.request_id or "" for c in alone) == sorted(
        c.request_id or "" for c in batched[0]
    )


def body(sent: SentRequest, kind: type[T]) -> T:
    return msgspec.json.decode(sent.body, type=kind)


@no_worker
async def test_refused_reports_are_sent_again_alone_and_make_no_second_upload(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    app.wire.refuse(posts_to(UPLOADS_REPORTS), status=409, detail="A chunk was reported otherwise.")
    paths = small(tmp_path, 4)

    sent = await send(runtime, paths)

    assert all(isinstance(one, Sent) for one in sent), sent
    uploads = await app.uploads()
    assert len(uploads) == 4  # each file alone found the upload its batch made
    assert {upload.state for upload in uploads} == {JobState.QUEUED}
    for path, one in zip(paths, sent, strict=True):
        assert isinstance(one, Sent)
        assert await app.file_bytes(one.info.id) == path.read_bytes()


@no_worker
async def test_a_server_without_batch_routes_is_asked_once(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    app.wire.refuse(posts_to(UPLOADS_BATCH), times=None, status=404, detail="Not Found")
    first = await send(runtime, small(tmp_path, 3))
    batches = SmallFiles(runtime.uploader)
    later = tmp_path / "later"
    later.mkdir()
    files = [await runtime.uploader.inspect(path) for path in small(later, 3)]

    async with asyncio.TaskGroup() as group:
        running = group.create_task(batches.run())
        for file in files:  # one at a time: each would be a batch of its own
            await batches.upload(file)
        running.cancel()

    assert all(isinstance(one, Sent) for one in first)
    assert sent_to(app, UPLOADS_BATCH) == 2  # once by each SmallFiles, then never again
    assert sent_to(app, UPLOADS) == 6


@no_worker
async def test_files_that_arrive_while_batches_are_out_go_together_in_the_next(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    await runtime.device()
    batches = SmallFiles(runtime.uploader)
    files = [await runtime.uploader.inspect(path) for path in small(tmp_path, 12)]
    held = app.wire.hold(posts_to(UPLOADS_BATCH), every=True)

    async with asyncio.TaskGroup() as group:
        running = group.create_task(batches.run())
        # The first two files, one after the other, are a batch each, out at once (the most).
        first = []
        for n, file in enumerate(files[:2], start=1):
            first.append(group.create_task(batches.upload(file)))
            await app.wire.until(lambda n=n: held.waiting == n, f"batch {n} held at the wire")
        rest = [group.create_task(batches.upload(file)) for file in files[2:]]
        # One of them is the next batch's first, waiting for a batch to come back; nine behind.
        await app.wire.until(lambda: batches.waiting == 9, "nine files waiting", poll=0.05)
        held.release()
        sent = [await task for task in first + rest]
        running.cancel()

    assert len({one.info.id for one in sent}) == 12
    created = [s for s in app.wire.sent if s.method == "POST" and s.path == UPLOADS_BATCH]
    assert [s.body.count(b'"request_id"') for s in created] == [1, 1, 10]


@no_worker
async def test_closed_batches_finish_what_is_out_and_send_none_of_the_files_waiting(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    await runtime.device()
    batches = SmallFiles(runtime.uploader)
    files = [await runtime.uploader.inspect(path) for path in small(tmp_path, 12)]
    held = app.wire.hold(posts_to(UPLOADS_BATCH), every=True)

    async def outcome(file: LocalFile) -> Sent | UploadStopped:
        try:
            return await batches.upload(file)
        except UploadStopped as stopped:
            return stopped

    running = asyncio.create_task(batches.run())
    try:
        out = []  # two batches of one file each, out at once (the most)
        for n, file in enumerate(files[:2], start=1):
            out.append(asyncio.create_task(outcome(file)))
            await app.wire.until(lambda n=n: held.waiting == n, f"batch {n} held at the wire")
        rest = [asyncio.create_task(outcome(file)) for file in files[2:]]
        # One is the next batch's first, waiting for a batch to come back; nine behind it.
        await app.wire.until(lambda: batches.waiting == 9, "nine files waiting", poll=0.05)

        batches.close()
        held.release()
        sent = await asyncio.wait_for(asyncio.gather(*out), ENDS_WITHIN)
        stopped = await asyncio.wait_for(asyncio.gather(*rest), ENDS_WITHIN)
        await asyncio.wait_for(running, ENDS_WITHIN)  # closed: it ends by itself
    finally:
        running.cancel()

    assert all(isinstance(one, Sent) for one in sent), sent
    assert all(isinstance(one, UploadStopped) for one in stopped), stopped
    assert "was not sent" in str(stopped[0])
    with pytest.raises(UploadStopped):
        await batches.upload(files[2])  # closed: nothing more is taken
    assert sorted(upload.id for upload in await app.uploads()) == sorted(
        one.info.id for one in sent if isinstance(one, Sent)
    )
    assert sent_to(app, UPLOADS_BATCH) == 2


@no_worker
async def test_a_refused_pack_is_sent_again_file_by_file_and_makes_no_second_upload(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    def pack_put(request: httpx.Request) -> bool:
        return request.method == "PUT" and "/packs/" in request.url.path

    app.wire.refuse(pack_put, status=400, detail="The pack's bytes are not the ones signed.")
    paths = small(tmp_path, 6)

    sent = await send(runtime, paths)

    assert all(isinstance(one, Sent) for one in sent), sent
    assert len(app.pack_puts()) == 1
    uploads = await app.uploads()
    assert len(uploads) == 6  # each file alone found its upload by its request id
    for path, one in zip(paths, sent, strict=True):
        assert isinstance(one, Sent)
        assert await app.file_bytes(one.info.id) == path.read_bytes()
    assert len(app.puts()) == 6  # each chunk to a URL of its own


@no_worker
async def test_a_batch_with_a_file_analysed_before_puts_each_chunk_alone(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    paths = small(tmp_path, 4)
    await send(runtime, paths[:1])  # a batch of one file: its chunk alone, no pack
    lease = await app.server.lease(packs=True)
    assert lease is not None
    await app.finish(lease)  # analysed: the same file sent again is answered with it (dedup)

    sent = await send(runtime, paths)

    assert all(isinstance(one, Sent) for one in sent), sent
    assert isinstance(sent[0], Sent) and sent[0].deduplicated and sent[0].info.id == lease.job_id
    # Packed, the first file's bytes would go again for nothing: each other chunk goes alone.
    assert (len(app.pack_puts()), len(app.puts())) == (0, 1 + 3)
