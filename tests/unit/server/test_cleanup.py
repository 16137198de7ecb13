"""Retention: abandoned uploads fail, finished uploads' chunks and expired results are deleted —
never a blob a live job still needs — and several replicas may clean at once.

Every test runs on the embedded stores (SQLite, local blobs) and on the scaled-out ones
(PostgreSQL, S3 on SeaweedFS).
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from tests.support.processes import fap_argv
from tests.support.seaweedfs import S3Storage
from tests.unit.server.harness import CHUNK, Server, error_body, running_server
from tests.unit.server.test_job_batches import complete_all, completion
from tests.unit.server.test_packs import (
    a_batch,
    a_stored_pack,
    make_packed,
    packed_reports,
    put_pack,
    send_reports,
)

from fap.api import (
    JOB_COMPLETE,
    JOB_FAIL,
    JOB_RESULT_URL,
    UPLOAD,
    UPLOAD_RESULT,
    UPLOADS_WAIT,
    CompleteRequest,
    FailRequest,
    Lease,
    ResultUrl,
    ResultUrlRequest,
    UploadInfo,
    UploadList,
    UploadWait,
)
from fap.server.blobs import chunk_key, pack_key, result_key
from fap.server.cleanup import Cleaned, Cleanup

HOUR = 3600.0
DAY = 24 * HOUR
ABANDONED = (
    "The upload was abandoned: no chunk came for 24 h; send the file again to have it analysed."
)
# The default URL lifetime (15 min) and a minute's margin: no PUT signed before a job finished
# can arrive after that.
LATE_PUTS = 900 + 60

TWO_CHUNKS = b"a" * CHUNK + b"b" * 10
KEPT = b"age-encryption.org/v1 a result kept by the server"
THREE_CHUNKS = b"x" * (2 * CHUNK + 1)

Start = Callable[..., AbstractAsyncContextManager[Server]]


@pytest.fixture(params=["sqlite+local", "postgresql+s3"])
def stores(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``--db`` and ``--storage`` for the stores under test."""
    if request.param == "sqlite+local":
        return {}
    pg_url: str = request.getfixturevalue("pg_url")
    s3: S3Storage = request.getfixturevalue("s3_storage")
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return {"db": pg_url, "storage": s3.url}


@pytest.fixture
def start(tmp_path: Path, stores: dict[str, str]) -> Start:
    """A server on the stores under test, with settings of the test's own."""

    def start(**overrides: Any) -> AbstractAsyncContextManager[Server]:
        return running_server(tmp_path / "data", **stores, **overrides)

    return start


@pytest.fixture
async def server(start: Start) -> AsyncIterator[Server]:
    async with start() as running:
        yield running


async def state(server: Server, upload_id: str) -> UploadInfo:
    return await server.ok(
        "GET", UPLOAD.format(upload_id=upload_id), server.owner, returns=UploadInfo
    )


async def clean(server: Server) -> Cleaned:
    return await server.services.cleanup.clean()


async def stored(server: Server, key: str) -> bool:
    return await server.services.blobs.size(key) is not None


async def lease_of(server: Server, upload_id: str) -> Lease:
    lease = await server.lease(packs=True)  # a job in a pack too
    assert lease is not None and lease.job_id == upload_id
    return lease


async def finish(server: Server, upload_id: str, result: bytes = b"sealed result") -> None:
    """Lease the job, store its result, complete it: what a worker does."""
    lease = await lease_of(server, upload_id)
    url = await server.ok(
        "POST",
        JOB_RESULT_URL.format(job_id=upload_id),
        server.processor,
        ResultUrlRequest(
            lease_token=lease.lease_token,
            size=len(result),
            sha256=hashlib.sha256(result).hexdigest(),
        ),
        returns=ResultUrl,
    )
    assert (await server.http.put(url.url, content=result, headers=url.headers)).status_code == 200
    done = await server.call(
        "POST",
        JOB_COMPLETE.format(job_id=upload_id),
        server.processor,
        CompleteRequest(
            lease_token=lease.lease_token,
            result_size=len(result),
            result_sha256=hashlib.sha256(result).hexdigest(),
        ),
    )
    assert done.status_code == 204, done.text


async def fail(server: Server, upload_id: str) -> None:
    lease = await lease_of(server, upload_id)
    failed = await server.call(
        "POST",
        JOB_FAIL.format(job_id=upload_id),
        server.processor,
        FailRequest(lease_token=lease.lease_token, error="The engine crashed.", retryable=False),
    )
    assert failed.status_code == 204, failed.text


# -- abandoned uploads --------------------------------------------------------------------------


async def test_an_upload_that_never_got_a_chunk_is_abandoned_after_24_hours(
    server: Server,
) -> None:
    created = await server.create_upload(server.owner, TWO_CHUNKS)
    server.clock.advance(DAY - 1)
    assert await clean(server) == Cleaned()
    assert (await state(server, created.upload.id)).state == "pending"

    server.clock.advance(1)
    assert await clean(server) == Cleaned(abandoned=1)
    info = await state(server, created.upload.id)
    assert (info.state, info.error) == ("failed", ABANDONED)
    assert info.finished_at == server.clock.now


async def test_an_upload_whose_chunks_stopped_coming_is_abandoned_and_its_chunks_deleted(
    server: Server,
) -> None:
    created = await server.create_upload(server.owner, THREE_CHUNKS)
    server.clock.advance(10 * HOUR)
    assert (await server.send_chunk(server.owner, created, THREE_CHUNKS, 0)).status_code == 200
    upload_id = created.upload.id
    assert (await state(server, upload_id)).state == "queued"  # leasable, waiting for a worker

    server.clock.advance(DAY)
    assert await clean(server) == Cleaned(abandoned=1)
    assert (await state(server, upload_id)).error == ABANDONED
    assert await stored(server, chunk_key(upload_id, 0))  # a PUT signed before may still come

    server.clock.advance(LATE_PUTS)
    assert await clean(server) == Cleaned(chunks_deleted=1)
    assert not await stored(server, chunk_key(upload_id, 0))


async def test_an_upload_still_receiving_chunks_is_left_alone(server: Server) -> None:
    created = await server.create_upload(server.owner, THREE_CHUNKS)
    for seq in range(2):
        server.clock.advance(DAY - 1)  # slow, but never silent for 24 h
        assert (
            await server.send_chunk(server.owner, created, THREE_CHUNKS, seq)
        ).status_code == 200
        assert await clean(server) == Cleaned()
    info = await state(server, created.upload.id)
    assert (info.state, info.chunks_stored) == ("queued", [0, 1])


async def test_a_complete_upload_waiting_in_the_queue_is_never_abandoned(server: Server) -> None:
    info = await server.upload(server.owner, TWO_CHUNKS)
    server.clock.advance(30 * DAY)  # no worker for a month: the queue, not the uploader, is slow
    assert await clean(server) == Cleaned()
    assert (await state(server, info.id)).state == "queued"
    assert await stored(server, chunk_key(info.id, 1))


async def test_a_leased_job_is_never_touched_even_when_its_chunks_stopped_coming(
    start: Start,
) -> None:
    # Leases long enough that this one is still live a day and more later.
    async with start(lease_seconds=10 * DAY, heartbeat_seconds=HOUR) as server:
        created = await server.create_upload(server.owner, THREE_CHUNKS)
        assert (await server.send_chunk(server.owner, created, THREE_CHUNKS, 0)).status_code == 200
        await lease_of(server, created.upload.id)
        server.clock.advance(2 * DAY)
        assert await clean(server) == Cleaned()
        assert (await state(server, created.upload.id)).state == "leased"
        assert await stored(server, chunk_key(created.upload.id, 0))


async def test_an_empty_file_is_never_abandoned(server: Server) -> None:
    info = await server.upload(server.owner, b"")
    server.clock.advance(2 * DAY)
    assert await clean(server) == Cleaned()
    assert (await state(server, info.id)).state == "queued"


async def test_a_client_waiting_on_an_abandoned_upload_learns_it_failed(start: Start) -> None:
    async with start(cleanup_seconds=0.02) as server:
        created = await server.create_upload(server.owner, TWO_CHUNKS)
        server.clock.advance(DAY)
        # Answered by the background clean-up's wake-up, long before the 5 s timeout.
        waited = await server.ok(
            "POST",
            UPLOADS_WAIT,
            server.owner,
            UploadWait(ids=[created.upload.id], timeout=5.0),
            returns=UploadList,
        )
        (info,) = waited.uploads
        assert (info.state, info.error) == ("failed", ABANDONED)


async def test_abandon_after_0_never_abandons(start: Start) -> None:
    async with start(abandon_after=0.0) as server:
        created = await server.create_upload(server.owner, TWO_CHUNKS)
        server.clock.advance(365 * DAY)
        assert (await clean(server)).abandoned == 0
        assert (await state(server, created.upload.id)).state == "pending"


# -- chunks of finished jobs --------------------------------------------------------------------


async def test_a_done_jobs_chunks_are_deleted_once_no_late_put_can_come_and_its_result_kept(
    server: Server,
) -> None:
    info = await server.upload(server.owner, TWO_CHUNKS)
    await finish(server, info.id)
    server.clock.advance(LATE_PUTS - 1)
    assert await clean(server) == Cleaned()
    assert await stored(server, chunk_key(info.id, 0))

    server.clock.advance(1)
    assert await clean(server) == Cleaned(chunks_deleted=1)
    assert not await stored(server, chunk_key(info.id, 0))
    assert not await stored(server, chunk_key(info.id, 1))
    assert await stored(server, result_key(info.id))
    done = await state(server, info.id)
    assert (done.state, done.chunks_stored) == ("done", [0, 1])  # the record stays as it was
    result = await server.ok(
        "GET", UPLOAD_RESULT.format(upload_id=info.id), server.owner, returns=ResultUrl
    )
    assert (await server.http.get(result.url)).content == b"sealed result"


async def test_a_failed_jobs_blobs_are_all_deleted(server: Server) -> None:
    info = await server.upload(server.owner, TWO_CHUNKS)
    await fail(server, info.id)
    server.clock.advance(LATE_PUTS)
    assert await clean(server) == Cleaned(chunks_deleted=1)
    assert not await stored(server, chunk_key(info.id, 0))
    failed = await state(server, info.id)
    assert (failed.state, failed.error) == ("failed", "The engine crashed.")


async def test_a_second_pass_finds_nothing_left_to_do(server: Server) -> None:
    info = await server.upload(server.owner, TWO_CHUNKS)
    await finish(server, info.id)
    # Another name: the same one would be answered with the done upload (dedup).
    await server.create_upload(server.owner, TWO_CHUNKS, name="abandoned.csv")
    server.clock.advance(31 * DAY)
    assert await clean(server) == Cleaned(abandoned=1, chunks_deleted=1, expired=1)
    server.clock.advance(LATE_PUTS)
    assert await clean(server) == Cleaned(chunks_deleted=1)
    assert await clean(server) == Cleaned()


async def test_no_empty_directories_are_left_behind(tmp_path: Path) -> None:
    # The local store's own concern: S3 has no directories.
    async with running_server(tmp_path / "data") as server:
        info = await server.upload(server.owner, TWO_CHUNKS)
        await finish(server, info.id)
        server.clock.advance(31 * DAY)
        await clean(server)
        uploads = tmp_path / "data" / "blobs" / "uploads"
        assert list(uploads.iterdir()) == []


# -- expired results ----------------------------------------------------------------------------


async def test_a_result_older_than_keep_results_is_gone_with_410_and_then_deleted(
    server: Server,
) -> None:
    info = await server.upload(server.owner, TWO_CHUNKS)
    await finish(server, info.id)
    server.clock.advance(30 * DAY - 1)
    fetched = await server.call("GET", UPLOAD_RESULT.format(upload_id=info.id), server.owner)
    assert fetched.status_code == 200

    server.clock.advance(1)
    # 410 at once, by the clock: the answer does not wait for the clean-up to run.
    gone = await server.call("GET", UPLOAD_RESULT.format(upload_id=info.id), server.owner)
    assert gone.status_code == 410
    assert error_body(gone).detail == (
        f"The result of upload {info.id} expired and was deleted (results are kept for 30 d); "
        "send the file again to have it analysed anew."
    )
    assert await clean(server) == Cleaned(chunks_deleted=1, expired=1)
    assert not await stored(server, result_key(info.id))
    assert not await stored(server, chunk_key(info.id, 0))
    still = await server.call("GET", UPLOAD_RESULT.format(upload_id=info.id), server.owner)
    assert still.status_code == 410
    assert (await state(server, info.id)).state == "done"


async def test_a_result_the_server_kept_goes_past_keep_results_and_its_copy_too(
    server: Server,
) -> None:
    """A result that came with its completion is kept in the database; a client that asked for
    its URL had it copied to the blob store. Past keep_results both go."""
    info = await server.upload(server.owner, TWO_CHUNKS)
    lease = await lease_of(server, info.id)
    done = await complete_all(server, completion(lease, KEPT))
    assert [outcome.status for outcome in done] == ["done"]
    wait = UploadWait(ids=[info.id], timeout=0.0)  # URLs, as an older client asks
    [waited] = (
        await server.ok("POST", UPLOADS_WAIT, server.owner, wait, returns=UploadList)
    ).uploads
    assert waited.result is not None
    assert await stored(server, result_key(info.id))
    uploads = server.services.store.uploads
    assert await uploads.sealed_results([info.id]) == {info.id: KEPT}

    server.clock.advance(30 * DAY)
    assert await clean(server) == Cleaned(chunks_deleted=1, expired=1)
    assert await uploads.sealed_results([info.id]) == {}
    assert not await stored(server, result_key(info.id))
    wait = UploadWait(ids=[info.id], timeout=0.0, inline_results=True)
    [gone] = (await server.ok("POST", UPLOADS_WAIT, server.owner, wait, returns=UploadList)).uploads
    assert (gone.state, gone.result, gone.sealed_result) == ("done", None, None)


async def test_keep_results_0_keeps_results(start: Start) -> None:
    async with start(keep_results=0.0) as server:
        info = await server.upload(server.owner, TWO_CHUNKS)
        await finish(server, info.id)
        server.clock.advance(365 * DAY)
        assert await clean(server) == Cleaned(chunks_deleted=1)
        assert await stored(server, result_key(info.id))
        fetched = await server.call("GET", UPLOAD_RESULT.format(upload_id=info.id), server.owner)
        assert fetched.status_code == 200


async def test_keep_results_takes_durations_in_the_config_file(tmp_path: Path) -> None:
    from fap.config import ServerSettings, build

    config = tmp_path / "config.toml"
    config.write_text('[server]\nkeep_results = "7d"\nabandon_after = "12h"\n')
    settings = build(ServerSettings, config_file=config, cleanup_seconds=90.0)
    assert (settings.keep_results, settings.abandon_after) == (7 * DAY, 12 * HOUR)
    assert settings.cleanup_seconds == 90.0


def test_fap_serve_refuses_a_duration_it_cannot_read(tmp_path: Path) -> None:
    done = subprocess.run(
        fap_argv("serve", "--data-dir", str(tmp_path / "data"), "--keep-results", "a month"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    assert done.stderr.strip() == (
        "error: --keep-results must be a duration such as 90s, 15m, 24h or 30d (or seconds), "
        "not 'a month'."
    )


# -- several replicas ---------------------------------------------------------------------------


async def test_replicas_cleaning_at_once_change_each_upload_once(server: Server) -> None:
    abandoned = [await server.create_upload(server.owner, TWO_CHUNKS) for _ in range(5)]
    finished = [await server.upload(server.owner, TWO_CHUNKS) for _ in range(3)]
    for info in finished:
        await finish(server, info.id)
    server.clock.advance(DAY + LATE_PUTS)
    services = server.services
    replicas = [
        Cleanup(services.store, services.blobs, services.notifier, services.settings, server.clock)
        for _ in range(3)
    ]
    passes = await asyncio.gather(*(replica.clean() for replica in replicas))
    assert sum(done.abandoned for done in passes) == len(abandoned)
    assert sum(done.chunks_deleted for done in passes) == len(finished)
    for created in abandoned:
        assert (await state(server, created.upload.id)).error == ABANDONED
    for info in finished:
        assert not await stored(server, chunk_key(info.id, 0))
        assert await stored(server, result_key(info.id))


# -- packs --------------------------------------------------------------------------------------


async def test_a_pack_is_deleted_once_none_of_its_chunks_is_needed(server: Server) -> None:
    await server.register_device(server.owner)
    made, _ = await a_stored_pack(server, count=3)
    assert made.pack is not None
    key = pack_key(made.pack.pack_id)
    first, *others = [created.upload.id for created in made.uploads]
    await finish(server, first)
    server.clock.advance(LATE_PUTS)
    # One file of the pack is done, its chunk no longer needed; the others' still are.
    assert await clean(server) == Cleaned(chunks_deleted=1)
    assert await stored(server, key)

    for upload_id in others:
        await finish(server, upload_id)
    server.clock.advance(LATE_PUTS)
    assert await clean(server) == Cleaned(chunks_deleted=2, packs_deleted=1)
    assert not await stored(server, key)
    assert await clean(server) == Cleaned()


async def test_a_pack_never_reported_is_deleted_once_its_url_has_expired(server: Server) -> None:
    await server.register_device(server.owner)
    creates, chunks, data = a_batch(0, 2)
    made = await make_packed(server, creates, data)
    await put_pack(server, made, data)
    assert made.pack is not None
    server.clock.advance(LATE_PUTS - 1)
    assert await clean(server) == Cleaned()
    assert await stored(server, pack_key(made.pack.pack_id))

    server.clock.advance(1)
    assert await clean(server) == Cleaned(packs_deleted=1)
    assert not await stored(server, pack_key(made.pack.pack_id))
    late = await send_reports(server, packed_reports(made, chunks))
    assert late.status_code == 404, late.text  # nothing recorded: the files are sent again
    assert (await state(server, made.uploads[0].upload.id)).chunks_stored == []
