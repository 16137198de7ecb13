"""Presigned PUT URLs for one upload's encoded chunks, asked for in batches."""

from __future__ import annotations

import asyncio

from fap.api import CHUNK_URLS, MAX_CHUNK_URLS, ApiSession, ChunkSpec, ChunkUrl, ChunkUrlsRequest
from fap.errors import ServerError
from fap.transfer import EncodedChunk

__all__ = ("ChunkUrlBook",)


class ChunkUrlBook:
    """Presigned PUT URLs for one upload's encoded chunks, asked for in batches.

    A URL is signed for the exact size and SHA-256 of the bytes it stores, so a chunk asks for
    its URL once it is encoded. One request is out at a time: every chunk encoded meanwhile
    waits for it and goes in the next request, so round trips stay few while the cores are busy.
    A batch holds at most ``MAX_CHUNK_URLS`` chunks, the most the server signs at once; more
    (many PUTs in flight) go in several requests, one after another.
    """

    def __init__(self, session: ApiSession, upload_id: str) -> None:
        self._session = session
        self._path = CHUNK_URLS.format(upload_id=upload_id)
        self._wanted: dict[int, ChunkSpec] = {}
        self._urls: dict[int, ChunkUrl] = {}
        self._lock = asyncio.Lock()

    async def take(self, chunk: EncodedChunk) -> ChunkUrl:
        spec = _spec(chunk)
        self._wanted[chunk.seq] = spec
        async with self._lock:
            if chunk.seq not in self._urls:
                # Everything encoded while the previous request was out, this chunk among them.
                batch = {**self._wanted, chunk.seq: spec}
                self._wanted.clear()
                await self._fetch(list(batch.values()))
            return self._urls.pop(chunk.seq)

    async def renew(self, chunk: EncodedChunk) -> ChunkUrl:
        """A new URL for a chunk whose URL expired before its PUT."""
        async with self._lock:
            await self._fetch([_spec(chunk)])
            return self._urls.pop(chunk.seq)

    async def _fetch(self, specs: list[ChunkSpec]) -> None:
        for start in range(0, len(specs), MAX_CHUNK_URLS):
            batch = specs[start : start + MAX_CHUNK_URLS]
            urls = await self._session.call(
                "POST", self._path, ChunkUrlsRequest(chunks=batch), returns=list[ChunkUrl]
            )
            self._urls.update((url.seq, url) for url in urls)
        if missing := {spec.seq for spec in specs} - self._urls.keys():
            raise ServerError(f"The server gave no upload URL for chunk {min(missing)}.")


def _spec(chunk: EncodedChunk) -> ChunkSpec:
    return ChunkSpec(seq=chunk.seq, size=chunk.stored_size, sha256=chunk.sha256)
