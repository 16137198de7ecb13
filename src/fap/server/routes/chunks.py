"""Client routes for an upload's chunks: presigned PUT URLs, and reports of stored chunks."""

from __future__ import annotations

from litestar import post
from litestar.params import FromPath, JSONBody

from fap.api import (
    CHUNK_URLS,
    CHUNKS,
    TERMINAL_STATES,
    ChunkReport,
    ChunkStored,
    ChunkUrl,
    ChunkUrlsRequest,
)
from fap.server.auth import Caller, Permission, needs
from fap.server.blobs import chunk_key
from fap.server.errors import BadRequest, Conflict, Forbidden
from fap.server.queue import chunks_topic, upload_topic
from fap.server.routes.chunk_checks import check_seq, check_stored_size, sign_chunk_puts
from fap.server.routes.deps import CallerDep, ServicesDep, route
from fap.server.routes.uploads import load_upload
from fap.server.routes.validation import check_sha256
from fap.server.routes.views import expected_raw_size
from fap.server.services import Services
from fap.server.store import Chunk, ChunkOutcome, Upload

__all__ = ("chunk_urls", "report_chunk")


@post(route(CHUNK_URLS), opt=needs(Permission.UPLOAD), status_code=200)
async def chunk_urls(
    upload_id: FromPath[str],
    data: JSONBody[ChunkUrlsRequest],
    caller: CallerDep,
    services: ServicesDep,
) -> list[ChunkUrl]:
    """Presigned PUTs for encoded chunks, each signed for its exact size and SHA-256; 409 for a
    chunk already stored."""
    upload = await _own_open_upload(services, caller, upload_id)
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
    upload = await _own_open_upload(services, caller, upload_id)
    seq = data.seq
    check_seq(upload, seq)
    sha256 = check_sha256(data.sha256, "sha256 of the stored chunk")
    expected = expected_raw_size(upload, seq)
    if data.raw_size != expected:
        raise BadRequest(f"Chunk {seq} holds {expected} raw bytes, not {data.raw_size}.")
    check_stored_size(upload, seq, data.stored_size)
    if data.codec == "raw" and data.stored_size != data.raw_size:
        raise BadRequest(f"Chunk {seq} is stored raw, so its stored and raw sizes must be equal.")
    chunk = Chunk(
        upload_id=upload.id,
        seq=seq,
        raw_size=data.raw_size,
        stored_size=data.stored_size,
        codec=data.codec,
        sha256=sha256,
        stored_at=services.clock(),
    )
    # The blob is checked before the chunk is recorded: a recorded chunk is one a worker can read.
    await _check_blob(services, upload, chunk)
    record = await services.store.uploads.record_chunk(upload.id, chunk)
    if record.outcome is ChunkOutcome.DIFFERENT:
        raise _reported_otherwise(upload, seq)
    if record.outcome is ChunkOutcome.CLOSED:
        raise Conflict(f"Upload {upload.id} is finished; it takes no more chunks.")
    assert record.state is not None  # only a CLOSED record lacks the state
    if record.outcome in (ChunkOutcome.QUEUED, ChunkOutcome.STORED):
        services.metrics.chunk_stored(chunk.stored_size, chunk.raw_size)
    if record.outcome is ChunkOutcome.QUEUED:
        await services.queue.queued(upload)
    elif record.outcome is ChunkOutcome.STORED:
        await services.notifier.publish(chunks_topic(upload.id), upload_topic(upload.id))
    return ChunkStored(
        upload_id=upload.id,
        seq=seq,
        stored=record.stored,
        chunk_count=upload.chunk_count,
        state=record.state,
    )


async def _own_open_upload(services: Services, caller: Caller, upload_id: str) -> Upload:
    upload = await load_upload(services, caller, upload_id)
    if upload.user_id != caller.user.id:
        raise Forbidden(f"Only the user who created upload {upload.id} can send its chunks.")
    if upload.state in TERMINAL_STATES:
        raise Conflict(f"Upload {upload.id} is {upload.state}; it takes no more chunks.")
    return upload


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
