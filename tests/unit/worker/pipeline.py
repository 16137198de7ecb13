"""What a worker test drives and watches: the real server app in-process, the wire the worker
reaches it by, and a client's uploads, stored chunk by chunk when the test says."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import httpx
import msgspec
from tests.support.app_transport import AppTransport, Sent
from tests.unit.server.harness import CHUNK, Server

from fap.api import (
    BLOBS,
    JOB_CHUNKS,
    JOB_COMPLETE,
    JOB_COMPLETIONS,
    JOB_FAIL,
    JOB_HEARTBEAT,
    LEASE,
    LEASES,
    UPLOAD,
    UPLOAD_RESULT,
    UPLOADS,
    ChunkListRequest,
    CompleteRequest,
    Completions,
    FailRequest,
    Lease,
    ResultUrl,
    UploadCreate,
    UploadCreated,
    UploadInfo,
)
from fap.api.messages import EngineUsage
from fap.crypto import open_sealed
from fap.server.blobs import LocalBlobStore, chunk_key
from fap.transfer import sha256_hex

__all__ = ("ENGINE", "Completed", "Job", "KiB", "Pipeline", "sample")

ENGINE = "test@1"  # what the test engines say they run, and what the uploads ask for
KiB = 1024

T = TypeVar("T")
LEASE_PATHS = (LEASE, LEASES)  # a lease of one job, and of several


def sample(size: int) -> bytes:
    """Half text, half noise: some chunks compress, some are stored raw."""
    text = b"".join(b"line %d of the test file\n" % n for n in range(size // 40 + 1))
    return (text[: size // 2] + os.urandom(size))[:size]


@dataclass(frozen=True)
class Job:
    """An upload the test made; to the worker, a job."""

    id: str
    data: bytes


@dataclass(frozen=True)
class Completed:
    """A completion of a job as the worker sent it, with its result or on its own."""

    lease_token: str
    result_size: int
    result_sha256: str
    usage: EngineUsage | None


def _completes(path: str, body: bytes, job: Job) -> bool:
    if path == JOB_COMPLETE.format(job_id=job.id):
        return True
    if path != JOB_COMPLETIONS:
        return False
    batch = msgspec.json.decode(body, type=Completions)
    return any(completion.job_id == job.id for completion in batch.completions)


@dataclass
class Pipeline:
    server: Server
    wire: AppTransport

    # -- the uploader's side -------------------------------------------------------------------

    async def add_job(
        self,
        data: bytes,
        *,
        name: str = "file.bin",
        stored: Iterable[int] | None = None,
        sha256: str | None = None,
    ) -> Job:
        """Upload ``data`` in 64 KiB chunks; ``stored``: the ones sent now (default: all).

        ``sha256`` announces another SHA-256 than the data's, as a broken uploader would.
        """
        server = self.server
        if server.owner not in server.devices:
            await server.register_device(server.owner)
        created = await server.ok(
            "POST",
            UPLOADS,
            server.owner,
            UploadCreate(
                name=name,
                size=len(data),
                sha256=sha256 or hashlib.sha256(data).hexdigest(),
                engine=ENGINE,
                chunk_size=CHUNK,
            ),
            returns=UploadCreated,
        )
        job = Job(created.upload.id, data)
        chunks = range(created.upload.chunk_count)
        await self.store(job, *(chunks if stored is None else stored))
        return job

    async def store(self, job: Job, *seqs: int) -> None:
        """PUT chunks ``seqs`` to their presigned URLs and report them, in that order."""
        created = await self._created(job)
        for seq in seqs:
            response = await self.server.send_chunk(self.server.owner, created, job.data, seq)
            assert response.status_code == 200, response.text

    def corrupt(self, job: Job, seq: int) -> None:
        """Damage a stored chunk at rest, as a faulty disk would, after its checks passed."""
        blobs = self.server.services.blobs
        assert isinstance(blobs, LocalBlobStore)
        path = blobs.path(chunk_key(job.id, seq))
        stored = path.read_bytes()
        path.write_bytes(bytes([stored[0] ^ 0xFF]) + stored[1:])

    async def take_lease(self, job: Job) -> Lease:
        """The worker's lease lapses and another worker leases the job: the token it holds is
        stale now (the server's clock is the test's, so only this makes a lease lapse)."""
        server = self.server
        assert server.settings.max_attempts > 1, "a lapse on the last attempt fails the job"
        # Meanwhile the worker's own requests for work wait at the wire: told its lease is lost
        # (a heartbeat's 409), it asks for work again, and would take the job straight back.
        held = self.wire.hold(self.is_lease, every=True)
        try:
            server.clock.advance(server.settings.lease_seconds + 1)
            await server.services.queue.sweep()
            lease = await server.lease(engines=[ENGINE], worker_id="another-worker")
        finally:
            held.release()
        assert lease is not None and lease.job_id == job.id
        return lease

    # -- what the server knows -----------------------------------------------------------------

    async def info(self, job: Job) -> UploadInfo:
        return await self.server.ok(
            "GET", UPLOAD.format(upload_id=job.id), self.server.owner, returns=UploadInfo
        )

    async def state(self, job: Job) -> str:
        return (await self.info(job)).state

    async def sealed(self, job: Job) -> bytes:
        """The sealed result as the uploader fetches it, checked against what the server recorded."""
        server = self.server
        where = await server.ok(
            "GET", UPLOAD_RESULT.format(upload_id=job.id), server.owner, returns=ResultUrl
        )
        response = await server.http.get(where.url)
        assert response.status_code == 200, response.text
        assert len(response.content) == where.size
        assert sha256_hex(response.content) == where.sha256
        return response.content

    async def result(self, job: Job) -> dict[str, object]:
        """The result, opened with the uploader's device key."""
        sealed = await self.sealed(job)
        opened: dict[str, object] = json.loads(
            open_sealed(sealed, self.server.devices[self.server.owner])
        )
        return opened

    # -- what the worker sent ------------------------------------------------------------------

    def sent(self, path: str) -> list[Sent]:
        return [sent for sent in self.wire.sent if sent.path == path]

    def leases(self) -> list[Sent]:
        """Every request for work, of one job or of several."""
        return [sent for sent in self.wire.sent if sent.path in LEASE_PATHS]

    @staticmethod
    def is_lease(request: httpx.Request) -> bool:
        return request.url.path in LEASE_PATHS

    @staticmethod
    def completing(job: Job) -> Callable[[httpx.Request], bool]:
        """Matches a request that completes ``job``: on its own, or with others."""

        def matches(request: httpx.Request) -> bool:
            return _completes(request.url.path, request.content, job)

        return matches

    def completion_requests(self, job: Job) -> list[Sent]:
        """The requests that completed ``job``, on its own or with others, in order."""
        return [sent for sent in self.wire.sent if _completes(sent.path, sent.body, job)]

    def heartbeats(self, job: Job) -> list[Sent]:
        return self.sent(JOB_HEARTBEAT.format(job_id=job.id))

    def listings(self, job: Job) -> list[ChunkListRequest]:
        return self._bodies(JOB_CHUNKS.format(job_id=job.id), ChunkListRequest)

    @staticmethod
    def chunk_path(job: Job, seq: int) -> str:
        """The path of a chunk's presigned URLs (the local blob store's, served by the app)."""
        return f"{BLOBS}/{chunk_key(job.id, seq)}"

    def chunk_gets(self, job: Job, seq: int) -> list[Sent]:
        return [s for s in self.sent(self.chunk_path(job, seq)) if s.method == "GET"]

    def completes(self, job: Job) -> list[Completed]:
        """What the worker said of ``job``'s result in each completion it sent, in order."""
        said = []
        for sent in self.completion_requests(job):
            if sent.path == JOB_COMPLETIONS:
                batch = msgspec.json.decode(sent.body, type=Completions)
                said.extend(
                    Completed(c.lease_token, len(c.result), sha256_hex(c.result), c.usage)
                    for c in batch.completions
                    if c.job_id == job.id
                )
            else:
                one = msgspec.json.decode(sent.body, type=CompleteRequest)
                said.append(
                    Completed(one.lease_token, one.result_size, one.result_sha256, one.usage)
                )
        return said

    def fails(self, job: Job) -> list[FailRequest]:
        return self._bodies(JOB_FAIL.format(job_id=job.id), FailRequest)

    # -- waiting -------------------------------------------------------------------------------

    async def until(
        self, check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 30.0
    ) -> None:
        """Wait until ``check()`` holds, looking again whenever the worker sends or is answered,
        and now and then for the marker files an engine writes (they send no word)."""
        await self.wire.until(check, what, timeout=timeout, poll=0.05)

    async def until_state(self, job: Job, state: str, timeout: float = 30.0) -> None:
        async def reached() -> bool:
            return await self.state(job) == state

        await self.until(reached, f"job {job.id} to be {state}", timeout)

    def _bodies(self, path: str, kind: type[T]) -> list[T]:
        return [msgspec.json.decode(sent.body, type=kind) for sent in self.sent(path)]

    async def _created(self, job: Job) -> UploadCreated:
        return UploadCreated(upload=await self.info(job))
