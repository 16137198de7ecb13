"""Wire messages of API v1, shared by server, client and worker.

Every request and response body is one of these structs, encoded as JSON by msgspec; a change here
fails the type check of every role that speaks it.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from fap.api.limits import DEFAULT_CHUNK_SIZE
from fap.api.states import TERMINAL_STATES, JobState

__all__ = (
    "TERMINAL_STATES",
    "ChunkList",
    "ChunkListRequest",
    "ChunkRef",
    "ChunkReport",
    "ChunkReports",
    "ChunkSpec",
    "ChunkStored",
    "ChunkUrl",
    "ChunkUrlsRequest",
    "CompleteRequest",
    "CompletionOutcome",
    "CompletionOutcomes",
    "CompletionStatus",
    "Completions",
    "DeviceInfo",
    "DeviceRegistration",
    "EngineStatus",
    "EngineUsage",
    "ErrorBody",
    "FailRequest",
    "FileMeta",
    "Heartbeat",
    "JobCompletion",
    "JobState",
    "Lease",
    "LeaseRequest",
    "LeaseToken",
    "Leases",
    "LeasesRequest",
    "PackSpec",
    "PackUrl",
    "ResultUrl",
    "ResultUrlRequest",
    "StatusReport",
    "Struct",
    "UploadBatch",
    "UploadBatchCreated",
    "UploadChunkReport",
    "UploadCreate",
    "UploadCreated",
    "UploadInfo",
    "UploadList",
    "UploadWait",
    "WorkerInfo",
)

Codec = Literal["zstd", "raw"]


class Struct(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """Base of every wire message: keyword-only, unknown fields ignored (newer peers may add some)."""


class ErrorBody(Struct):
    """Every non-2xx answer of the API: one sentence for a human, a stable code for a program."""

    status_code: int
    detail: str


class DeviceRegistration(Struct):
    name: str
    recipient: str  # an age X25519 public key, "age1…"


class DeviceInfo(Struct):
    id: str
    name: str
    recipient: str
    created_at: float = 0.0
    revoked_at: float | None = None  # a revoked device gets no new results


class FileMeta(Struct):
    """What the engine is told about a file, besides its bytes."""

    upload_id: str
    name: str
    size: int
    sha256: str


class ChunkSpec(Struct):
    """An encoded chunk a client is about to PUT: the URL is signed for exactly these bytes."""

    seq: int
    size: int  # of the stored (possibly compressed) bytes
    sha256: str  # of the stored bytes


class UploadCreate(Struct):
    name: str
    size: int
    sha256: str
    engine: str | None = None  # name@version; None: the organisation's default
    chunk_size: int = DEFAULT_CHUNK_SIZE
    # Chosen by the client, unique per upload it means to make (e.g. a random UUID): the same
    # request sent again after a lost answer — to this replica or another — gets the same upload.
    request_id: str | None = None
    # Chunks the client encoded already (a small file's one chunk): their presigned PUTs come
    # with the answer, one round trip sooner than POST chunk-urls.
    chunks: list[ChunkSpec] = []
    # A file this user had analysed already (same name, size, content and engine, its result
    # still kept and sealed to exactly their devices now) is answered with that upload, done,
    # and nothing is made; false has it analysed anew. Absent (an older client): true.
    dedup: bool = True


class ChunkUrl(Struct):
    """A presigned PUT for one chunk: it stores exactly ``size`` bytes with the signed SHA-256."""

    seq: int
    url: str
    size: int  # the signed Content-Length: a PUT of any other size is refused
    headers: dict[str, str]  # sent as they are with the PUT (Content-Length, a checksum)


class UploadInfo(Struct):
    id: str
    name: str
    size: int
    sha256: str
    engine: str
    chunk_size: int
    chunk_count: int
    chunks_stored: list[int]
    state: JobState
    attempts: int
    error: str | None
    created_at: float
    finished_at: float | None
    # In an answer to POST /v1/uploads/wait, for the caller's own done upload: its result's
    # presigned GET, so that fetching it takes no request of its own. Older servers send none.
    result: ResultUrl | None = None
    # Instead of ``result``, where the wait asked for ``inline_results`` and the server keeps this
    # result itself (one sent with its completion): the sealed bytes. Older servers send none.
    sealed_result: SealedResult | None = None


class UploadCreated(Struct):
    upload: UploadInfo
    # For the chunks the request named, those not stored yet (a request sent again may find some).
    chunk_urls: list[ChunkUrl] = []


class PackSpec(Struct):
    """One object holding the chunks a batch names, end to end in the batch's order: a folder of
    small files is PUT in one request rather than one a file. Its URL is signed for exactly
    these bytes, as a chunk's is."""

    size: int
    sha256: str  # of the whole pack


class PackUrl(Struct):
    """A presigned PUT for a pack: it stores exactly ``size`` bytes with the signed SHA-256."""

    pack_id: str  # named by each chunk report of a chunk stored in it
    url: str
    size: int
    headers: dict[str, str]  # sent as they are with the PUT


class UploadBatch(Struct):
    """Uploads to make in one transaction: a folder of small files, each with its one chunk, costs
    one request for all instead of one each. The whole batch is made, or (4xx) none of it."""

    uploads: list[UploadCreate]
    # The chunks the uploads name, as one pack: where every upload is new and needs its chunk,
    # the answer signs the pack's PUT and no chunk's; otherwise (a file analysed before, a
    # request sent again) each chunk's, as without a pack. Absent (an older client): no pack.
    pack: PackSpec | None = None


class UploadBatchCreated(Struct):
    uploads: list[UploadCreated]  # in the order asked
    pack: PackUrl | None = None  # the pack's PUT, when the server signed it instead of chunks'


class ChunkUrlsRequest(Struct):
    """Presigned PUTs for chunks already encoded: the store binds each to its size and checksum."""

    chunks: list[ChunkSpec]


class ChunkReport(Struct):
    """The client's word that chunk ``seq`` is stored: sizes and the checksum of the stored bytes."""

    seq: int
    raw_size: int
    stored_size: int
    codec: Codec
    sha256: str  # of the stored (possibly compressed) bytes


class UploadChunkReport(Struct):
    """A :class:`ChunkReport` that names its upload, for reports of many uploads at once."""

    upload_id: str
    seq: int
    raw_size: int
    stored_size: int
    codec: Codec
    sha256: str
    # A chunk PUT in a pack: which one, and where in it the chunk's stored bytes begin.
    pack_id: str | None = None
    pack_offset: int = 0


class ChunkReports(Struct):
    """Stored chunks of many uploads, recorded in one transaction: all of them, or (4xx) none."""

    reports: list[UploadChunkReport]


class ChunkStored(Struct):
    """The answer to a chunk report: how far the upload is. A count rather than the list of
    stored chunks, so that reporting each chunk of a large file costs O(1) bytes, not O(n)."""

    upload_id: str
    seq: int  # the chunk reported
    stored: int  # how many of the upload's chunks are stored, this one included
    chunk_count: int
    state: JobState


class UploadList(Struct):
    uploads: list[UploadInfo]


class UploadWait(Struct):
    """Long-poll: answer once any of ``ids`` is done or failed, or after ``timeout`` seconds."""

    ids: list[str]
    timeout: float = 20.0
    # Answer only those of ``ids`` that are done or failed (none, after the timeout): a client
    # waiting for a folder's files needs no word of the others. Absent (an older client): every
    # upload named, in the order named.
    finished_only: bool = False
    # Small sealed results come in the answer itself (``UploadInfo.sealed_result``), as many as
    # MAX_INLINE_ANSWER bytes hold, rather than as URLs to fetch them one by one; with
    # ``finished_only``, finished uploads past that bound are left to the next wait. Absent (an
    # older client): every result as a URL.
    inline_results: bool = False


class SealedResult(Struct):
    """A sealed (age) result in an answer: the ciphertext and the SHA-256 the server recorded at
    its job's completion, which the client checks before it decrypts."""

    sha256: str
    sealed: bytes  # base64 in JSON


class ResultUrl(Struct):
    upload_id: str
    url: str
    size: int
    # For a PUT (the worker's): sent as they are with it (Content-Length, a checksum).
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    # For a GET (the client's): the SHA-256 of the ciphertext the server recorded at completion;
    # the client checks the bytes against it before decrypting.
    sha256: str | None = None


class LeaseRequest(Struct):
    worker_id: str
    engines: list[str]
    timeout: float = 20.0  # long-poll: how long the server may hold the request
    # Chosen by the worker, new for each lease it asks for: the same request sent again after a
    # lost answer gets the lease that answer carried, rather than leaving it to lapse.
    request_id: str | None = None


class LeasesRequest(Struct):
    """A lease request for up to ``max_jobs`` jobs at once, the oldest first, as long as their
    files hold ``max_bytes`` in all (the first is leased whatever its size): a processor working
    small files asks once for several rather than once for each."""

    worker_id: str
    engines: list[str]
    max_jobs: int = 1
    max_bytes: int = 0
    timeout: float = 20.0
    request_id: str | None = None  # as in LeaseRequest: the same request sent again after a loss
    # The worker reads a chunk out of a pack (ChunkRef.pack_offset). Absent (an older worker):
    # it is leased only jobs whose chunks are objects of their own.
    packs: bool = False


class LeaseToken(Struct):
    lease_token: str


class ChunkRef(Struct):
    seq: int
    raw_size: int
    stored_size: int
    codec: Codec
    sha256: str
    url: str
    # None: the object at ``url`` is the chunk. A number: the object is a pack, and the chunk is
    # its ``stored_size`` bytes from this offset (read with a Range request).
    pack_offset: int | None = None


class Lease(Struct):
    job_id: str
    lease_token: str  # the fencing token: every later call for this job must present it
    lease_seconds: float
    heartbeat_seconds: float
    attempt: int
    engine: str
    file: FileMeta
    chunk_count: int
    recipients: list[str]  # age public keys of the uploader's devices
    # The first chunks stored by the time of the lease, with their presigned GETs: a small file's
    # job needs no listing at all.
    chunks: list[ChunkRef] = []


class Leases(Struct):
    leases: list[Lease]  # the oldest job first; never empty (no job within the timeout: 204)


class Heartbeat(Struct):
    lease_token: str


class ChunkListRequest(Struct):
    lease_token: str
    after: int = -1  # answer chunks with seq > after
    timeout: float = 20.0


class ChunkList(Struct):
    """Chunks stored after ``after`` (long-polled on the server until one arrives)."""

    chunk_count: int
    chunks: list[ChunkRef]


class ResultUrlRequest(Struct):
    lease_token: str
    size: int
    sha256: str  # of the ciphertext: the URL stores these bytes and no others


class EngineUsage(Struct):
    """What the engine used for one attempt of a job, as its processor measured it: the kernel's
    count of CPU time (every process of the engine's sandbox), the engine's peak resident memory,
    and the wall time of the analysis."""

    cpu_seconds: float
    peak_memory_bytes: int
    wall_seconds: float


class CompleteRequest(Struct):
    lease_token: str
    result_size: int
    result_sha256: str  # of the ciphertext
    # Since the engine sandbox; older processors send none, older servers ignore it.
    usage: EngineUsage | None = None


class JobCompletion(Struct):
    """A job's completion that carries its sealed result (at most MAX_INLINE_RESULT bytes): the
    server stores it, so the result needs no URL and no PUT of its own."""

    job_id: str
    lease_token: str
    result: bytes  # the sealed result (base64 in JSON)
    usage: EngineUsage | None = None


class Completions(Struct):
    """Completions of many jobs, recorded in one transaction; each is answered on its own."""

    completions: list[JobCompletion]


# done: recorded (or recorded already, by this very completion); conflict: the lease is not
# current (or the job cannot be complete yet): drop the job, as a 409 says; refused: what was sent
# for this job is wrong, as a 400 says.
CompletionStatus = Literal["done", "conflict", "refused"]


class CompletionOutcome(Struct):
    job_id: str
    status: CompletionStatus
    error: str | None = None  # why, when not done


class CompletionOutcomes(Struct):
    outcomes: list[CompletionOutcome]  # in the order of the completions


class FailRequest(Struct):
    lease_token: str
    error: str
    retryable: bool = True
    usage: EngineUsage | None = None  # as in CompleteRequest


class WorkerInfo(Struct):
    worker_id: str
    engines: list[str]
    last_seen: float
    active_jobs: int


class EngineStatus(Struct):
    """One engine version, NAME@VERSION: the processors online that run it, its jobs."""

    engine: str
    processors: list[str]  # worker ids
    waiting: int  # jobs queued for it
    running: int  # jobs leased, being analysed


class StatusReport(Struct):
    workers: list[WorkerInfo]
    jobs: dict[str, int]  # JobState -> count
    queue_depth: int
    # Since API version 2026-12-01; older servers send neither, older clients ignore both. Every
    # engine served, waited for or pinned, by name; and the one the organisation's uploads use.
    engines: list[EngineStatus] = msgspec.field(default_factory=list)
    default_engine: str | None = None
