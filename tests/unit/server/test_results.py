"""A result is bound to its SHA-256 when its URL is signed, checked against it at completion, and
immutable once the job is complete; the uploader is told the SHA-256 to check it against."""

from __future__ import annotations

import hashlib

from tests.unit.server.harness import Server, error_body
from tests.unit.server.test_jobs import SEALED, leased, store_result

from fap.api import (
    JOB_COMPLETE,
    JOB_FAIL,
    JOB_HEARTBEAT,
    JOB_RESULT_URL,
    UPLOAD_RESULT,
    UPLOADS_WAIT,
    Lease,
    ResultUrl,
    UploadList,
)

OTHER = bytes(reversed(SEALED))  # the same size, other bytes


def result_url_body(lease: Lease, data: bytes) -> dict[str, object]:
    return {
        "lease_token": lease.lease_token,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


async def result_url(server: Server, lease: Lease, data: bytes) -> ResultUrl:
    """The worker's presigned PUT for ``data`` as the job's result."""
    return await server.ok(
        "POST",
        JOB_RESULT_URL.format(job_id=lease.job_id),
        server.processor,
        result_url_body(lease, data),
        returns=ResultUrl,
    )


async def complete(server: Server, lease: Lease) -> ResultUrl:
    """Store SEALED, complete the job; answer the worker's result URL."""
    url = await result_url(server, lease, SEALED)
    assert (await server.http.put(url.url, content=SEALED, headers=url.headers)).is_success
    done = await server.call(
        "POST",
        JOB_COMPLETE.format(job_id=lease.job_id),
        server.processor,
        {
            "lease_token": lease.lease_token,
            "result_size": len(SEALED),
            "result_sha256": hashlib.sha256(SEALED).hexdigest(),
        },
    )
    assert done.status_code == 204, done.text
    return url


async def test_a_result_url_needs_the_sha256_of_the_result(server: Server) -> None:
    lease = await leased(server)
    response = await server.call(
        "POST",
        JOB_RESULT_URL.format(job_id=lease.job_id),
        server.processor,
        {"lease_token": lease.lease_token, "size": len(SEALED)},
    )
    assert response.status_code == 400
    assert "sha256" in error_body(response).detail


async def test_a_result_url_stores_those_bytes_only(server: Server) -> None:
    lease = await leased(server)
    url = await result_url(server, lease, SEALED)
    assert url.sha256 == hashlib.sha256(SEALED).hexdigest()
    put = await server.http.put(url.url, content=OTHER, headers=url.headers)
    assert put.status_code == 400
    assert "SHA-256" in error_body(put).detail


async def test_after_completion_no_put_replaces_the_result(server: Server) -> None:
    lease = await leased(server)
    url = await complete(server, lease)
    for data in (OTHER, SEALED):  # other bytes, and even the very same ones
        put = await server.http.put(url.url, content=data, headers=url.headers)
        assert put.status_code in (400, 409), put.text
        error_body(put)
    fetched = await server.ok(
        "GET", UPLOAD_RESULT.format(upload_id=lease.job_id), server.owner, returns=ResultUrl
    )
    assert (await server.http.get(fetched.url)).content == SEALED
    # The uploader is told what to check the bytes against before decrypting them.
    assert fetched.sha256 == hashlib.sha256(SEALED).hexdigest()


async def test_no_result_url_is_signed_once_the_job_is_done(server: Server) -> None:
    lease = await leased(server)
    await complete(server, lease)
    again = await server.call(
        "POST",
        JOB_RESULT_URL.format(job_id=lease.job_id),
        server.processor,
        result_url_body(lease, OTHER),
    )
    assert again.status_code == 409
    assert "done" in error_body(again).detail


async def test_a_result_url_lives_no_longer_than_its_lease(server: Server) -> None:
    lease = await leased(server)
    url = await result_url(server, lease, SEALED)
    server.clock.advance(server.settings.lease_seconds + 1)
    put = await server.http.put(url.url, content=SEALED, headers=url.headers)
    assert put.status_code == 403
    assert "expired" in error_body(put).detail


async def test_completion_checks_the_stored_results_sha256(server: Server) -> None:
    lease = await leased(server)
    body = await store_result(server, lease)
    wrong = {**body, "result_sha256": hashlib.sha256(OTHER).hexdigest()}
    response = await server.call(
        "POST", JOB_COMPLETE.format(job_id=lease.job_id), server.processor, wrong
    )
    assert response.status_code == 400
    assert "SHA-256" in error_body(response).detail


async def test_a_negative_result_size_is_400_not_a_conflict(server: Server) -> None:
    lease = await leased(server)
    for path, body in (
        (JOB_COMPLETE, {"result_size": -1, "result_sha256": "0" * 64}),
        (JOB_RESULT_URL, {"size": -1, "sha256": "0" * 64}),
    ):
        response = await server.call(
            "POST",
            path.format(job_id=lease.job_id),
            server.processor,
            {"lease_token": lease.lease_token, **body},
        )
        assert response.status_code == 400, response.text
        assert "0 or more" in error_body(response).detail


async def test_a_wrong_token_on_a_finished_job_says_what_is_true(server: Server) -> None:
    failed = await leased(server, b"to fail")
    gone = await server.call(
        "POST",
        JOB_FAIL.format(job_id=failed.job_id),
        server.processor,
        {"lease_token": failed.lease_token, "error": "broken", "retryable": False},
    )
    assert gone.status_code == 204, gone.text
    done = await leased(server, b"to complete")
    await complete(server, done)
    for lease, state in ((failed, "failed"), (done, "done")):
        for token in (lease.lease_token, "not-a-token-of-this-job"):
            response = await server.call(
                "POST",
                JOB_HEARTBEAT.format(job_id=lease.job_id),
                server.processor,
                {"lease_token": token},
            )
            assert response.status_code == 409
            detail = error_body(response).detail
            assert f"is {state}" in detail, detail
            assert "leased again" not in detail


async def wait_for(server: Server, token: str, *ids: str) -> UploadList:
    return await server.ok(
        "POST", UPLOADS_WAIT, token, {"ids": list(ids), "timeout": 0}, returns=UploadList
    )


async def test_a_wait_hands_the_uploader_the_result_of_a_done_upload_and_no_other(
    server: Server,
) -> None:
    """Fetching a result the wait said was ready then takes no request to the API."""
    lease = await leased(server)
    pending = await server.upload(server.owner, b"not analysed yet")
    await complete(server, lease)
    done, waiting = (await wait_for(server, server.owner, lease.job_id, pending.id)).uploads
    assert waiting.result is None
    assert done.result is not None
    assert (done.result.size, done.result.sha256) == (
        len(SEALED),
        hashlib.sha256(SEALED).hexdigest(),
    )
    assert (await server.http.get(done.result.url)).content == SEALED

    # A colleague may watch the upload finish, but its result is sealed to the uploader alone.
    colleague = await server.new_user(None, "colleague", "member")
    (seen,) = (await wait_for(server, colleague, lease.job_id)).uploads
    assert seen.state == "done" and seen.result is None


async def test_a_wait_hands_no_result_that_expired(server: Server) -> None:
    lease = await leased(server)
    await complete(server, lease)
    server.clock.advance(server.settings.keep_results + 1)
    (done,) = (await wait_for(server, server.owner, lease.job_id)).uploads
    assert done.state == "done" and done.result is None  # asked for alone, it says 410 and why
