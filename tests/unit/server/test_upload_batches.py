"""Many small files at once: uploads made in one batch, their chunks reported in another — each
as the single routes would, all of a batch or none of it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
import pytest
from tests.unit.server.harness import CHUNK, Server, both_backends, error_body, running_server
from tests.unit.server.test_quotas import a_free_org
from tests.unit.server.test_store_round_trips import counted

from fap.api import (
    MAX_BATCH,
    UPLOAD,
    UPLOADS,
    UPLOADS_BATCH,
    UPLOADS_REPORTS,
    ChunkReports,
    ChunkSpec,
    ChunkStored,
    JobState,
    UploadBatch,
    UploadBatchCreated,
    UploadChunkReport,
    UploadCreate,
    UploadInfo,
    UploadList,
)
from fap.transfer import EncodedChunk, encode_chunk


def small_file(n: int, request_id: str | None = None) -> tuple[UploadCreate, EncodedChunk]:
    data = f"file {n}: ".encode() * (n + 3)
    chunk = encode_chunk(0, data)
    spec = ChunkSpec(seq=0, size=chunk.stored_size, sha256=chunk.sha256)
    create = UploadCreate(
        name=f"f{n}.txt",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        chunk_size=CHUNK,
        request_id=request_id,
        chunks=[spec],
    )
    return create, chunk


def report(upload_id: str, chunk: EncodedChunk) -> UploadChunkReport:
    return UploadChunkReport(
        upload_id=upload_id,
        seq=chunk.seq,
        raw_size=chunk.raw_size,
        stored_size=chunk.stored_size,
        codec="zstd" if chunk.codec == "zstd" else "raw",
        sha256=chunk.sha256,
    )


async def make(server: Server, creates: list[UploadCreate]) -> UploadBatchCreated:
    return await server.ok(
        "POST",
        UPLOADS_BATCH,
        server.owner,
        UploadBatch(uploads=creates),
        returns=UploadBatchCreated,
    )


async def put(server: Server, made: UploadBatchCreated, chunks: list[EncodedChunk]) -> None:
    for created, chunk in zip(made.uploads, chunks, strict=False):  # the first len(chunks)
        (url,) = created.chunk_urls
        stored = await server.http.put(url.url, content=bytes(chunk.data), headers=url.headers)
        assert stored.status_code == 200, stored.text


async def listed(server: Server) -> list[UploadInfo]:
    return (await server.ok("GET", UPLOADS, server.owner, returns=UploadList)).uploads


@both_backends
async def test_a_batch_of_small_files_takes_one_create_and_one_report(server: Server) -> None:
    await server.register_device(server.owner)
    files = [small_file(n) for n in range(5)]

    made = await make(server, [create for create, _ in files])
    await put(server, made, [chunk for _, chunk in files])
    reports = [
        report(c.upload.id, chunk) for c, (_, chunk) in zip(made.uploads, files, strict=True)
    ]
    answers = await server.ok(
        "POST", UPLOADS_REPORTS, server.owner, ChunkReports(reports), returns=list[ChunkStored]
    )

    assert [c.upload.name for c in made.uploads] == [f"f{n}.txt" for n in range(5)]
    assert [a.upload_id for a in answers] == [c.upload.id for c in made.uploads]
    assert {(a.stored, a.chunk_count, a.state) for a in answers} == {(1, 1, JobState.QUEUED)}
    assert {u.state for u in await listed(server)} == {JobState.QUEUED}
    leases = [await server.lease() for _ in range(5)]
    assert {lease.job_id for lease in leases if lease} == {c.upload.id for c in made.uploads}


@both_backends
async def test_a_batch_with_one_bad_upload_makes_none_and_names_it(server: Server) -> None:
    await server.register_device(server.owner)
    good, _ = small_file(0)
    bad, _ = small_file(1)
    bad = msgspec.structs.replace(bad, sha256="not a checksum")

    refused = await server.call(
        "POST", UPLOADS_BATCH, server.owner, UploadBatch(uploads=[good, bad])
    )

    assert refused.status_code == 400
    detail = error_body(refused).detail
    assert detail.startswith("uploads[1] ('f1.txt'): ") and "64 hexadecimal" in detail
    assert await listed(server) == []


async def test_a_batch_sent_again_answers_the_same_uploads_without_urls_for_stored_chunks(
    server: Server,
) -> None:
    await server.register_device(server.owner)
    files = [small_file(n, request_id=f"batch-{n}") for n in range(3)]
    first = await make(server, [create for create, _ in files])
    await put(server, first, [chunk for _, chunk in files])
    stored = report(first.uploads[0].upload.id, files[0][1])
    await server.ok(
        "POST", UPLOADS_REPORTS, server.owner, ChunkReports([stored]), returns=list[ChunkStored]
    )

    again = await make(server, [create for create, _ in files])

    assert [c.upload.id for c in again.uploads] == [c.upload.id for c in first.uploads]
    assert [len(c.chunk_urls) for c in again.uploads] == [0, 1, 1]
    assert len(await listed(server)) == 3


async def test_a_batch_must_hold_one_to_the_most_uploads(server: Server) -> None:
    await server.register_device(server.owner)
    create, _ = small_file(0)
    for uploads in ([], [create] * (MAX_BATCH + 1)):
        refused = await server.call(
            "POST", UPLOADS_BATCH, server.owner, UploadBatch(uploads=uploads)
        )
        assert refused.status_code == 400
        assert f"1 to {MAX_BATCH} uploads" in error_body(refused).detail


async def test_a_batch_counts_against_the_plans_uploads_in_flight_as_a_whole(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path / "data", default_plan="free") as free:
        owner = await a_free_org(free)  # the free plan: 4 uploads in flight
        five = UploadBatch(uploads=[small_file(n)[0] for n in range(5)])
        refused = await free.call("POST", UPLOADS_BATCH, owner, five)
        assert refused.status_code == 429
        assert "5 more would pass 4" in error_body(refused).detail
        four = UploadBatch(uploads=five.uploads[:4])
        made = await free.call("POST", UPLOADS_BATCH, owner, four)
        assert made.status_code == 201, made.text


@both_backends
async def test_reports_with_one_chunk_not_stored_record_none_and_name_it(server: Server) -> None:
    await server.register_device(server.owner)
    files = [small_file(n) for n in range(3)]
    made = await make(server, [create for create, _ in files])
    await put(server, made, [chunk for _, chunk in files[:2]])  # the last one never PUT
    reports = [
        report(c.upload.id, chunk) for c, (_, chunk) in zip(made.uploads, files, strict=True)
    ]

    refused = await server.call("POST", UPLOADS_REPORTS, server.owner, ChunkReports(reports))

    assert refused.status_code == 400
    assert "not stored; PUT it to its URL first" in error_body(refused).detail
    assert {u.state for u in await listed(server)} == {JobState.PENDING}


@both_backends
async def test_a_report_refused_after_the_blobs_were_checked_rolls_the_batch_back(
    server: Server,
) -> None:
    """The one refusal only the transaction can see: a chunk recorded before with other sizes."""
    await server.register_device(server.owner)
    files = [small_file(n) for n in range(2)]
    made = await make(server, [create for create, _ in files])
    await put(server, made, [chunk for _, chunk in files])
    first = report(made.uploads[0].upload.id, files[0][1])
    await server.ok(
        "POST", UPLOADS_REPORTS, server.owner, ChunkReports([first]), returns=list[ChunkStored]
    )
    otherwise = msgspec.structs.replace(first, sha256="cd" * 32)
    second = report(made.uploads[1].upload.id, files[1][1])

    refused = await server.call(
        "POST", UPLOADS_REPORTS, server.owner, ChunkReports([second, otherwise])
    )

    assert refused.status_code == 409
    assert error_body(refused).detail.startswith("reports[1]: Chunk 0 of upload")
    assert "reported before with other sizes or checksum" in error_body(refused).detail
    untouched = await server.ok(
        "GET", UPLOAD.format(upload_id=second.upload_id), server.owner, returns=UploadInfo
    )
    assert (untouched.state, untouched.chunks_stored) == (JobState.PENDING, [])


@pytest.mark.parametrize(
    ("reports", "status", "words"),
    [
        ("twice", 400, "is reported twice"),
        ("unknown", 404, "reports[0]: There is no upload"),
        ("none", 400, f"1 to {MAX_BATCH} chunks"),
    ],
)
async def test_reports_refuse_a_batch_that_cannot_be(
    server: Server, reports: str, status: int, words: str
) -> None:
    await server.register_device(server.owner)
    create, chunk = small_file(0)
    made = await make(server, [create])
    await put(server, made, [chunk])
    one = report(made.uploads[0].upload.id, chunk)
    batch = {
        "twice": [one, one],
        "unknown": [msgspec.structs.replace(one, upload_id="u" * 26)],
        "none": [],
    }[reports]

    refused = await server.call("POST", UPLOADS_REPORTS, server.owner, ChunkReports(batch))

    assert refused.status_code == status
    assert words in error_body(refused).detail


async def test_only_the_uploader_reports_the_chunks_of_an_upload(server: Server) -> None:
    await server.register_device(server.owner)
    create, chunk = small_file(0)
    made = await make(server, [create])
    await put(server, made, [chunk])
    other = await server.new_user(None, "colleague", "member")

    refused = await server.call(
        "POST", UPLOADS_REPORTS, other, ChunkReports([report(made.uploads[0].upload.id, chunk)])
    )

    assert refused.status_code == 403
    assert error_body(refused).detail.startswith("reports[0]: Only the user who created")


@both_backends
@pytest.mark.parametrize("files", [1, 40])
async def test_a_batch_costs_the_same_statements_however_many_files_it_holds(
    server: Server, monkeypatch: pytest.MonkeyPatch, files: int
) -> None:
    """A regression guard: the batch routes' statements are a fixed number, not one or more a
    file. Create: the caller's token, its devices, then one transaction (the request ids seen,
    the insert, the uploads made) and the stored chunks' read. Report: the caller's token, the
    uploads, then one transaction (lock, queue, insert, count)."""
    await server.register_device(server.owner)
    batch = [small_file(n) for n in range(files)]
    with counted(server, monkeypatch) as creating:
        made = await make(server, [create for create, _ in batch])
    await put(server, made, [chunk for _, chunk in batch])
    reports = [
        report(c.upload.id, chunk) for c, (_, chunk) in zip(made.uploads, batch, strict=True)
    ]
    with counted(server, monkeypatch) as reporting:
        await server.ok(
            "POST", UPLOADS_REPORTS, server.owner, ChunkReports(reports), returns=list[ChunkStored]
        )

    assert len(creating.statements) == 6, creating.statements
    assert len(reporting.statements) == 6, reporting.statements
    assert reporting.blob_calls == ["size"] * files  # each chunk's blob looked at once
