"""Processor routes: leasing, fencing, heartbeats, chunk lists, results recorded exactly once."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import msgspec
import pytest
from tests.unit.server.harness import CHUNK, Server, both_backends, error_body

from fap.api import (
    JOB_CHUNKS,
    JOB_COMPLETE,
    JOB_FAIL,
    JOB_HEARTBEAT,
    JOB_RESULT_URL,
    UPLOAD,
    ChunkList,
    Lease,
    ResultUrl,
    UploadInfo,
)

# The tests that exercise the store run on both backends; request validation needs only one.
SEALED = b"age-encryption.org/v1 pretend ciphertext"


async def store_result(server: Server, lease: Lease, data: bytes = SEALED) -> dict[str, Any]:
    """PUT a sealed result through the job's URL; answer the matching complete body."""
    url = await server.ok(
        "POST",
        JOB_RESULT_URL.format(job_id=lease.job_id),
        server.processor,
        {
            "lease_token": lease.lease_token,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        returns=ResultUrl,
    )
    assert (await server.http.put(url.url, content=data, headers=url.headers)).status_code == 200
    return {
        "lease_token": lease.lease_token,
        "result_size": len(data),
        "result_sha256": hashlib.sha256(data).hexdigest(),
    }


async def job_state(server: Server, job_id: str) -> UploadInfo:
    return await server.ok("GET", UPLOAD.format(upload_id=job_id), server.owner, returns=UploadInfo)


async def leased(server: Server, data: bytes = b"data") -> Lease:
    await server.upload(server.owner, data)
    lease = await server.lease()
    assert lease is not None
    return lease


@both_backends
async def test_a_lease_asked_again_after_a_lost_answer_is_the_same_lease(server: Server) -> None:
    await server.upload(server.owner, b"one job")
    first = await server.lease(request_id="ask-1")
    assert first is not None

    again = await server.lease(request_id="ask-1")
    other_worker = await server.lease(request_id="ask-1", worker_id="worker-2")
    next_ask = await server.lease(request_id="ask-2")

    assert again is not None
    assert (again.job_id, again.lease_token, again.attempt) == (first.job_id, first.lease_token, 1)
    assert other_worker is None  # a request id answers only the worker that sent it
    assert next_ask is None  # a new request is a new lease: nothing else is queued


@both_backends
async def test_nothing_queued_is_204(server: Server) -> None:
    assert await server.lease(timeout=0.0) is None


@both_backends
async def test_the_oldest_queued_job_of_a_run_engine_is_leased(server: Server) -> None:
    first = await server.upload(server.owner, b"1")
    other_engine = await server.upload(server.owner, b"2", engine="magic@2")
    third = await server.upload(server.owner, b"3")
    lease = await server.lease()
    assert lease is not None
    assert (lease.job_id, lease.attempt, lease.engine) == (first.id, 1, "size@1")
    assert (lease.lease_seconds, lease.heartbeat_seconds) == (30.0, 10.0)
    assert lease.file.name == "report.csv" and lease.file.size == 1
    second = await server.lease()
    assert second is not None and second.job_id == third.id
    assert await server.lease() is None
    magic = await server.lease(engines=["magic@2", "size@1"])
    assert magic is not None and magic.job_id == other_engine.id


async def test_a_lease_brings_the_first_stored_chunks_with_their_urls(server: Server) -> None:
    data = bytes(range(256)) * (CHUNK // 256) * 9 + b"tail"  # ten chunks, every one stored
    upload = await server.upload(server.owner, data)
    lease = await server.lease()
    assert lease is not None and lease.job_id == upload.id
    assert [chunk.seq for chunk in lease.chunks] == list(range(8))  # the rest are listed
    first = await server.http.get(lease.chunks[0].url)
    assert first.status_code == 200
    assert hashlib.sha256(first.content).hexdigest() == lease.chunks[0].sha256


@both_backends
async def test_concurrent_leases_never_hand_out_a_job_twice(server: Server) -> None:
    for i in range(5):
        await server.upload(server.owner, bytes([i]))
    leases = await asyncio.gather(*(server.lease(worker_id=f"w{i}") for i in range(12)))
    job_ids = [lease.job_id for lease in leases if lease is not None]
    assert len(job_ids) == 5
    assert len(set(job_ids)) == 5


@pytest.mark.parametrize(
    "body",
    [
        {"worker_id": "", "engines": ["size@1"]},
        {"worker_id": "w", "engines": []},
        {"worker_id": "w", "engines": ["nonsense"]},
        {"worker_id": "w", "engines": ["size@1"], "timeout": -1},
        {"worker_id": "w", "engines": "size@1"},
    ],
)
async def test_a_malformed_lease_request_is_400(server: Server, body: dict[str, Any]) -> None:
    response = await server.call("POST", "/v1/lease", server.processor, body)
    assert response.status_code == 400
    error_body(response)


@both_backends
async def test_a_heartbeat_extends_the_lease(server: Server) -> None:
    lease = await leased(server)
    path = JOB_HEARTBEAT.format(job_id=lease.job_id)
    for _ in range(3):
        server.clock.advance(20)
        response = await server.call(
            "POST", path, server.processor, {"lease_token": lease.lease_token}
        )
        assert response.status_code == 204
    assert await server.services.queue.sweep() == 0
    server.clock.advance(31)
    lapsed = await server.call("POST", path, server.processor, {"lease_token": lease.lease_token})
    assert lapsed.status_code == 409
    assert "lapsed" in error_body(lapsed).detail


async def job_calls(lease: Lease, token: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    token = token or lease.lease_token
    job = lease.job_id
    return [
        (JOB_HEARTBEAT.format(job_id=job), {"lease_token": token}),
        (JOB_CHUNKS.format(job_id=job), {"lease_token": token, "timeout": 0}),
        (
            JOB_RESULT_URL.format(job_id=job),
            {"lease_token": token, "size": 10, "sha256": "0" * 64},
        ),
        (
            JOB_COMPLETE.format(job_id=job),
            {"lease_token": token, "result_size": 10, "result_sha256": "0" * 64},
        ),
        (JOB_FAIL.format(job_id=job), {"lease_token": token, "error": "x"}),
    ]


@both_backends
async def test_a_lapsed_lease_is_409_everywhere_even_before_the_sweeper_runs(
    server: Server,
) -> None:
    lease = await leased(server)
    server.clock.advance(30.5)
    for path, body in await job_calls(lease):
        response = await server.call("POST", path, server.processor, body)
        assert response.status_code == 409, (path, response.text)
        assert "lapsed" in error_body(response).detail
    assert (await job_state(server, lease.job_id)).state == "leased"  # not swept yet


@both_backends
async def test_a_stale_lease_is_409_everywhere_once_the_job_is_leased_again(
    server: Server,
) -> None:
    stale = await leased(server)
    server.clock.advance(31)
    assert await server.services.queue.sweep() == 1
    current = await server.lease(worker_id="worker-2")
    assert current is not None and current.job_id == stale.job_id and current.attempt == 2
    for path, body in await job_calls(stale):
        response = await server.call("POST", path, server.processor, body)
        assert response.status_code == 409, (path, response.text)
        assert (
            "not job" in error_body(response).detail
            and "current lease" in error_body(response).detail
        )
    # The current holder is untouched by all that.
    assert (await job_state(server, current.job_id)).state == "leased"


@both_backends
async def test_an_unknown_token_or_job_is_refused(server: Server) -> None:
    lease = await leased(server)
    wrong = await server.call(
        "POST", JOB_HEARTBEAT.format(job_id=lease.job_id), server.processor, {"lease_token": "x"}
    )
    assert wrong.status_code == 409
    missing = await server.call(
        "POST", JOB_HEARTBEAT.format(job_id="nope"), server.processor, {"lease_token": "x"}
    )
    assert missing.status_code == 404
    error_body(missing)


@both_backends
async def test_chunks_are_listed_after_a_sequence_number_with_presigned_gets(
    server: Server,
) -> None:
    data = bytes(range(256)) * (3 * CHUNK // 256)
    lease = await leased(server, data)
    path = JOB_CHUNKS.format(job_id=lease.job_id)
    everything = await server.ok(
        "POST", path, server.processor, {"lease_token": lease.lease_token}, returns=ChunkList
    )
    assert everything.chunk_count == 3
    assert [chunk.seq for chunk in everything.chunks] == [0, 1, 2]
    assert (await server.http.get(everything.chunks[1].url)).status_code == 200
    later = await server.ok(
        "POST",
        path,
        server.processor,
        {"lease_token": lease.lease_token, "after": 1},
        returns=ChunkList,
    )
    assert [chunk.seq for chunk in later.chunks] == [2]
    done = await server.ok(
        "POST",
        path,
        server.processor,
        {"lease_token": lease.lease_token, "after": 2, "timeout": 30},
        returns=ChunkList,
    )
    assert done.chunks == []  # nothing more will come: answered at once, not after 30 s


@both_backends
async def test_completion_checks_the_stored_result(server: Server) -> None:
    lease = await leased(server)
    path = JOB_COMPLETE.format(job_id=lease.job_id)
    body = {
        "lease_token": lease.lease_token,
        "result_size": len(SEALED),
        "result_sha256": hashlib.sha256(SEALED).hexdigest(),
    }
    nothing = await server.call("POST", path, server.processor, body)
    assert nothing.status_code == 400
    assert "PUT it" in error_body(nothing).detail
    await store_result(server, lease)
    short = await server.call("POST", path, server.processor, {**body, "result_size": 3})
    assert short.status_code == 400
    assert "holds" in error_body(short).detail
    assert (await server.call("POST", path, server.processor, body)).status_code == 204


@both_backends
async def test_a_result_is_recorded_exactly_once(server: Server) -> None:
    stale = await leased(server)
    stale_body = await store_result(server, stale)
    server.clock.advance(31)
    await server.services.queue.sweep()
    current = await server.lease(worker_id="worker-2")
    assert current is not None
    current_body = await store_result(server, current, SEALED + b"!")
    complete = JOB_COMPLETE.format(job_id=current.job_id)

    late = await server.call("POST", complete, server.processor, stale_body)
    assert late.status_code == 409
    assert (await server.call("POST", complete, server.processor, current_body)).status_code == 204
    finished = await job_state(server, current.job_id)
    assert (finished.state, finished.attempts) == ("done", 2)

    # The same completion again (its answer was lost on the way) is answered alike, and changes
    # nothing; any other is refused.
    assert (await server.call("POST", complete, server.processor, current_body)).status_code == 204
    assert (await job_state(server, current.job_id)).finished_at == finished.finished_at
    other = {**current_body, "result_sha256": "1" * 64}
    assert (await server.call("POST", complete, server.processor, other)).status_code == 409
    assert (await server.call("POST", complete, server.processor, stale_body)).status_code == 409


@both_backends
async def test_completion_waits_for_every_chunk(server: Server) -> None:
    data = b"p" * (2 * CHUNK)
    created = await server.create_upload(server.owner, data)
    await server.send_chunk(server.owner, created, data, 0)
    lease = await server.lease()
    assert lease is not None
    body = await store_result(server, lease)
    early = await server.call(
        "POST", JOB_COMPLETE.format(job_id=lease.job_id), server.processor, body
    )
    assert early.status_code == 409
    assert "chunks" in error_body(early).detail


@both_backends
async def test_a_retryable_failure_requeues_until_the_attempts_are_spent(server: Server) -> None:
    info = await server.upload(server.owner, b"flaky")
    for attempt in (1, 2, 3):
        lease = await server.lease()
        assert lease is not None and lease.attempt == attempt
        response = await server.call(
            "POST",
            JOB_FAIL.format(job_id=info.id),
            server.processor,
            {"lease_token": lease.lease_token, "error": f"The engine crashed ({attempt})."},
        )
        assert response.status_code == 204
    final = await job_state(server, info.id)
    assert (final.state, final.attempts, final.error) == ("failed", 3, "The engine crashed (3).")
    assert await server.lease() is None


@both_backends
async def test_a_permanent_failure_fails_at_once(server: Server) -> None:
    lease = await leased(server)
    await server.call(
        "POST",
        JOB_FAIL.format(job_id=lease.job_id),
        server.processor,
        {"lease_token": lease.lease_token, "error": "Not a CSV file.", "retryable": False},
    )
    final = await job_state(server, lease.job_id)
    assert (final.state, final.error) == ("failed", "Not a CSV file.")
    assert final.finished_at is not None


@pytest.mark.parametrize(("size", "status"), [(-1, 400), (2 * 1024**3, 413)])
async def test_a_result_url_is_bounded(server: Server, size: int, status: int) -> None:
    lease = await leased(server)
    response = await server.call(
        "POST",
        JOB_RESULT_URL.format(job_id=lease.job_id),
        server.processor,
        {"lease_token": lease.lease_token, "size": size, "sha256": "0" * 64},
    )
    assert response.status_code == status
    error_body(response)


async def test_the_result_url_refuses_more_than_its_size(server: Server) -> None:
    lease = await leased(server)
    url = await server.ok(
        "POST",
        JOB_RESULT_URL.format(job_id=lease.job_id),
        server.processor,
        {
            "lease_token": lease.lease_token,
            "size": 4,
            "sha256": hashlib.sha256(b"1234").hexdigest(),
        },
        returns=ResultUrl,
    )
    response = await server.http.put(url.url, content=b"12345")
    assert response.status_code == 400
    assert msgspec.json.decode(response.content)["status_code"] == 400
