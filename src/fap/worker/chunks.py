"""One job's file, chunk by chunk in order: listed by long-poll, fetched ahead, checked, decoded.

Chunks may be stored out of order (the uploader has several PUTs in flight), so the listing asks
for chunks after the last *contiguous* one it knows, and the reader waits for each next chunk in
turn. The lease brings the first chunks stored: a job whose chunks it brought all (a small file's)
is never listed. Up to ``prefetch`` chunks are fetched and decoded at once, the decoding (checksum
and zstd) on the worker's thread pool, while the engine reads the ones before them.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Sequence
from concurrent.futures import Executor

import httpx

from fap.api import JOB_CHUNKS, ApiSession, ChunkList, ChunkListRequest, ChunkRef
from fap.backoff import Backoff
from fap.errors import ServerError
from fap.transfer import Retries, decode_chunk, get_bytes

__all__ = ("ChunkStream",)

# How long the server may hold a chunk listing open while it waits for the uploader.
LIST_TIMEOUT = 20.0
# When the listing answers only chunks already known (a later one was stored before the next one
# needed), wait a little before asking again rather than spin; the uploader is mid-PUT.
OUT_OF_ORDER_PAUSE = Backoff(first=0.2, cap=2.0, jitter=False)
# The object store's retries when the caller names none: a few attempts (a job names its own).
_BOUNDED = Retries()


class ChunkStream:
    def __init__(
        self,
        *,
        session: ApiSession,
        blobs: httpx.AsyncClient,
        executor: Executor,
        job_id: str,
        lease_token: str,
        chunk_count: int,
        prefetch: int,
        retries: Retries = _BOUNDED,
        listed: Sequence[ChunkRef] = (),
    ) -> None:
        """``listed``: chunks known already (those the lease brought)."""
        self._session = session
        self._retries = retries
        self._blobs = blobs
        self._executor = executor
        self._path = JOB_CHUNKS.format(job_id=job_id)
        self._lease_token = lease_token
        self._count = chunk_count
        self._prefetch = max(1, prefetch)
        self._known: set[int] = set()  # every seq listed so far
        self._refs: dict[int, ChunkRef] = {}  # listed, not fetched yet
        for chunk in listed:
            if 0 <= chunk.seq < chunk_count:
                self._known.add(chunk.seq)
                self._refs[chunk.seq] = chunk
        self._fetches: dict[int, asyncio.Task[bytes]] = {}
        self._listed = asyncio.Event()
        self._lister: asyncio.Task[None] | None = None

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The original bytes of every chunk, in order."""
        if len(self._known) < self._count and self._lister is None:
            self._lister = asyncio.create_task(self._list())
        for seq in range(self._count):
            while seq not in self._known:
                await self._wait_listed()
            self._start_fetches(seq)
            yield await self._fetches.pop(seq)

    async def aclose(self) -> None:
        """Stop listing and fetching; safe to call at any point, and more than once."""
        tasks = [*self._fetches.values(), *([self._lister] if self._lister else [])]
        self._fetches.clear()
        for task in tasks:
            task.cancel()
        # Collect the outcomes so no failure is left for the loop to report as never retrieved.
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _wait_listed(self) -> None:
        assert self._lister is not None
        if self._lister.done():
            self._lister.result()  # the listing failed: raise why
            raise ServerError("The server stopped listing the job's chunks before the last one.")
        self._listed.clear()
        await self._listed.wait()

    def _start_fetches(self, seq: int) -> None:
        for ahead in range(seq, min(seq + self._prefetch, self._count)):
            if ahead in self._refs:
                self._fetches[ahead] = asyncio.create_task(self._fetch(self._refs.pop(ahead)))

    async def _list(self) -> None:
        after = -1
        while after + 1 in self._known:
            after += 1
        idle = 0
        try:
            while after + 1 < self._count:
                answer = await self._ask(after, LIST_TIMEOUT)
                new = [
                    c
                    for c in answer.chunks
                    if 0 <= c.seq < self._count and c.seq not in self._known
                ]
                for chunk in new:
                    self._known.add(chunk.seq)
                    self._refs[chunk.seq] = chunk
                while after + 1 in self._known:
                    after += 1
                if new:
                    idle = 0
                    self._listed.set()
                elif answer.chunks:
                    idle += 1
                    await asyncio.sleep(OUT_OF_ORDER_PAUSE.delay(idle))
        finally:
            self._listed.set()

    async def _ask(self, after: int, timeout: float) -> ChunkList:
        request = ChunkListRequest(lease_token=self._lease_token, after=after, timeout=timeout)
        return await self._session.call("POST", self._path, request, returns=ChunkList)

    async def _fetch(self, chunk: ChunkRef) -> bytes:
        try:
            data = await self._get(chunk)
        except ServerError as error:
            if error.status_code not in (401, 403):
                raise
            # Presigned URLs expire; a chunk listed long before it was needed gets a fresh one.
            chunk = await self._fresh(chunk.seq)
            data = await self._get(chunk)
        decode = functools.partial(
            decode_chunk, data, codec=chunk.codec, raw_size=chunk.raw_size, sha256=chunk.sha256
        )
        return await asyncio.get_running_loop().run_in_executor(self._executor, decode)

    async def _get(self, chunk: ChunkRef) -> bytes:
        """The chunk's stored bytes: its own object, or its range of the pack it lies in."""
        where = None if chunk.pack_offset is None else (chunk.pack_offset, chunk.stored_size)
        return await get_bytes(self._blobs, chunk.url, retries=self._retries, byte_range=where)

    async def _fresh(self, seq: int) -> ChunkRef:
        answer = await self._ask(seq - 1, 0.0)
        for chunk in answer.chunks:
            if chunk.seq == seq:
                return chunk
        raise ServerError(f"The server no longer lists chunk {seq} of the job.")
