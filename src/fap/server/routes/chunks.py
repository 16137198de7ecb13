"""Client routes for an upload's chunks: presigned PUT URLs, and reports of stored chunks."""

from __future__ import annotations

import asyncio

from litestar import post
from litestar.params import FromPath, JSONBody

from fap.api import (
    CHUNK_URLS,
    CHUNKS,
    MAX_BATCH,
    TERMINAL_STATES,
    UPLOADS_REPORTS,
    ChunkReport,
    ChunkReports,
    ChunkStored,
    ChunkUrl,
    ChunkUrlsRequest,
    UploadChunkReport,
)
from fap.server.auth import Caller, Permission, needs
from fap.server.blobs import chunk_key, pack_key
from fap.server.errors import BadRequest, Conflict, Forbidden, NotFound, shown_id
from fap.server.queue import chunks_topic, upload_topic
from fap.server.routes.chunk_checks import check_seq, check_stored_size, sign_chunk_puts
from fap.server.routes.deps import CallerDep, ServicesDep, route
from fap.server.routes.uploads import load_upload
from fap.server.routes.validation import check_sha256
from fap.server.routes.views import expected_raw_size
from fap.server.services import Services
from fap.server.store import Chunk, ChunkOutcome, ChunkRecord, Pack, Upload

__all__ = ("chunk_urls", "report_chunk", "report_chunks")

# Blobs one batch of reports looks at at once (a HEAD each, on S3).
_BLOB_CHECKS = 16


@post(route(CHUNK_URLS), opt=needs(Permission.UPLOAD), status_code=200)
async def chunk_urls(
    upload_id: FromPath[str],
    data: JSONBody[ChunkUrlsRequest],
    caller: CallerDep,
    services: ServicesDep,
) -> list[ChunkUrl]:
    """Presigned PUTs for encoded chunks, each signed for its exact size and SHA-256; 409 for a
    chunk already stored."""
    upload = _own_open(caller, await load_upload(services, caller, upload_id))
    return await sign_chunk_puts(services, upload, data.chunks)


@post(route(CHUNKS), opt=needs(Permission.UPLOAD), status_code=200)
async def report_chunk(
    upload_id: FromPath[str], data: JSONBody[ChunkReport], caller: CallerDep, services: ServicesDep
) -> ChunkStored:
    """Chunk ``seq`` is stored: check it against the blob, record it; the first queues the job.

    Reporting the same chunk again with the same sizes and checksum is harmless; with others, 409.
    Three round trips past the caller's: read the upload, ask the blob's size, record the chunk
    (one transaction); the answer is a count, so a large upload's reports stay O(n) bytes in all.
    """
    upload = _own_open(caller, await load_upload(services, caller, upload_id))
    chunk = _checked_chunk(upload, data, services.clock())
    # The blob is checked before the chunk is recorded: a recorded chunk is one a worker can read.
    await _check_blob(services, upload, chunk)
    record = await services.store.uploads.record_chunk(upload.id, chunk)
    _check_recorded(upload, record, chunk.seq)
    return await _stored(services, upload, chunk, record)


@post(UPLOADS_REPORTS, opt=needs(Permission.UPLOAD), status_code=200)
async def report_chunks(
    data: JSONBody[ChunkReports], caller: CallerDep, services: ServicesDep
) -> list[ChunkStored]:
    """Stored chunks of many uploads (a folder of small files), each checked as ``POST
    .../chunks`` checks one, recorded in one transaction: all of them, or (a 4xx naming the first
    that cannot be) none. The answers come in the order of the reports."""
    reports = data.reports
    if not 1 <= len(reports) <= MAX_BATCH:
        raise BadRequest(f"A batch reports 1 to {MAX_BATCH} chunks, not {len(reports)}.")
    keys = [(report.upload_id, report.seq) for report in reports]
    if len(set(keys)) != len(keys):
        upload_id, seq = next(key for key in keys if keys.count(key) > 1)
        raise BadRequest(f"Chunk {seq} of upload {shown_id(upload_id)} is reported twice.")
    found = await services.store.uploads.get_many(caller.org.id, {key[0] for key in keys})
    named_packs = {report.pack_id for report in reports if report.pack_id is not None}
    packs = await services.store.packs.get_many(caller.org.id, named_packs) if named_packs else {}
    now = services.clock()
    checked: list[tuple[Upload, Chunk]] = []
    for index, report in enumerate(reports):
        upload = found.get(report.upload_id)
        try:
            if upload is None:
                raise NotFound(
                    f"There is no upload {shown_id(report.upload_id)} in your organisation."
                )
            chunk = _checked_chunk(upload, report, now)
            _place_in_pack(chunk, report, packs, caller)
            checked.append((_own_open(caller, upload), chunk))
        except (BadRequest, NotFound, Forbidden, Conflict) as error:
            raise type(error)(f"reports[{index}]: {error}") from None
    # Each blob is checked before any chunk is recorded, a few at a time; the first report (in
    # the batch's order) whose blob is not as reported is the one named. A pack is looked at
    # once, however many chunks it holds.
    gate = asyncio.Semaphore(_BLOB_CHECKS)
    pack_checks = {
        pack_id: asyncio.ensure_future(_check_pack(services, packs[pack_id], gate))
        for pack_id in named_packs
    }

    async def check(upload: Upload, chunk: Chunk) -> None:
        if chunk.pack_id is not None:
            await pack_checks[chunk.pack_id]
            return
        async with gate:
            await _check_blob(services, upload, chunk)

    looked = await asyncio.gather(
        *(check(upload, chunk) for upload, chunk in checked), return_exceptions=True
    )
    for index, outcome in enumerate(looked):
        if isinstance(outcome, BadRequest | Conflict):
            raise type(outcome)(f"reports[{index}]: {outcome}")
        if isinstance(outcome, BaseException):
            raise outcome
    records = await services.store.uploads.record_chunks([chunk for _, chunk in checked])
    for index, ((upload, chunk), record) in enumerate(zip(checked, records, strict=True)):
        try:
            _check_recorded(upload, record, chunk.seq)
        except Conflict as error:
            raise Conflict(f"reports[{index}]: {error}") from None
    return [
        await _stored(services, upload, chunk, record)
        for (upload, chunk), record in zip(checked, records, strict=True)
    ]


def _own_open(caller: Caller, upload: Upload) -> Upload:
    if upload.user_id != caller.user.id:
        raise Forbidden(f"Only the user who created upload {upload.id} can send its chunks.")
    if upload.state in TERMINAL_STATES:
        raise Conflict(f"Upload {upload.id} is {upload.state}; it takes no more chunks.")
    return upload


def _checked_chunk(upload: Upload, data: ChunkReport | UploadChunkReport, now: float) -> Chunk:
    """The chunk a report describes, checked against its upload: BadRequest says why not."""
    seq = data.seq
    check_seq(upload, seq)
    sha256 = check_sha256(data.sha256, "sha256 of the stored chunk")
    expected = expected_raw_size(upload, seq)
    if data.raw_size != expected:
        raise BadRequest(f"Chunk {seq} holds {expected} raw bytes, not {data.raw_size}.")
    check_stored_size(upload, seq, data.stored_size)
    if data.codec == "raw" and data.stored_size != data.raw_size:
        raise BadRequest(f"Chunk {seq} is stored raw, so its stored and raw sizes must be equal.")
    return Chunk(
        upload_id=upload.id,
        seq=seq,
        raw_size=data.raw_size,
        stored_size=data.stored_size,
        codec=data.codec,
        sha256=sha256,
        stored_at=now,
    )


def _place_in_pack(
    chunk: Chunk, report: UploadChunkReport, packs: dict[str, Pack], caller: Caller
) -> None:
    """Record where in its pack a chunk PUT in one lies, checked against the pack: it must be
    the caller's own, and hold the chunk's whole range."""
    if report.pack_id is None:
        if report.pack_offset:
            raise BadRequest("A pack_offset is given, but no pack_id.")
        return
    pack = packs.get(report.pack_id)
    if pack is None:
        raise NotFound(f"There is no pack {shown_id(report.pack_id)} in your organisation.")
    if pack.user_id != caller.user.id:
        raise Forbidden(f"Only the user who made pack {pack.id} can report chunks in it.")
    end = report.pack_offset + chunk.stored_size
    if report.pack_offset < 0 or end > pack.size:
        raise BadRequest(
            f"Chunk {chunk.seq} cannot lie at bytes {report.pack_offset} to {end} of pack "
            f"{pack.id}, which holds {pack.size}."
        )
    chunk.pack_id = pack.id
    chunk.pack_offset = report.pack_offset


async def _check_pack(services: Services, pack: Pack, gate: asyncio.Semaphore) -> None:
    async with gate:
        size = await services.blobs.size(pack_key(pack.id))
    if size is None:
        raise BadRequest(f"Pack {pack.id} is not stored; PUT it to its URL first.")
    if size != pack.size:  # the PUT was signed for the size: only another store's doing
        raise BadRequest(f"The stored pack {pack.id} holds {size} bytes, not {pack.size}.")


def _check_recorded(upload: Upload, record: ChunkRecord, seq: int) -> None:
    if record.outcome is ChunkOutcome.DIFFERENT:
        raise _reported_otherwise(upload, seq)
    if record.outcome is ChunkOutcome.CLOSED:
        raise Conflict(f"Upload {upload.id} is finished; it takes no more chunks.")


async def _stored(
    services: Services, upload: Upload, chunk: Chunk, record: ChunkRecord
) -> ChunkStored:
    """The answer to a recorded chunk, once its news is out: a queued job, or one more chunk."""
    assert record.state is not None  # only a CLOSED record lacks the state
    if record.outcome in (ChunkOutcome.QUEUED, ChunkOutcome.STORED):
        services.metrics.chunk_stored(chunk.stored_size, chunk.raw_size)
    if record.outcome is ChunkOutcome.QUEUED:
        await services.queue.queued(upload)
    elif record.outcome is ChunkOutcome.STORED:
        await services.notifier.publish(chunks_topic(upload.id), upload_topic(upload.id))
    return ChunkStored(
        upload_id=upload.id,
        seq=chunk.seq,
        stored=record.stored,
        chunk_count=upload.chunk_count,
        state=record.state,
    )


async def _check_blob(services: Services, upload: Upload, chunk: Chunk) -> None:
    size = await services.blobs.size(chunk_key(upload.id, chunk.seq))
    if size == chunk.stored_size:
        return
    # Only on the way to a refusal: a chunk recorded before was checked then. Reported again,
    # it is answered as recorded (the same report) or refused as a conflict (another).
    known = await services.store.uploads.get_chunk(upload.id, chunk.seq)
    if known is not None:
        if (known.raw_size, known.stored_size, known.codec, known.sha256) != (
            chunk.raw_size,
            chunk.stored_size,
            chunk.codec,
            chunk.sha256,
        ):
            raise _reported_otherwise(upload, chunk.seq)
        return
    if size is None:
        raise BadRequest(
            f"Chunk {chunk.seq} of upload {upload.id} is not stored; PUT it to its URL first."
        )
    raise BadRequest(
        f"The stored chunk {chunk.seq} holds {size} bytes, not the {chunk.stored_size} reported."
    )


def _reported_otherwise(upload: Upload, seq: int) -> Conflict:
    return Conflict(
        f"Chunk {seq} of upload {upload.id} was reported before with other sizes or checksum."
    )
