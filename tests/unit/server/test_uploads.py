"""Client routes: creating uploads, their chunk URLs and chunk reports, listing, waiting, results."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import pytest
from tests.unit.server.harness import CHUNK, Server, both_backends, error_body

from fap.api import (
    CHUNK_URLS,
    CHUNKS,
    UPLOAD,
    UPLOAD_RESULT,
    UPLOADS,
    UPLOADS_WAIT,
    ChunkStored,
    ChunkUrl,
    UploadCreated,
    UploadInfo,
    UploadList,
)
from fap.transfer import encode_chunk

GiB = 1024**3
SHA = "ab" * 32


def create_body(**fields: Any) -> dict[str, Any]:
    return {"name": "report.csv", "size": 10, "sha256": SHA, "chunk_size": CHUNK, **fields}


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"size": -1}, 400, "0 or more"),
        ({"sha256": "abc"}, 400, "64 hexadecimal"),
        ({"sha256": "zz" * 32}, 400, "64 hexadecimal"),
        ({"name": ""}, 400, "must not be empty"),
        ({"name": "   "}, 400, "must not be empty"),
        ({"name": "/"}, 400, "not a file name"),
        ({"name": "a\x00b"}, 400, "NUL"),
        ({"name": "n" * 1025}, 400, "at most 1024"),
        ({"engine": "size"}, 400, "name@version"),
        ({"engine": "size@"}, 400, "name@version"),
        ({"engine": "bad engine@1"}, 400, "name@version"),
        ({"chunk_size": 1024}, 400, "chunk size"),
        ({"chunk_size": 512 * 1024 * 1024}, 400, "chunk size"),
        ({"size": 65 * GiB}, 413, "limit"),
    ],
)
async def test_create_refuses_what_cannot_be_uploaded(
    server: Server, fields: dict[str, Any], status: int, words: str
) -> None:
    await server.register_device(server.owner)
    response = await server.call("POST", UPLOADS, server.owner, create_body(**fields))
    assert response.status_code == status, response.text
    assert words in error_body(response).detail


@both_backends
async def test_a_create_sent_again_after_a_lost_answer_makes_no_second_upload(
    server: Server,
) -> None:
    await server.register_device(server.owner)
    body = create_body(request_id="retry-of-one-request")

    first = await server.call("POST", UPLOADS, server.owner, body)
    again = await server.call("POST", UPLOADS, server.owner, body)

    assert first.status_code == again.status_code == 201
    upload = msgspec.json.decode(first.content, type=UploadCreated).upload
    assert msgspec.json.decode(again.content, type=UploadCreated).upload.id == upload.id
    listed = msgspec.json.decode(
        (await server.call("GET", UPLOADS, server.owner)).content, type=UploadList
    )
    assert [u.id for u in listed.uploads] == [upload.id]


@both_backends
async def test_a_request_id_names_one_upload_only(server: Server) -> None:
    await server.register_device(server.owner)
    await server.call("POST", UPLOADS, server.owner, create_body(request_id="once"))

    other = await server.call(
        "POST", UPLOADS, server.owner, create_body(request_id="once", size=11)
    )

    assert other.status_code == 409
    assert "request_id was used for another upload" in error_body(other).detail


async def test_create_needs_a_registered_device(server: Server) -> None:
    response = await server.call("POST", UPLOADS, server.owner, create_body())
    assert response.status_code == 400
    assert "Register a device key" in error_body(response).detail


async def test_create_answers_201_with_the_upload_and_no_urls_unless_asked(server: Server) -> None:
    await server.register_device(server.owner)
    size = 100 * CHUNK + 10
    response = await server.call("POST", UPLOADS, server.owner, create_body(size=size))
    assert response.status_code == 201
    created = msgspec.json.decode(response.content, type=UploadCreated)
    assert created.upload.chunk_count == 101
    assert created.upload.state == "pending"
    assert created.upload.engine == "size@1"
    # URLs are signed for encoded bytes, so they are asked for once a chunk is encoded.
    assert created.chunk_urls == []


async def test_create_signs_the_chunks_it_names_and_a_create_sent_again_only_the_missing(
    server: Server,
) -> None:
    # A small file's one chunk, encoded before the upload is made: its URL comes with the answer.
    await server.register_device(server.owner)
    data = b"a small file\n" * 100
    chunk = encode_chunk(0, data)
    body = create_body(
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        request_id="small-1",
        chunks=[{"seq": 0, "size": chunk.stored_size, "sha256": chunk.sha256}],
    )
    created = await server.ok("POST", UPLOADS, server.owner, body, returns=UploadCreated)
    [url] = created.chunk_urls
    assert (url.seq, url.size, url.headers["Content-Length"]) == (
        0,
        chunk.stored_size,
        str(chunk.stored_size),
    )
    put = await server.http.put(url.url, content=chunk.data, headers=url.headers)
    assert put.status_code == 200, put.text
    path = CHUNKS.format(upload_id=created.upload.id)
    report = {
        "seq": 0,
        "raw_size": chunk.raw_size,
        "stored_size": chunk.stored_size,
        "codec": chunk.codec,
        "sha256": chunk.sha256,
    }
    stored = await server.ok("POST", path, server.owner, report, returns=ChunkStored)
    assert (stored.stored, stored.state) == (1, "queued")

    again = await server.ok("POST", UPLOADS, server.owner, body, returns=UploadCreated)
    assert again.upload.id == created.upload.id
    assert again.chunk_urls == []  # stored already: nothing to PUT


async def test_an_empty_file_has_no_chunks_and_is_queued_at_once(server: Server) -> None:
    created = await server.create_upload(server.owner, b"", engine="size@1")
    assert (created.upload.chunk_count, created.upload.state) == (0, "queued")
    lease = await server.lease()
    assert lease is not None and lease.job_id == created.upload.id and lease.chunk_count == 0


async def test_chunk_urls_are_signed_for_the_exact_size_and_checksum_of_each_chunk(
    server: Server,
) -> None:
    data = bytes(range(256)) * (CHUNK // 256) * 3 + b"tail"
    created = await server.create_upload(server.owner, data)
    last = encode_chunk(3, b"tail")
    middle = encode_chunk(1, data[CHUNK : 2 * CHUNK])
    urls = await server.ok(
        "POST",
        CHUNK_URLS.format(upload_id=created.upload.id),
        server.owner,
        {
            "chunks": [
                {"seq": 3, "size": last.stored_size, "sha256": last.sha256},
                {"seq": 1, "size": middle.stored_size, "sha256": middle.sha256.upper()},
            ]
        },
        returns=list[ChunkUrl],
    )
    assert [(url.seq, url.size) for url in urls] == [(3, 4), (1, middle.stored_size)]
    assert [url.headers["Content-Length"] for url in urls] == ["4", str(middle.stored_size)]
    assert middle.sha256 in urls[1].url  # normalised to lower case, as signed
    put = await server.http.put(urls[1].url, content=middle.data, headers=urls[1].headers)
    assert put.status_code == 200, put.text
    corrupt = b"\x00" + last.data[1:] if last.data[0] else b"\x01" + last.data[1:]
    refused = await server.http.put(urls[0].url, content=corrupt, headers=urls[0].headers)
    assert refused.status_code == 400
    assert "SHA-256" in error_body(refused).detail


async def test_the_first_stored_chunk_queues_the_job(server: Server) -> None:
    data = b"a" * (2 * CHUNK)
    created = await server.create_upload(server.owner, data)
    assert await server.lease() is None  # pending: nothing stored yet
    first = await server.send_chunk(server.owner, created, data, 1)
    answer = msgspec.json.decode(first.content, type=ChunkStored)
    assert (answer.state, answer.seq, answer.stored, answer.chunk_count) == ("queued", 1, 1, 2)
    assert await server.lease() is not None


async def test_a_chunk_report_is_checked_against_the_stored_blob(server: Server) -> None:
    data = bytes(range(256)) * 300
    created = await server.create_upload(server.owner, data)
    path = CHUNKS.format(upload_id=created.upload.id)
    encoded = encode_chunk(0, data[:CHUNK])
    report = {
        "seq": 0,
        "raw_size": encoded.raw_size,
        "stored_size": encoded.stored_size,
        "codec": encoded.codec,
        "sha256": encoded.sha256,
    }
    missing = await server.call("POST", path, server.owner, report)
    assert missing.status_code == 400
    assert "PUT it" in error_body(missing).detail

    url = await server.chunk_url(server.owner, created.upload.id, encoded)
    await server.http.put(url.url, content=encoded.data, headers=url.headers)
    wrong_size = await server.call("POST", path, server.owner, {**report, "stored_size": 5})
    assert wrong_size.status_code == 400
    assert "holds" in error_body(wrong_size).detail
    wrong_raw = await server.call("POST", path, server.owner, {**report, "raw_size": 5})
    assert wrong_raw.status_code == 400
    beyond = await server.call("POST", path, server.owner, {**report, "seq": 9})
    assert beyond.status_code == 400
    assert "no chunk 9" in error_body(beyond).detail

    assert (await server.call("POST", path, server.owner, report)).status_code == 200
    again = await server.call("POST", path, server.owner, report)
    assert again.status_code == 200  # the same report again is harmless
    other = await server.call("POST", path, server.owner, {**report, "sha256": "0" * 64})
    assert other.status_code == 409
    error_body(other)


def spec(seq: int, size: int = 10, sha256: str = SHA) -> dict[str, Any]:
    return {"seq": seq, "size": size, "sha256": sha256}


async def test_chunk_urls_refuse_a_stored_chunk_and_a_chunk_out_of_range(server: Server) -> None:
    data = b"z" * (CHUNK + 1)
    created = await server.create_upload(server.owner, data)
    await server.send_chunk(server.owner, created, data, 0)
    path = CHUNK_URLS.format(upload_id=created.upload.id)
    stored = await server.call("POST", path, server.owner, {"chunks": [spec(1, 1), spec(0)]})
    assert stored.status_code == 409
    assert "already stored" in error_body(stored).detail
    out = await server.call("POST", path, server.owner, {"chunks": [spec(2)]})
    assert out.status_code == 400
    negative = await server.call("POST", path, server.owner, {"chunks": [spec(-1)]})
    assert negative.status_code == 400


@pytest.mark.parametrize(
    ("chunks", "words"),
    [
        ([spec(0, size=CHUNK + 1)], "never larger than its raw bytes"),
        ([spec(1, size=2)], "never larger than its raw bytes"),  # the last chunk holds 1 byte
        ([spec(0, size=-1)], "never larger"),
        ([spec(0, sha256="abc")], "64 hexadecimal"),
        ([spec(0), spec(0)], "more than once"),
        ([spec(0)] * 1025, "at most 1024"),
    ],
)
async def test_chunk_urls_refuse_a_size_or_checksum_no_chunk_can_have(
    server: Server, chunks: list[dict[str, Any]], words: str
) -> None:
    created = await server.create_upload(server.owner, b"z" * (CHUNK + 1))
    path = CHUNK_URLS.format(upload_id=created.upload.id)
    response = await server.call("POST", path, server.owner, {"chunks": chunks})
    assert response.status_code == 400
    assert words in error_body(response).detail


@pytest.mark.parametrize(
    ("chunks", "words"),
    [
        ([spec(0, size=CHUNK + 1)], "never larger than its raw bytes"),
        ([spec(1, size=2)], "never larger than its raw bytes"),
        ([spec(2)], "The file has chunks 0 to 1; there is no chunk 2."),
        ([spec(0, sha256="abc")], "64 hexadecimal"),
        ([spec(0), spec(0)], "more than once"),
        ([spec(0)] * 1025, "at most 1024"),
    ],
)
async def test_a_create_naming_a_chunk_no_chunk_can_be_is_refused_and_makes_nothing(
    server: Server, chunks: list[dict[str, Any]], words: str
) -> None:
    await server.register_device(server.owner)
    body = create_body(size=CHUNK + 1, chunks=chunks)
    response = await server.call("POST", UPLOADS, server.owner, body)
    assert response.status_code == 400
    assert words in error_body(response).detail
    listed = await server.ok("GET", UPLOADS, server.owner, returns=UploadList)
    assert listed.uploads == []


async def test_get_shows_the_chunks_stored_so_far_for_resuming(server: Server) -> None:
    data = b"q" * (3 * CHUNK)
    created = await server.create_upload(server.owner, data)
    await server.send_chunk(server.owner, created, data, 2)
    await server.send_chunk(server.owner, created, data, 0)
    info = await server.ok(
        "GET", UPLOAD.format(upload_id=created.upload.id), server.owner, returns=UploadInfo
    )
    assert info.chunks_stored == [0, 2]
    assert info.sha256 == hashlib.sha256(data).hexdigest()


async def test_list_shows_the_callers_uploads_newest_first(server: Server) -> None:
    ids = [
        (await server.create_upload(server.owner, b"x", name=f"f{i}")).upload.id for i in range(3)
    ]
    colleague = await server.new_user(None, "colin", "member")
    await server.create_upload(colleague, b"theirs")
    listed = await server.ok("GET", UPLOADS, server.owner, returns=UploadList)
    assert [u.id for u in listed.uploads] == ids[::-1]
    limited = await server.ok("GET", UPLOADS, server.owner, returns=UploadList, limit=2)
    assert [u.id for u in limited.uploads] == ids[:0:-1]
    for bad in ("0", "5000", "abc"):
        response = await server.call("GET", UPLOADS, server.owner, limit=bad)
        assert response.status_code == 400
        assert "limit" in error_body(response).detail


async def test_wait_answers_at_once_when_one_is_finished_else_after_the_timeout(
    server: Server,
) -> None:
    open_upload = await server.upload(server.owner, b"one")
    other = await server.upload(server.owner, b"two")
    lease = await server.lease()
    assert lease is not None and lease.job_id == open_upload.id
    await server.call(
        "POST",
        f"/v1/jobs/{lease.job_id}/fail",
        server.processor,
        {"lease_token": lease.lease_token, "error": "bad input", "retryable": False},
    )
    waited = await server.ok(
        "POST",
        UPLOADS_WAIT,
        server.owner,
        {"ids": [other.id, open_upload.id], "timeout": 30},
        returns=UploadList,
    )
    assert [(u.id, u.state) for u in waited.uploads] == [
        (other.id, "queued"),
        (open_upload.id, "failed"),
    ]
    assert waited.uploads[1].error == "bad input"
    quiet = await server.ok(
        "POST", UPLOADS_WAIT, server.owner, {"ids": [other.id], "timeout": 0.05}, returns=UploadList
    )
    assert [u.state for u in quiet.uploads] == ["queued"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"ids": []}, 400),
        ({"ids": ["nope"]}, 404),
        ({"ids": ["x"], "timeout": -1}, 400),
    ],
)
async def test_wait_refuses_bad_requests(server: Server, body: dict[str, Any], status: int) -> None:
    response = await server.call("POST", UPLOADS_WAIT, server.owner, body)
    assert response.status_code == status
    error_body(response)


async def test_the_result_is_409_until_done(server: Server) -> None:
    info = await server.upload(server.owner, b"data")
    pending = await server.call("GET", UPLOAD_RESULT.format(upload_id=info.id), server.owner)
    assert pending.status_code == 409
    assert "not done yet" in error_body(pending).detail
    lease = await server.lease()
    assert lease is not None
    await server.call(
        "POST",
        f"/v1/jobs/{lease.job_id}/fail",
        server.processor,
        {"lease_token": lease.lease_token, "error": "The engine crashed.", "retryable": False},
    )
    failed = await server.call("GET", UPLOAD_RESULT.format(upload_id=info.id), server.owner)
    assert failed.status_code == 409
    assert "The engine crashed." in error_body(failed).detail


async def test_no_chunk_is_taken_once_an_upload_failed(server: Server) -> None:
    data = b"m" * (2 * CHUNK)
    created = await server.create_upload(server.owner, data)
    await server.send_chunk(server.owner, created, data, 0)
    lease = await server.lease()
    assert lease is not None
    await server.call(
        "POST",
        f"/v1/jobs/{lease.job_id}/fail",
        server.processor,
        {"lease_token": lease.lease_token, "error": "no", "retryable": False},
    )
    late = encode_chunk(1, data[CHUNK:])
    path = CHUNK_URLS.format(upload_id=created.upload.id)
    body = {"chunks": [spec(1, late.stored_size, late.sha256)]}
    refused = await server.call("POST", path, server.owner, body)
    assert refused.status_code == 409
    assert "failed" in error_body(refused).detail
