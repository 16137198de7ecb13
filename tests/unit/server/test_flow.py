"""One upload from creation to result, through every route, as client and worker use them."""

from __future__ import annotations

import hashlib
import os

from tests.unit.server.harness import CHUNK, Server, both_backends

from fap.api import (
    JOB_CHUNKS,
    JOB_COMPLETE,
    JOB_RESULT_URL,
    UPLOAD,
    UPLOAD_RESULT,
    ChunkList,
    ChunkListRequest,
    CompleteRequest,
    ResultUrl,
    ResultUrlRequest,
    UploadInfo,
)
from fap.crypto import open_sealed, seal
from fap.transfer import decode_chunk

pytestmark = both_backends


async def test_an_upload_is_leased_streamed_sealed_and_fetched(server: Server) -> None:
    data = os.urandom(CHUNK) + b"text " * CHUNK
    info = await server.upload(server.owner, data)
    assert info.state == "queued"
    assert info.chunks_stored == [0, 1, 2, 3, 4, 5]

    lease = await server.lease()
    assert lease is not None
    assert lease.job_id == info.id
    assert lease.file.sha256 == hashlib.sha256(data).hexdigest()
    assert lease.recipients == [server.devices[server.owner].recipient]

    listed = await server.ok(
        "POST",
        JOB_CHUNKS.format(job_id=lease.job_id),
        server.processor,
        ChunkListRequest(lease_token=lease.lease_token),
        returns=ChunkList,
    )
    raw = b""
    for ref in listed.chunks:
        stored = (await server.http.get(ref.url)).content
        raw += decode_chunk(stored, codec=ref.codec, raw_size=ref.raw_size, sha256=ref.sha256)
    assert raw == data

    sealed = seal(b'{"size": 1}', lease.recipients)
    put_url = await server.ok(
        "POST",
        JOB_RESULT_URL.format(job_id=lease.job_id),
        server.processor,
        ResultUrlRequest(
            lease_token=lease.lease_token,
            size=len(sealed),
            sha256=hashlib.sha256(sealed).hexdigest(),
        ),
        returns=ResultUrl,
    )
    assert (
        await server.http.put(put_url.url, content=sealed, headers=put_url.headers)
    ).status_code == 200
    done = await server.call(
        "POST",
        JOB_COMPLETE.format(job_id=lease.job_id),
        server.processor,
        CompleteRequest(
            lease_token=lease.lease_token,
            result_size=len(sealed),
            result_sha256=hashlib.sha256(sealed).hexdigest(),
        ),
    )
    assert done.status_code == 204, done.text

    final = await server.ok(
        "GET", UPLOAD.format(upload_id=info.id), server.owner, returns=UploadInfo
    )
    assert final.state == "done"
    result = await server.ok(
        "GET", UPLOAD_RESULT.format(upload_id=info.id), server.owner, returns=ResultUrl
    )
    ciphertext = (await server.http.get(result.url)).content
    assert open_sealed(ciphertext, server.devices[server.owner]) == b'{"size": 1}'
