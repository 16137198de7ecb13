"""Processing overlaps the upload: the engine reads a file's first bytes before its last chunk is sent.

The test is the client here, through the public API, so that it can hold the upload back until the
engine reports its first byte — no timing luck involved.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import httpx
import msgspec

from fap.api import Me, UploadCreate, UploadCreated, UploadInfo, UploadList
from fap.crypto import DeviceIdentity, open_sealed
from fap.transfer import encode_chunk
from tests.e2e.conftest import Pipeline
from tests.support.processes import wait_until
from tests.support.uploads import send_chunk

MiB = 1024 * 1024


def _json(response: httpx.Response) -> bytes:
    assert response.status_code < 300, response.text
    return response.content


def test_engine_reads_first_bytes_while_the_upload_goes_on(pipeline: Pipeline) -> None:

    pipeline.start_worker(analyzer="tests.e2e.analyzers:first_byte_clock")
    identity = DeviceIdentity.generate()
    data = os.urandom(4 * MiB + 123)
    chunk_size = MiB
    with pipeline.api() as api, httpx.Client(timeout=30) as blobs:
        msgspec.json.decode(_json(api.get("/v1/me")), type=Me)
        _json(api.post("/v1/devices", json={"name": "test", "recipient": identity.recipient}))
        create = UploadCreate(
            name="overlap.bin",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            chunk_size=chunk_size,
        )
        created = msgspec.json.decode(
            _json(api.post("/v1/uploads", content=msgspec.json.encode(create))), type=UploadCreated
        )
        upload_id = created.upload.id

        def send(seq: int) -> float:
            chunk = encode_chunk(seq, data[seq * chunk_size : (seq + 1) * chunk_size])
            send_chunk(api, blobs, upload_id, chunk)  # its URL, the PUT, the report
            return time.time()

        first_sent_at = send(0)
        signal = pipeline.signals / f"first-byte-{upload_id}"
        wait_until(signal.exists, 60, "the engine to read the first chunk")
        last_sent_at = max(send(seq) for seq in range(1, created.upload.chunk_count))

        def finished() -> bool:
            body = json.dumps({"ids": [upload_id], "timeout": 5})
            answer = msgspec.json.decode(
                _json(api.post("/v1/uploads/wait", content=body)), type=UploadList
            )
            return answer.uploads[0].state in ("done", "failed")

        wait_until(finished, 120, "the job to finish")
        info = msgspec.json.decode(_json(api.get(f"/v1/uploads/{upload_id}")), type=UploadInfo)
        assert info.state == "done", info.error
        url = json.loads(_json(api.get(f"/v1/uploads/{upload_id}/result")))["url"]
        result = json.loads(open_sealed(_json(blobs.get(url)), identity))

    assert result["bytes"] == len(data)
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    # The engine's clock and the client's are the same machine's: the first byte was analysed
    # after the first chunk was sent and before the last one was.
    assert first_sent_at <= result["first_byte_at"] < last_sent_at
