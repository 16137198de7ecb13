"""The client's side of the upload protocol in a few blocking calls, for tests that speak the API
themselves: ask for a chunk's URL once it is encoded, PUT it with the signed headers, report it."""

from __future__ import annotations

import httpx
import msgspec

from fap.api import CHUNK_URLS, CHUNKS, ChunkReport, ChunkSpec, ChunkUrl, ChunkUrlsRequest
from fap.transfer import EncodedChunk

__all__ = ("chunk_url", "report_chunk", "send_chunk")


def chunk_url(api: httpx.Client, upload_id: str, chunk: EncodedChunk) -> ChunkUrl:
    """The presigned PUT for ``chunk``, signed for its size and SHA-256."""
    spec = ChunkSpec(seq=chunk.seq, size=chunk.stored_size, sha256=chunk.sha256)
    answer = api.post(
        CHUNK_URLS.format(upload_id=upload_id),
        content=msgspec.json.encode(ChunkUrlsRequest(chunks=[spec])),
    )
    assert answer.status_code == 200, answer.text
    (url,) = msgspec.json.decode(answer.content, type=list[ChunkUrl])
    return url


def report_chunk(api: httpx.Client, upload_id: str, chunk: EncodedChunk) -> httpx.Response:
    report = ChunkReport(
        seq=chunk.seq,
        raw_size=chunk.raw_size,
        stored_size=chunk.stored_size,
        codec="zstd" if chunk.codec == "zstd" else "raw",
        sha256=chunk.sha256,
    )
    return api.post(CHUNKS.format(upload_id=upload_id), content=msgspec.json.encode(report))


def send_chunk(
    api: httpx.Client, blobs: httpx.Client, upload_id: str, chunk: EncodedChunk
) -> httpx.Response:
    """Store ``chunk`` through its presigned URL and report it; answer the report's response."""
    url = chunk_url(api, upload_id, chunk)
    put = blobs.put(url.url, content=chunk.data, headers=url.headers)
    assert put.status_code < 300, put.text
    answer = report_chunk(api, upload_id, chunk)
    assert answer.status_code < 300, answer.text
    return answer
