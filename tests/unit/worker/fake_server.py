"""A small in-process fake of the server's processor routes and of presigned blob URLs.

It speaks the routes of docs/api.md that a worker uses, through ``httpx.MockTransport``, keeps
every request a worker made, and lets a test decide when chunks are stored, corrupt a chunk,
expire a URL, or take a lease away.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx
import msgspec

from fap.api import (
    ChunkList,
    ChunkListRequest,
    ChunkRef,
    CompleteRequest,
    ErrorBody,
    FailRequest,
    FileMeta,
    Heartbeat,
    Lease,
    LeaseRequest,
    ResultUrl,
    ResultUrlRequest,
    Struct,
)
from fap.crypto import DeviceIdentity
from fap.transfer import EncodedChunk, encode_chunk

BASE = "http://fap.test"
BLOBS = "http://blobs.test"
ENGINE = "test@1"

_JOB_ROUTE = re.compile(r"/v1/jobs/(?P<job>[^/]+)/(?P<action>[a-z-]+)")
_BLOB_ROUTE = re.compile(r"/(?P<job>[^/]+)/(?P<what>[^/]+)")


@dataclass
class FakeJob:
    id: str
    data: bytes
    name: str
    chunks: list[EncodedChunk]
    stored: set[int] = field(default_factory=set)
    sha256: str = ""  # announced; the real one unless a test lies
    state: str = "queued"
    lease_token: str = ""
    attempt: int = 0
    lost: bool = False  # the lease went to someone else: job routes answer 409
    corrupt: set[int] = field(default_factory=set)  # chunks whose stored bytes are damaged
    expired: set[int] = field(default_factory=set)  # chunks whose next GET answers 403 once
    heartbeats: int = 0
    completes: list[CompleteRequest] = field(default_factory=list)
    failures: list[FailRequest] = field(default_factory=list)
    result: bytes | None = None


@dataclass
class FakeServer:
    heartbeat_seconds: float = 10.0
    lease_poll_cap: float = 0.5  # lease long-polls answer 204 after at most this long
    unreachable_leases: int = 0  # the first N lease requests answer 503
    identity: DeviceIdentity = field(default_factory=DeviceIdentity.generate)
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    queue: list[str] = field(default_factory=list)
    lease_requests: list[LeaseRequest] = field(default_factory=list)
    chunk_lists: list[tuple[str, int]] = field(default_factory=list)  # (job, after)
    chunk_gets: list[tuple[str, int]] = field(default_factory=list)  # (job, seq)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def add_job(
        self,
        data: bytes,
        *,
        name: str = "file.bin",
        chunk_size: int = 64 * 1024,
        stored: Iterable[int] | None = None,
        sha256: str | None = None,
    ) -> FakeJob:
        """Queue a job for ``data``; ``stored``: the chunks already uploaded (default: all)."""
        chunks = [
            encode_chunk(seq, data[start : start + chunk_size])
            for seq, start in enumerate(range(0, len(data), chunk_size))
        ]
        job = FakeJob(
            id=f"job-{len(self.jobs) + 1}",
            data=data,
            name=name,
            chunks=chunks,
            sha256=sha256 or hashlib.sha256(data).hexdigest(),
        )
        job.stored = set(range(len(chunks)) if stored is None else stored)
        self.jobs[job.id] = job
        self.queue.append(job.id)
        self._notify()
        return job

    def store(self, job: FakeJob, *seqs: int) -> None:
        job.stored.update(seqs)
        self._notify()

    def take_lease(self, job: FakeJob) -> None:
        """Another worker holds the job now: this one's lease token is stale."""
        job.lost = True
        self._notify()

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        """Wait until ``check()`` holds, re-checking whenever the worker calls this server."""
        deadline = time.monotonic() + timeout
        while not check():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            with contextlib.suppress(TimeoutError):
                # Files a test analyzer writes do not notify: look again now and then.
                await asyncio.wait_for(self._changed.wait(), min(left, 0.05))

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check() and (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    # The routes.

    async def handle(self, request: httpx.Request) -> httpx.Response:
        try:
            if request.url.host == "blobs.test":
                return self._blob(request)
            if request.url.path == "/v1/lease":
                return await self._lease(msgspec.json.decode(request.content, type=LeaseRequest))
            route = _JOB_ROUTE.fullmatch(request.url.path)
            assert route is not None, f"unexpected request {request.method} {request.url}"
            return await self._job(self.jobs[route["job"]], route["action"], request.content)
        finally:
            self._notify()

    async def _lease(self, request: LeaseRequest) -> httpx.Response:
        self.lease_requests.append(request)
        if len(self.lease_requests) <= self.unreachable_leases:
            return _error(503, "The server is starting")
        if ENGINE not in request.engines:
            return httpx.Response(204)
        await self._wait(lambda: bool(self.queue), min(request.timeout, self.lease_poll_cap))
        if not self.queue:
            return httpx.Response(204)
        job = self.jobs[self.queue.pop(0)]
        job.state = "leased"
        job.attempt += 1
        job.lease_token = secrets.token_hex(8)
        lease = Lease(
            job_id=job.id,
            lease_token=job.lease_token,
            lease_seconds=3 * self.heartbeat_seconds,
            heartbeat_seconds=self.heartbeat_seconds,
            attempt=job.attempt,
            engine=ENGINE,
            file=FileMeta(upload_id=job.id, name=job.name, size=len(job.data), sha256=job.sha256),
            chunk_count=len(job.chunks),
            recipients=[self.identity.recipient],
        )
        return _json(lease)

    async def _job(self, job: FakeJob, action: str, body: bytes) -> httpx.Response:
        token = msgspec.json.decode(body, type=Heartbeat).lease_token
        if job.lost or token != job.lease_token:
            return _error(409, "The lease is no longer current")
        if action == "heartbeat":
            job.heartbeats += 1
            return httpx.Response(204)
        if action == "chunks":
            request = msgspec.json.decode(body, type=ChunkListRequest)
            after = request.after
            self.chunk_lists.append((job.id, after))
            await self._wait(lambda: any(s > after for s in job.stored), request.timeout)
            refs = [self._ref(job, seq) for seq in sorted(job.stored) if seq > after]
            return _json(ChunkList(chunk_count=len(job.chunks), chunks=refs))
        if action == "result-url":
            size = msgspec.json.decode(body, type=ResultUrlRequest).size
            return _json(ResultUrl(upload_id=job.id, url=f"{BLOBS}/{job.id}/result", size=size))
        if action == "complete":
            job.completes.append(msgspec.json.decode(body, type=CompleteRequest))
            job.state = "done"
            return httpx.Response(204)
        if action == "fail":
            job.failures.append(msgspec.json.decode(body, type=FailRequest))
            job.state = "failed"
            return httpx.Response(204)
        raise AssertionError(f"unexpected job action {action}")

    def _ref(self, job: FakeJob, seq: int) -> ChunkRef:
        chunk = job.chunks[seq]
        return ChunkRef(
            seq=seq,
            raw_size=chunk.raw_size,
            stored_size=chunk.stored_size,
            codec=chunk.codec,  # type: ignore[arg-type]
            sha256=chunk.sha256,
            url=f"{BLOBS}/{job.id}/{seq}",
        )

    def _blob(self, request: httpx.Request) -> httpx.Response:
        route = _BLOB_ROUTE.fullmatch(request.url.path)
        assert route is not None
        job = self.jobs[route["job"]]
        if request.method == "PUT":
            assert route["what"] == "result"
            job.result = request.content
            return httpx.Response(200)
        seq = int(route["what"])
        self.chunk_gets.append((job.id, seq))
        if seq in job.expired:
            job.expired.discard(seq)
            return httpx.Response(403, text="Request has expired")
        data = job.chunks[seq].data
        if seq in job.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return httpx.Response(200, content=data)


def _json(message: Struct) -> httpx.Response:
    return httpx.Response(
        200, content=msgspec.json.encode(message), headers={"Content-Type": "application/json"}
    )


def _error(status: int, detail: str) -> httpx.Response:
    body = msgspec.json.encode(ErrorBody(status_code=status, detail=detail))
    return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})
