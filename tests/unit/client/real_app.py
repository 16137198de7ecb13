"""The client against the real server app, in-process: the app answers the API and its blob URLs
over a recording, fault-injecting wire (``tests.support.app_transport``), and a small worker here
plays ``fap work``: it fetches each job's chunks, checks and decompresses them, and completes the
job with a sealed result, the JSON ``{"name", "size", "sha256"}`` of the bytes that arrived — sent
with the completion, as ``fap work`` sends a small result, or (``results_by_url``) PUT to the
job's result URL first, as it sends a large one — or fails it, when the test says so. The worker speaks to the app on its own connection, so the wire
records the client's requests alone."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import msgspec
from tests.support.app_transport import AppTransport, Match, Sent
from tests.unit.server.harness import BASE, CHUNK, Server, running_server

from fap.api import (
    BLOBS,
    CHUNK_URLS,
    CHUNKS,
    JOB_COMPLETE,
    JOB_COMPLETIONS,
    JOB_FAIL,
    JOB_RESULT_URL,
    UPLOADS,
    ApiSession,
    ChunkReport,
    ChunkSpec,
    ChunkUrlsRequest,
    CompleteRequest,
    CompletionOutcomes,
    Completions,
    FailRequest,
    JobCompletion,
    Lease,
    ResultUrl,
    ResultUrlRequest,
    UploadInfo,
    UploadList,
)
from fap.client import Runtime, open_runtime
from fap.config import ClientSettings
from fap.crypto import seal
from fap.server.blobs import LocalBlobStore, chunk_key, pack_key
from fap.transfer import decode_chunk
from fap.worker.chunks import ChunkStream

__all__ = ("App", "chunk_put", "chunk_seq", "running_app")

# The last step of per-upload paths, to pick a route's requests out of the wire's record.
CHUNK_URLS_STEP = "/" + CHUNK_URLS.rsplit("/", 1)[1]
_CHUNKS_STEP = "/" + CHUNKS.rsplit("/", 1)[1]


def chunk_seq(path: str) -> int | None:
    """The chunk a blob URL's path names (``/blobs/uploads/{id}/chunks/{seq:08d}``), if any."""
    parent, _, last = path.rpartition("/")
    if not (path.startswith(f"{BLOBS}/uploads/") and parent.endswith("/chunks")):
        return None
    return int(last)


def chunk_put(seq: int | None = None, *, at_least: int = 0) -> Match:
    """Matches the PUT of chunk ``seq`` of any upload (None: of any chunk ``>= at_least``)."""

    def matches(request: httpx.Request) -> bool:
        number = chunk_seq(request.url.path)
        if request.method != "PUT" or number is None:
            return False
        return number == seq if seq is not None else number >= at_least

    return matches


class App:
    """The real app, a client's settings and wire for it, and the jobs its worker finished."""

    def __init__(
        self, server: Server, home: Path, processor: ApiSession, pool: ThreadPoolExecutor
    ) -> None:
        self.server = server
        self._processor = processor  # the worker's session, on a wire of its own
        self._pool = pool
        self.wire = AppTransport(server.app)
        self.settings = ClientSettings(
            server=BASE,
            token=server.owner,
            home=home,
            retry_for=0.5,
            chunk_size=CHUNK,
            parallel_puts=3,
            settle_seconds=0.1,
        )
        self.fail_with: str | None = None  # the worker fails every job with this error
        self.results_by_url = False  # the worker PUTs each result to its URL, as a large one
        self.completed: list[str] = []

    @asynccontextmanager
    async def runtime(self, *, bwlimit: float | None = None) -> AsyncIterator[Runtime]:
        """A client's runtime, as one run of ``fap upload`` or ``fap watch`` holds it."""
        async with open_runtime(self.settings, transport=self.wire, bwlimit=bwlimit) as opened:
            yield opened

    # -- what the server holds -----------------------------------------------------------------

    async def uploads(self) -> list[UploadInfo]:
        """Every upload of the owner, newest first."""
        answer = await self.server.ok(
            "GET", UPLOADS, self.server.owner, returns=UploadList, limit=1000
        )
        return answer.uploads

    async def file_bytes(self, upload_id: str) -> bytes:
        """The file as the server holds it: every chunk reported, checked and decompressed."""
        store = self.server.services.store.uploads
        parts = []
        for seq in (await store.stored_seqs([upload_id])).get(upload_id, []):
            chunk = await store.get_chunk(upload_id, seq)
            assert chunk is not None
            if chunk.pack_id is None:
                stored = self._blobs().path(chunk_key(upload_id, seq)).read_bytes()
            else:  # its range of the pack it was PUT in
                assert chunk.pack_offset is not None
                pack = self._blobs().path(pack_key(chunk.pack_id)).read_bytes()
                stored = pack[chunk.pack_offset : chunk.pack_offset + chunk.stored_size]
            parts.append(
                decode_chunk(
                    stored, codec=chunk.codec, raw_size=chunk.raw_size, sha256=chunk.sha256
                )
            )
        return b"".join(parts)

    async def chunks(self, upload_id: str) -> list[ChunkReport]:
        """The chunks the server recorded for an upload, in order."""
        store = self.server.services.store.uploads
        found = []
        for seq in (await store.stored_seqs([upload_id])).get(upload_id, []):
            chunk = await store.get_chunk(upload_id, seq)
            assert chunk is not None
            found.append(
                ChunkReport(
                    seq=chunk.seq,
                    raw_size=chunk.raw_size,
                    stored_size=chunk.stored_size,
                    codec="zstd" if chunk.codec == "zstd" else "raw",
                    sha256=chunk.sha256,
                )
            )
        return found

    # -- what the client sent ------------------------------------------------------------------

    def puts(self, seq: int | None = None) -> list[Sent]:
        """Every PUT of a chunk (of chunk ``seq``) the client sent, whatever its answer."""
        return [
            sent
            for sent in self.wire.sent
            if sent.method == "PUT"
            and (number := chunk_seq(sent.path)) is not None
            and seq in (None, number)
        ]

    def pack_puts(self) -> list[Sent]:
        """Every PUT of a pack (a batch's chunks in one object) the client sent."""
        return [
            sent
            for sent in self.wire.sent
            if sent.method == "PUT" and sent.path.startswith(f"{BLOBS}/packs/")
        ]

    def result_gets(self) -> list[Sent]:
        """Every GET of a stored result the client sent."""
        return [
            sent
            for sent in self.wire.sent
            if sent.method == "GET"
            and sent.path.startswith(f"{BLOBS}/uploads/")
            and sent.path.endswith("/result.age")
        ]

    def bytes_stored(self) -> int:
        """The bytes of every chunk PUT the store accepted."""
        return sum(len(sent.body) for sent in self.puts() if sent.status == 200)

    def url_requests(self) -> list[list[ChunkSpec]]:
        """The chunks named by each request for chunk URLs, in the order they were sent."""
        return [
            msgspec.json.decode(sent.body, type=ChunkUrlsRequest).chunks
            for sent in self.wire.sent
            if sent.method == "POST" and sent.path.endswith(CHUNK_URLS_STEP)
        ]

    def reports_answered(self) -> int:
        """Chunk reports the server has answered 200."""
        return sum(
            1
            for sent in self.wire.sent
            if sent.method == "POST" and sent.path.endswith(_CHUNKS_STEP) and sent.status == 200
        )

    # -- the worker ----------------------------------------------------------------------------

    async def work(self) -> None:
        """Lease jobs and finish each once all its chunks are stored; run until cancelled."""
        while True:
            lease = await self.server.lease(timeout=2.0, packs=True)
            if lease is not None:
                await self.finish(lease)

    async def finish(self, lease: Lease) -> None:
        """Read the leased job's bytes as they arrive, as ``fap work`` does, then complete the
        job with their analysis (or fail it)."""
        server, job = self.server, lease.job_id
        digest, size = hashlib.sha256(), 0
        stream = ChunkStream(
            session=self._processor,
            blobs=server.http,
            executor=self._pool,
            job_id=job,
            lease_token=lease.lease_token,
            chunk_count=lease.chunk_count,
            prefetch=2,
        )
        try:
            async for raw in stream.chunks():
                digest.update(raw)
                size += len(raw)
        finally:
            await stream.aclose()
        if self.fail_with is not None:
            failed = await server.call(
                "POST",
                JOB_FAIL.format(job_id=job),
                server.processor,
                FailRequest(lease_token=lease.lease_token, error=self.fail_with, retryable=False),
            )
            assert failed.status_code == 204, failed.text
            return
        result = {"name": lease.file.name, "size": size, "sha256": digest.hexdigest()}
        sealed = seal(json.dumps(result).encode(), lease.recipients)
        if not self.results_by_url:
            completion = JobCompletion(job_id=job, lease_token=lease.lease_token, result=sealed)
            answer = await server.ok(
                "POST",
                JOB_COMPLETIONS,
                server.processor,
                Completions(completions=[completion]),
                returns=CompletionOutcomes,
            )
            assert [outcome.status for outcome in answer.outcomes] == ["done"], answer
            self.completed.append(job)
            return
        sealed_sha256 = hashlib.sha256(sealed).hexdigest()
        target = await server.ok(
            "POST",
            JOB_RESULT_URL.format(job_id=job),
            server.processor,
            ResultUrlRequest(lease_token=lease.lease_token, size=len(sealed), sha256=sealed_sha256),
            returns=ResultUrl,
        )
        put = await server.http.put(target.url, content=sealed, headers=target.headers)
        assert put.status_code < 300, put.text
        response = await server.call(
            "POST",
            JOB_COMPLETE.format(job_id=job),
            server.processor,
            CompleteRequest(
                lease_token=lease.lease_token,
                result_size=len(sealed),
                result_sha256=sealed_sha256,
            ),
        )
        assert response.status_code == 204, response.text
        self.completed.append(job)

    def _blobs(self) -> LocalBlobStore:
        blobs = self.server.services.blobs
        assert isinstance(blobs, LocalBlobStore)
        return blobs


@asynccontextmanager
async def running_app(tmp_path: Path, home: Path, *, worker: bool = True) -> AsyncIterator[App]:
    """The app on a fresh data dir; with ``worker``, its worker runs until the block ends."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-worker")
    try:
        async with (
            running_server(tmp_path / "server-data") as server,
            ApiSession(
                BASE, server.processor, transport=httpx.ASGITransport(app=server.app)
            ) as processor,
        ):
            app = App(server, home, processor, pool)
            if not worker:
                yield app
                return
            working = asyncio.create_task(app.work())
            try:
                yield app
            finally:
                working.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await working  # raises what made the worker stop, if it did
    finally:
        pool.shutdown()
