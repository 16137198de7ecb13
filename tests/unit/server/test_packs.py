"""Packs: a batch of small files PUT as one object, each chunk reported where it lies in it, and
read by a processor with a Range request — signed only when every file of the batch needs its
chunk, checked against the caller's own stored pack, and never handed to a worker that cannot
read one."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from tests.unit.server.harness import Server, both_backends, error_body
from tests.unit.server.test_job_batches import lease_several
from tests.unit.server.test_upload_batches import report, small_file

from fap.api import (
    MAX_PACK_SIZE,
    UPLOADS_BATCH,
    UPLOADS_REPORTS,
    ChunkStored,
    JobState,
    PackSpec,
    UploadBatch,
    UploadBatchCreated,
    UploadCreate,
)
from fap.server.blobs import chunk_key, pack_key
from fap.transfer import EncodedChunk, get_bytes


def a_batch(first: int, count: int) -> tuple[list[UploadCreate], list[EncodedChunk], bytes]:
    """``count`` small files, their chunks, and the pack of those chunks end to end."""
    files = [small_file(n) for n in range(first, first + count)]
    chunks = [chunk for _, chunk in files]
    return [create for create, _ in files], chunks, b"".join(bytes(c.data) for c in chunks)


def spec_of(data: bytes) -> PackSpec:
    return PackSpec(size=len(data), sha256=hashlib.sha256(data).hexdigest())


async def make_packed(
    server: Server, creates: list[UploadCreate], data: bytes, token: str | None = None
) -> UploadBatchCreated:
    return await server.ok(
        "POST",
        UPLOADS_BATCH,
        token or server.owner,
        UploadBatch(uploads=creates, pack=spec_of(data)),
        returns=UploadBatchCreated,
    )


async def put_pack(server: Server, made: UploadBatchCreated, data: bytes) -> None:
    assert made.pack is not None
    stored = await server.http.put(made.pack.url, content=data, headers=made.pack.headers)
    assert stored.status_code == 200, stored.text


def packed_reports(
    made: UploadBatchCreated, chunks: list[EncodedChunk], **changes: Any
) -> list[dict[str, Any]]:
    assert made.pack is not None
    reports = []
    offset = 0
    for created, chunk in zip(made.uploads, chunks, strict=True):
        body = msgspec.to_builtins(report(created.upload.id, chunk))
        reports.append({**body, "pack_id": made.pack.pack_id, "pack_offset": offset, **changes})
        offset += chunk.stored_size
    return reports


async def send_reports(server: Server, reports: list[dict[str, Any]]) -> Any:
    return await server.call("POST", UPLOADS_REPORTS, server.owner, {"reports": reports})


async def a_stored_pack(
    server: Server, first: int = 0, count: int = 3
) -> tuple[UploadBatchCreated, list[EncodedChunk]]:
    creates, chunks, data = a_batch(first, count)
    made = await make_packed(server, creates, data)
    await put_pack(server, made, data)
    answered = await send_reports(server, packed_reports(made, chunks))
    assert answered.status_code == 200, answered.text
    return made, chunks


@both_backends
async def test_a_batch_with_a_pack_is_one_put_and_each_chunk_is_read_from_its_range(
    server: Server,
) -> None:
    await server.register_device(server.owner)
    creates, chunks, data = a_batch(0, 4)

    made = await make_packed(server, creates, data)
    assert made.pack is not None and made.pack.size == len(data)
    assert [created.chunk_urls for created in made.uploads] == [[]] * 4  # the pack's PUT only
    await put_pack(server, made, data)
    answered = await server.ok(
        "POST",
        UPLOADS_REPORTS,
        server.owner,
        {"reports": packed_reports(made, chunks)},
        returns=list[ChunkStored],
    )
    assert {(a.stored, a.state) for a in answered} == {(1, JobState.QUEUED)}

    leases = await lease_several(server, max_jobs=4, packs=True)
    assert [lease.job_id for lease in leases] == [c.upload.id for c in made.uploads]
    offset = 0
    for lease, chunk in zip(leases, chunks, strict=True):
        (ref,) = lease.chunks
        assert (ref.pack_offset, ref.stored_size, ref.sha256) == (
            offset,
            chunk.stored_size,
            chunk.sha256,
        )
        read = await get_bytes(server.http, ref.url, byte_range=(offset, chunk.stored_size))
        assert read == bytes(chunk.data)
        offset += chunk.stored_size
    assert len({lease.chunks[0].url for lease in leases}) == 1  # one GET signed for the pack


@both_backends
async def test_a_worker_that_does_not_read_packs_is_leased_only_files_of_their_own(
    server: Server,
) -> None:
    await server.register_device(server.owner)
    await a_stored_pack(server)
    alone = await server.upload(server.owner, b"a file sent on its own")

    lease = await server.lease()  # POST /v1/lease: what a worker older than packs asks
    assert lease is not None and lease.job_id == alone.id
    assert await server.lease() is None
    assert await lease_several(server, max_jobs=4) == []  # LeasesRequest without packs
    assert len(await lease_several(server, max_jobs=4, packs=True)) == 3


async def test_a_pack_is_signed_only_while_every_file_of_the_batch_needs_its_chunk(
    server: Server,
) -> None:
    await server.register_device(server.owner)
    (known, _), (new, _) = small_file(0, request_id="r-0"), small_file(1, request_id="r-1")
    await server.ok(
        "POST",
        UPLOADS_BATCH,
        server.owner,
        UploadBatch(uploads=[known]),
        returns=UploadBatchCreated,
    )
    creates, _, data = a_batch(0, 2)
    creates = [known, new]  # the first was made already by the same request id, and waits

    made = await make_packed(server, creates, data)
    assert made.pack is not None  # made before, but still waiting for its chunk: packed too

    (chunk_stored, _), (other, _) = small_file(2, request_id="r-2"), small_file(3)
    first = await server.ok(
        "POST",
        UPLOADS_BATCH,
        server.owner,
        UploadBatch(uploads=[chunk_stored]),
        returns=UploadBatchCreated,
    )
    await server.send_chunk(server.owner, first.uploads[0], b"file 2: " * 5, 0)
    _, _, data = a_batch(2, 2)
    made = await make_packed(server, [chunk_stored, other], data)
    assert made.pack is None
    assert [len(created.chunk_urls) for created in made.uploads] == [0, 1]


async def test_a_pack_must_hold_exactly_the_chunks_of_its_batch(server: Server) -> None:
    await server.register_device(server.owner)
    creates, _, data = a_batch(0, 2)
    two_chunks = msgspec.structs.replace(creates[1], chunks=creates[1].chunks * 2)
    cases = [
        (UploadBatch(uploads=creates, pack=spec_of(data + b"x")), "chunks of the batch hold"),
        (UploadBatch(uploads=creates, pack=PackSpec(size=0, sha256="0" * 64)), "A pack holds 1"),
        (
            UploadBatch(uploads=creates, pack=PackSpec(size=MAX_PACK_SIZE + 1, sha256="0" * 64)),
            "A pack holds 1",
        ),
        (UploadBatch(uploads=creates, pack=PackSpec(size=len(data), sha256="xyz")), "sha256"),
        (UploadBatch(uploads=[creates[0], two_chunks], pack=spec_of(data)), "uploads[1] names 2"),
    ]
    for batch, said in cases:
        refused = await server.call("POST", UPLOADS_BATCH, server.owner, batch)
        assert refused.status_code == 400, refused.text
        assert said in error_body(refused).detail


async def test_a_report_in_a_pack_is_checked_against_the_stored_pack(server: Server) -> None:
    await server.register_device(server.owner)
    creates, chunks, data = a_batch(0, 2)
    made = await make_packed(server, creates, data)
    assert made.pack is not None

    not_put = await send_reports(server, packed_reports(made, chunks))
    assert not_put.status_code == 400
    assert f"Pack {made.pack.pack_id} is not stored" in error_body(not_put).detail

    await put_pack(server, made, data)
    beyond = packed_reports(made, chunks)
    beyond[1]["pack_offset"] = len(data) - 1
    refused = await send_reports(server, beyond)
    assert refused.status_code == 400
    assert error_body(refused).detail.startswith("reports[1]: Chunk 0 cannot lie at bytes")

    unknown = await send_reports(server, packed_reports(made, chunks, pack_id="0" * 32))
    assert unknown.status_code == 404
    offset_alone = [msgspec.to_builtins(report(made.uploads[0].upload.id, chunks[0]))]
    offset_alone[0]["pack_offset"] = 5
    assert (await send_reports(server, offset_alone)).status_code == 400


async def test_only_the_user_who_made_a_pack_reports_chunks_in_it(server: Server) -> None:
    await server.register_device(server.owner)
    creates, _, data = a_batch(0, 2)
    made = await make_packed(server, creates, data)
    await put_pack(server, made, data)
    member = await server.new_user(None, "mallory", "member")
    await server.register_device(member)
    theirs, their_chunks, _ = a_batch(10, 1)
    own = await server.ok(
        "POST", UPLOADS_BATCH, member, UploadBatch(uploads=theirs), returns=UploadBatchCreated
    )
    assert made.pack is not None
    body = msgspec.to_builtins(report(own.uploads[0].upload.id, their_chunks[0]))
    body |= {"pack_id": made.pack.pack_id, "pack_offset": 0}  # another user's pack

    refused = await server.call("POST", UPLOADS_REPORTS, member, {"reports": [body]})
    assert refused.status_code == 403, refused.text


async def test_a_pack_is_stored_outside_every_uploads_prefix(server: Server) -> None:
    await server.register_device(server.owner)
    made, _ = await a_stored_pack(server)
    assert made.pack is not None
    blobs = server.services.blobs
    assert await blobs.size(pack_key(made.pack.pack_id)) == made.pack.size
    for created in made.uploads:
        assert await blobs.size(chunk_key(created.upload.id, 0)) is None
