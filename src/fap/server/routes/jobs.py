"""Processor routes: lease a job, keep the lease, stream its chunks, store and record the result.

Every route after the lease presents the lease token, and every one checks it is still current and
unexpired (see :meth:`JobQueue.holding`): a worker whose lease lapsed gets 409 from all of them.
"""

from __future__ import annotations

from litestar import Response, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody

from fap.api import (
    JOB_CHUNKS,
    JOB_COMPLETE,
    JOB_COMPLETIONS,
    JOB_FAIL,
    JOB_HEARTBEAT,
    JOB_RESULT_URL,
    LEASE,
    LEASES,
    MAX_COMPLETIONS,
    MAX_INLINE_RESULT,
    MAX_INLINE_RESULTS,
    MAX_LEASES,
    ChunkList,
    ChunkListRequest,
    ChunkRef,
    CompleteRequest,
    CompletionOutcomes,
    Completions,
    FailRequest,
    FileMeta,
    Heartbeat,
    Lease,
    LeaseRequest,
    Leases,
    LeasesRequest,
    ResultUrl,
    ResultUrlRequest,
)
from fap.api.messages import Codec, EngineUsage
from fap.server.auth import Permission, needs
from fap.server.blobs import chunk_key, pack_key, result_key
from fap.server.errors import BadRequest, ClientDisconnected, TooLarge
from fap.server.queue import chunks_topic, long_poll, upload_topic
from fap.server.routes.deps import ProcessorDep, ServicesDep, route
from fap.server.routes.request import FapRequest, while_connected
from fap.server.routes.validation import check_engine, check_sha256, check_text, check_timeout
from fap.server.services import Services
from fap.server.store import Chunk

__all__ = (
    "MAX_RESULT_SIZE",
    "complete_job",
    "complete_jobs",
    "fail_job",
    "heartbeat",
    "job_chunks",
    "job_result_url",
    "lease",
    "leases",
)

# A sealed result is the engine's JSON plus age's overhead: generous, but bounded.
MAX_RESULT_SIZE = 1024 * 1024 * 1024
_MAX_ENGINES = 64
_MAX_CHUNKS_PER_ANSWER = 256
# Chunks a lease carries: enough for a small file's job, or to start a larger one's prefetch.
_CHUNKS_IN_LEASE = 8
_MAX_ERROR = 4000
# A lease of several stops adding jobs at this many bytes of files (a caller may ask for less).
_MAX_LEASE_BYTES = 1024 * 1024 * 1024
_MAX_ID = 200  # a job id or lease token past this is none of ours
# A usage figure past this is garbage, not a measurement (and fits no BIGINT column); NaN, which
# compares false, is refused with it.
_MAX_USAGE = 2**62
_PROCESS = needs(Permission.PROCESS)


@post(
    LEASE,
    opt=_PROCESS,
    status_code=200,
    responses={204: ResponseSpec(None, description="No job came within the timeout.")},
)
async def lease(
    request: FapRequest,
    data: JSONBody[LeaseRequest],
    processor: ProcessorDep,
    services: ServicesDep,
) -> Response[Lease | None]:
    """Long-poll for the oldest queued job whose engine the worker runs; 204 if none came."""
    leased = await _lease(request, services, processor.org.id, data, max_jobs=1, max_bytes=0)
    return Response(leased[0] if leased else None, status_code=200 if leased else 204)


@post(
    LEASES,
    opt=_PROCESS,
    status_code=200,
    responses={204: ResponseSpec(None, description="No job came within the timeout.")},
)
async def leases(
    request: FapRequest,
    data: JSONBody[LeasesRequest],
    processor: ProcessorDep,
    services: ServicesDep,
) -> Response[Leases | None]:
    """Long-poll for the oldest queued jobs whose engine the worker runs, up to ``max_jobs`` while
    their files hold ``max_bytes`` in all (at least one, whatever its size); 204 if none came."""
    if not 1 <= data.max_jobs <= MAX_LEASES:
        raise BadRequest(f"max_jobs must be 1 to {MAX_LEASES}.")
    if not 0 <= data.max_bytes <= _MAX_LEASE_BYTES:
        raise BadRequest(f"max_bytes must be 0 to {_MAX_LEASE_BYTES}.")
    leased = await _lease(
        request, services, processor.org.id, data, max_jobs=data.max_jobs, max_bytes=data.max_bytes
    )
    return Response(Leases(leases=leased) if leased else None, status_code=200 if leased else 204)


async def _lease(
    request: FapRequest,
    services: Services,
    org_id: str,
    data: LeaseRequest | LeasesRequest,
    *,
    max_jobs: int,
    max_bytes: int,
) -> list[Lease]:
    worker_id = check_text(data.worker_id, "worker id", 200)
    if not data.engines:
        raise BadRequest("Name at least one engine (name@version) the worker runs.")
    if len(data.engines) > _MAX_ENGINES:
        raise BadRequest(f"A worker may name at most {_MAX_ENGINES} engines.")
    engines = [check_engine(engine) for engine in dict.fromkeys(data.engines)]
    timeout = check_timeout(data.timeout, services.settings.long_poll_seconds)
    request_id = None if data.request_id is None else check_text(data.request_id, "request_id", 64)
    leasing = services.queue.lease(
        org_id,
        worker_id,
        engines,
        timeout,
        request_id,
        max_jobs=max_jobs,
        max_bytes=max_bytes,
        # A worker that does not say it reads packs is older than them (POST /v1/lease has no
        # such field: it is what only older workers ask).
        packs=isinstance(data, LeasesRequest) and data.packs,
        abandoned=request.abandoned,
    )
    jobs = await while_connected(request, leasing) or []  # None: none came
    if jobs and request.hung_up:
        # Leased just as the worker hung up (it died while waiting): handed back at once rather
        # than left to lapse, which would cost each job one of its attempts for nothing.
        for job in jobs:
            await services.queue.undeliver(job)
        raise ClientDisconnected
    settings = services.settings
    recipients: dict[str, list[str]] = {}  # by uploader: a folder's files share one
    first_chunks = await services.store.uploads.first_chunks(
        [job.id for job in jobs if job.chunk_count > 0], _CHUNKS_IN_LEASE
    )
    answered = []
    pack_urls: dict[str, str] = {}  # a folder's jobs share their packs
    for job in jobs:
        assert job.lease_token is not None  # a leased job has its token
        if job.user_id not in recipients:
            recipients[job.user_id] = await services.store.devices.recipients(job.user_id)
        answered.append(
            Lease(
                job_id=job.id,
                lease_token=job.lease_token,
                lease_seconds=settings.lease_seconds,
                heartbeat_seconds=settings.heartbeat_seconds,
                attempt=job.attempts,
                engine=job.engine,
                file=FileMeta(upload_id=job.id, name=job.name, size=job.size, sha256=job.sha256),
                chunk_count=job.chunk_count,
                recipients=recipients[job.user_id],
                # The first chunks stored, with their GETs: a small file's job needs no listing.
                chunks=await _chunk_refs(services, job.id, first_chunks.get(job.id, []), pack_urls),
            )
        )
    return answered


@post(route(JOB_HEARTBEAT), opt=_PROCESS, status_code=204)
async def heartbeat(
    job_id: FromPath[str], data: JSONBody[Heartbeat], processor: ProcessorDep, services: ServicesDep
) -> None:
    """Extend the lease by ``lease_seconds``; 409 once it is no longer current."""
    await services.queue.heartbeat(processor.org.id, job_id, data.lease_token)


@post(route(JOB_CHUNKS), opt=_PROCESS, status_code=200)
async def job_chunks(
    request: FapRequest,
    job_id: FromPath[str],
    data: JSONBody[ChunkListRequest],
    processor: ProcessorDep,
    services: ServicesDep,
) -> ChunkList:
    """Presigned GETs of the chunks with ``seq > after``, long-polled until one is stored."""
    if data.after < -1:
        raise BadRequest("after must be -1 (from the start) or a chunk number.")
    timeout = check_timeout(data.timeout, services.settings.long_poll_seconds)
    job = await services.queue.holding(processor.org.id, job_id, data.lease_token)
    if job.lease_expires is not None:
        # Wake when the lease runs out at the latest, to answer 409 rather than an empty list.
        timeout = max(0.0, min(timeout, job.lease_expires - services.clock()))

    async def stored() -> list[Chunk] | None:
        await services.queue.holding(processor.org.id, job_id, data.lease_token)
        if data.after >= job.chunk_count - 1:
            return []  # every chunk was listed already: nothing more will come
        chunks = await services.store.uploads.chunks_after(
            job_id, data.after, _MAX_CHUNKS_PER_ANSWER
        )
        return chunks or None

    topics = [chunks_topic(job_id), upload_topic(job_id)]
    polling = long_poll(services.notifier, topics, stored, timeout, abandoned=request.abandoned)
    chunks = await while_connected(request, polling)
    if chunks is None:
        await services.queue.holding(processor.org.id, job_id, data.lease_token)
        chunks = []
    return ChunkList(
        chunk_count=job.chunk_count, chunks=await _chunk_refs(services, job_id, chunks)
    )


@post(route(JOB_RESULT_URL), opt=_PROCESS, status_code=200)
async def job_result_url(
    job_id: FromPath[str],
    data: JSONBody[ResultUrlRequest],
    processor: ProcessorDep,
    services: ServicesDep,
) -> ResultUrl:
    """A presigned PUT for the sealed result: exactly ``size`` bytes with the SHA-256 ``sha256``,
    valid while the lease is (a lapsed holder's URL must not outlive its lease)."""
    _check_result_size(data.size)
    sha256 = check_sha256(data.sha256, "sha256 of the result")
    job = await services.queue.holding(processor.org.id, job_id, data.lease_token)
    ttl: float = services.settings.url_ttl_seconds
    if job.lease_expires is not None:
        ttl = max(1.0, min(ttl, job.lease_expires - services.clock()))
    signed = await services.blobs.presign_put(result_key(job_id), data.size, ttl, sha256=sha256)
    return ResultUrl(
        upload_id=job_id,
        url=signed.url,
        size=data.size,
        headers=dict(signed.headers),
        sha256=sha256,
    )


@post(route(JOB_COMPLETE), opt=_PROCESS, status_code=204)
async def complete_job(
    job_id: FromPath[str],
    data: JSONBody[CompleteRequest],
    processor: ProcessorDep,
    services: ServicesDep,
) -> None:
    """Record the sealed result, once, and seal it; 409 for a stale or lapsed lease, 400 for a
    result not stored as reported (see :meth:`JobQueue.complete`)."""
    _check_result_size(data.result_size)
    sha256 = check_sha256(data.result_sha256, "result_sha256")
    await services.queue.complete(
        processor.org.id, job_id, data.lease_token, data.result_size, sha256, _usage(data.usage)
    )


@post(JOB_COMPLETIONS, opt=_PROCESS, status_code=200)
async def complete_jobs(
    data: JSONBody[Completions], processor: ProcessorDep, services: ServicesDep
) -> CompletionOutcomes:
    """Store and record results that came with their completions, in one transaction; each
    completion is answered on its own (see :meth:`JobQueue.complete_inline`)."""
    completions = data.completions
    if not 1 <= len(completions) <= MAX_COMPLETIONS:
        raise BadRequest(f"Send 1 to {MAX_COMPLETIONS} completions in one request.")
    for completion in completions:
        check_text(completion.job_id, "job id", _MAX_ID)
        check_text(completion.lease_token, "lease token", _MAX_ID)
        if len(completion.result) > MAX_INLINE_RESULT:
            raise TooLarge(
                f"The result of job {completion.job_id} holds {len(completion.result)} bytes; "
                f"one sent with its completion holds at most {MAX_INLINE_RESULT} (PUT a larger "
                "one to its result URL)."
            )
        _usage(completion.usage)
    if sum(len(completion.result) for completion in completions) > MAX_INLINE_RESULTS:
        raise TooLarge(
            f"The results of one request hold at most {MAX_INLINE_RESULTS} bytes in all."
        )
    outcomes = await services.queue.complete_inline(processor.org.id, completions)
    return CompletionOutcomes(outcomes=outcomes)


def _check_result_size(size: int) -> None:
    if size < 0:
        raise BadRequest("The result size must be 0 or more bytes.")
    if size > MAX_RESULT_SIZE:
        raise TooLarge(
            f"A result of {size} bytes is over the {MAX_RESULT_SIZE}-byte limit for results."
        )


@post(route(JOB_FAIL), opt=_PROCESS, status_code=204)
async def fail_job(
    job_id: FromPath[str],
    data: JSONBody[FailRequest],
    processor: ProcessorDep,
    services: ServicesDep,
) -> None:
    """Back to the queue while attempts remain (if retryable), else failed with ``error``."""
    error = data.error.strip() or "The processor reported a failure without saying why."
    check_text(error, "error", 100_000)
    if len(error) > _MAX_ERROR:
        error = error[: _MAX_ERROR - 1] + "…"
    await services.queue.fail(
        processor.org.id, job_id, data.lease_token, error, data.retryable, _usage(data.usage)
    )


def _usage(usage: EngineUsage | None) -> EngineUsage | None:
    """The engine's usage as reported, if its figures can be true: none negative or absurd."""
    if usage is None:
        return None
    figures = (usage.cpu_seconds, usage.peak_memory_bytes, usage.wall_seconds)
    if not all(0 <= figure <= _MAX_USAGE for figure in figures):
        raise BadRequest(
            "The engine's usage must be figures of 0 or more (CPU and wall seconds, bytes)."
        )
    return usage


async def _chunk_refs(
    services: Services, job_id: str, chunks: list[Chunk], pack_urls: dict[str, str] | None = None
) -> list[ChunkRef]:
    """Stored chunks of a job, each with a presigned GET: of its own object, or of the pack it
    lies in, signed once per answer (``pack_urls``: those signed for it already)."""
    ttl = services.settings.url_ttl_seconds
    signed = {} if pack_urls is None else pack_urls
    refs = []
    for chunk in chunks:
        if chunk.pack_id is None:
            url = await services.blobs.presign_get(chunk_key(job_id, chunk.seq), ttl)
        else:
            if chunk.pack_id not in signed:
                signed[chunk.pack_id] = await services.blobs.presign_get(
                    pack_key(chunk.pack_id), ttl
                )
            url = signed[chunk.pack_id]
        refs.append(
            ChunkRef(
                seq=chunk.seq,
                raw_size=chunk.raw_size,
                stored_size=chunk.stored_size,
                codec=_codec(chunk.codec),
                sha256=chunk.sha256,
                url=url,
                pack_offset=chunk.pack_offset,
            )
        )
    return refs


def _codec(codec: str) -> Codec:
    if codec == "zstd":
        return "zstd"
    return "raw"
