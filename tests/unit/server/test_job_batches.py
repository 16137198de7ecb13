"""Small jobs by the handful: a lease of several jobs in one request, and completions that carry
their sealed results, recorded in one transaction and each answered on its own."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import pytest
from tests.unit.server.harness import CHUNK, Server, both_backends, error_body

from fap.api import (
    JOB_COMPLETIONS,
    LEASES,
    MAX_COMPLETIONS,
    MAX_INLINE_RESULT,
    MAX_LEASES,
    UPLOAD,
    UPLOAD_RESULT,
    UPLOADS_WAIT,
    CompletionOutcome,
    CompletionOutcomes,
    Lease,
    Leases,
    LeasesRequest,
    ResultUrl,
    SealedResult,
    UploadInfo,
    UploadList,
    UploadWait,
)
from fap.server.blobs import result_key
from fap.server.routes import uploads as uploads_routes

SEALED = b"age-encryption.org/v1 pretend ciphertext"


async def lease_several(
    server: Server, max_jobs: int, max_bytes: int = 1 << 20, **fields: Any
) -> list[Lease]:
    body = LeasesRequest(
        worker_id=fields.pop("worker_id", "worker-1"),
        engines=["size@1"],
        max_jobs=max_jobs,
        max_bytes=max_bytes,
        timeout=0.0,
        **fields,
    )
    response = await server.call("POST", LEASES, server.processor, body)
    if response.status_code == 204:
        return []
    assert response.status_code == 200, response.text
    return msgspec.json.decode(response.content, type=Leases).leases


def completion(lease: Lease, result: bytes = SEALED, **changes: Any) -> dict[str, Any]:
    body = msgspec.to_builtins(
        {"job_id": lease.job_id, "lease_token": lease.lease_token, "result": result}
    )
    return {**body, **changes}


async def complete_all(server: Server, *completions: dict[str, Any]) -> list[CompletionOutcome]:
    outcomes = await server.ok(
        "POST",
        JOB_COMPLETIONS,
        server.processor,
        {"completions": list(completions)},
        returns=CompletionOutcomes,
    )
    return outcomes.outcomes


async def state_of(server: Server, job_id: str) -> str:
    info = await server.ok("GET", UPLOAD.format(upload_id=job_id), server.owner, returns=UploadInfo)
    return info.state


@both_backends
async def test_a_lease_of_several_hands_out_the_oldest_jobs_each_under_a_token_of_its_own(
    server: Server,
) -> None:
    uploads = [await server.upload(server.owner, f"file {n}".encode()) for n in range(5)]
    leases = await lease_several(server, max_jobs=3)
    assert [lease.job_id for lease in leases] == [info.id for info in uploads[:3]]
    assert len({lease.lease_token for lease in leases}) == 3
    assert all(lease.chunks and lease.recipients for lease in leases)
    rest = await lease_several(server, max_jobs=MAX_LEASES)
    assert [lease.job_id for lease in rest] == [info.id for info in uploads[3:]]
    assert await lease_several(server, max_jobs=3) == []


@both_backends
async def test_a_lease_of_several_stops_at_max_bytes_but_always_takes_one(server: Server) -> None:
    big = await server.upload(server.owner, b"x" * 3000)
    small = [await server.upload(server.owner, b"y" * 400) for _ in range(3)]
    first = await lease_several(server, max_jobs=4, max_bytes=1000)
    assert [lease.job_id for lease in first] == [big.id]  # over max_bytes on its own: alone
    second = await lease_several(server, max_jobs=4, max_bytes=1000)
    assert [lease.job_id for lease in second] == [info.id for info in small[:2]]


@both_backends
async def test_a_lease_of_several_asked_again_after_a_lost_answer_is_the_same_leases(
    server: Server,
) -> None:
    for n in range(3):
        await server.upload(server.owner, f"file {n}".encode())
    first = await lease_several(server, max_jobs=2, request_id="ask-1")
    again = await lease_several(server, max_jobs=2, request_id="ask-1")
    assert [(lease.job_id, lease.lease_token) for lease in again] == [
        (lease.job_id, lease.lease_token) for lease in first
    ]
    assert len(await lease_several(server, max_jobs=2, request_id="ask-2")) == 1


@both_backends
async def test_completions_store_each_result_and_the_uploader_reads_it_back(server: Server) -> None:
    for n in range(3):
        await server.upload(server.owner, f"file {n}".encode())
    leases = await lease_several(server, max_jobs=3)
    results = [SEALED + bytes([n]) for n in range(3)]
    outcomes = await complete_all(
        server, *(completion(lease, result) for lease, result in zip(leases, results, strict=True))
    )
    assert [(o.job_id, o.status) for o in outcomes] == [(lease.job_id, "done") for lease in leases]
    for lease, result in zip(leases, results, strict=True):
        assert await state_of(server, lease.job_id) == "done"
        fetched = await server.ok(
            "GET", UPLOAD_RESULT.format(upload_id=lease.job_id), server.owner, returns=ResultUrl
        )
        assert fetched.sha256 == hashlib.sha256(result).hexdigest()
        assert (await server.http.get(fetched.url)).content == result


@both_backends
async def test_a_completion_whose_lease_is_not_current_costs_only_itself(server: Server) -> None:
    for n in range(2):
        await server.upload(server.owner, f"file {n}".encode())
    good, stale = await lease_several(server, max_jobs=2)
    outcomes = await complete_all(
        server, completion(good), completion(stale, lease_token="not-the-token")
    )
    assert [o.status for o in outcomes] == ["done", "conflict"]
    assert outcomes[1].error and "not job" in outcomes[1].error
    assert await state_of(server, good.job_id) == "done"
    assert await state_of(server, stale.job_id) == "leased"


@both_backends
async def test_the_same_completions_sent_again_are_answered_done_again(server: Server) -> None:
    await server.upload(server.owner, b"one file")
    (lease,) = await lease_several(server, max_jobs=2)
    assert [o.status for o in await complete_all(server, completion(lease))] == ["done"]
    assert [o.status for o in await complete_all(server, completion(lease))] == ["done"]
    other = await complete_all(server, completion(lease, SEALED[::-1]))
    assert [o.status for o in other] == ["conflict"]  # another result for a job done: never
    fetched = await server.ok(
        "GET", UPLOAD_RESULT.format(upload_id=lease.job_id), server.owner, returns=ResultUrl
    )
    assert (await server.http.get(fetched.url)).content == SEALED


async def test_a_job_still_uploading_cannot_be_completed(server: Server) -> None:
    data = b"z" * (CHUNK + 10)  # two chunks
    created = await server.create_upload(server.owner, data)
    response = await server.send_chunk(server.owner, created, data, 0)
    assert response.status_code == 200, response.text
    (lease,) = await lease_several(server, max_jobs=1)
    (outcome,) = await complete_all(server, completion(lease))
    assert outcome.status == "conflict" and outcome.error and "chunks" in outcome.error


async def test_an_unknown_job_or_one_completed_twice_in_a_request_is_refused(
    server: Server,
) -> None:
    await server.upload(server.owner, b"one file")
    (lease,) = await lease_several(server, max_jobs=1)
    unknown = completion(lease, job_id="0" * 32)
    outcomes = await complete_all(server, unknown, completion(lease), completion(lease))
    assert [o.status for o in outcomes] == ["refused", "done", "refused"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"completions": []}, 400),
        ({"completions": [{"job_id": "j", "lease_token": "t", "result": "AA=="}] * 65}, 400),
        ({"completions": [{"job_id": "j", "lease_token": "t", "result": "not base64!"}]}, 400),
        ({"completions": [{"job_id": "", "lease_token": "t", "result": ""}]}, 400),
    ],
    ids=["none", "too-many", "not-base64", "no-job-id"],
)
async def test_a_malformed_batch_of_completions_is_refused_whole(
    server: Server, body: dict[str, Any], status: int
) -> None:
    assert MAX_COMPLETIONS == 64  # the "too-many" case sends one more
    response = await server.call("POST", JOB_COMPLETIONS, server.processor, body)
    assert response.status_code == status, response.text
    error_body(response)


async def test_a_result_too_large_to_come_with_its_completion_is_413(server: Server) -> None:
    await server.upload(server.owner, b"one file")
    (lease,) = await lease_several(server, max_jobs=1)
    body = {"completions": [completion(lease, b"r" * (MAX_INLINE_RESULT + 1))]}
    response = await server.call("POST", JOB_COMPLETIONS, server.processor, body)
    assert response.status_code == 413, response.text
    assert await state_of(server, lease.job_id) == "leased"


@pytest.mark.parametrize(
    "fields", [{"max_jobs": 0}, {"max_jobs": MAX_LEASES + 1}, {"max_bytes": -1}]
)
async def test_a_lease_of_several_out_of_bounds_is_400(
    server: Server, fields: dict[str, int]
) -> None:
    body = {"worker_id": "w", "engines": ["size@1"], "timeout": 0.0, **fields}
    response = await server.call("POST", LEASES, server.processor, body)
    assert response.status_code == 400, response.text
    error_body(response)


@both_backends
async def test_each_lease_of_several_brings_the_first_chunks_of_its_own_job(
    server: Server,
) -> None:
    large = await server.upload(server.owner, bytes(range(256)) * (CHUNK * 10 // 256))
    small = await server.upload(server.owner, b"one chunk")
    leases = await lease_several(server, max_jobs=2, max_bytes=1 << 30)
    assert [lease.job_id for lease in leases] == [large.id, small.id]
    assert [chunk.seq for chunk in leases[0].chunks] == list(range(8))  # 8 of its 10
    assert [chunk.seq for chunk in leases[1].chunks] == [0]
    assert leases[0].chunk_count == 10


# -- the results the server keeps: those that came with their completions -------------------------


async def wait_for(server: Server, ids: list[str], **fields: Any) -> list[UploadInfo]:
    body = UploadWait(ids=ids, timeout=0.0, finished_only=True, **fields)
    answer = await server.ok("POST", UPLOADS_WAIT, server.owner, body, returns=UploadList)
    return answer.uploads


async def completed_inline(server: Server, results: list[bytes]) -> list[Lease]:
    for n in range(len(results)):
        await server.upload(server.owner, f"kept {n}".encode())
    leases = await lease_several(server, max_jobs=len(results))
    outcomes = await complete_all(
        server, *(completion(lease, result) for lease, result in zip(leases, results, strict=True))
    )
    assert [outcome.status for outcome in outcomes] == ["done"] * len(results)
    return leases


@both_backends
async def test_a_result_sent_with_its_completion_comes_in_the_wait_and_is_no_blob(
    server: Server,
) -> None:
    results = [SEALED + bytes([n]) for n in range(3)]
    leases = await completed_inline(server, results)
    ids = [lease.job_id for lease in leases]
    answered = await wait_for(server, ids, inline_results=True)
    assert [info.id for info in answered] == ids
    for info, result in zip(answered, results, strict=True):
        assert info.result is None
        assert info.sealed_result == SealedResult(
            sha256=hashlib.sha256(result).hexdigest(), sealed=result
        )
        # Kept with the job's row: nothing was stored in the blob store for it.
        assert await server.services.blobs.describe(result_key(info.id)) is None


@both_backends
async def test_a_wait_that_asks_for_urls_gets_one_that_serves_the_kept_result(
    server: Server,
) -> None:
    """What a client older than kept results asks: the result is stored where its URL points,
    and asked again (the copy there already, sealed), the answer is the same."""
    [lease] = await completed_inline(server, [SEALED])
    for _ in range(2):
        [info] = await wait_for(server, [lease.job_id])
        assert info.sealed_result is None and info.result is not None
        assert info.result.sha256 == hashlib.sha256(SEALED).hexdigest()
        assert (await server.http.get(info.result.url)).content == SEALED


async def test_a_waits_answer_holds_sealed_results_up_to_its_bound_and_the_rest_come_next(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = [SEALED + bytes([n]) for n in range(5)]
    monkeypatch.setattr(uploads_routes, "MAX_INLINE_ANSWER", 2 * len(results[0]))
    ids = [lease.job_id for lease in await completed_inline(server, results)]
    first = await wait_for(server, ids, inline_results=True)
    assert [info.id for info in first] == ids[:2]
    assert all(info.sealed_result is not None for info in first)
    rest = await wait_for(server, ids[2:], inline_results=True)
    assert [info.id for info in rest] == ids[2:4]
    # Waiting for every upload, finished or not: past the bound, each result comes as its URL.
    body = UploadWait(ids=ids, timeout=0.0, inline_results=True)
    every = await server.ok("POST", UPLOADS_WAIT, server.owner, body, returns=UploadList)
    assert [info.sealed_result is not None for info in every.uploads] == [True] * 2 + [False] * 3
    for info, result in list(zip(every.uploads, results, strict=True))[2:]:
        assert info.result is not None
        assert (await server.http.get(info.result.url)).content == result
