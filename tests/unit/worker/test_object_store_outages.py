"""An object store that falls over is waited out while the worker holds the job's lease: giving up
would let the lease lapse and spend one of the job's attempts on an outage that is no fault of the
job's — again and again for as long as the outage lasts, until the job failed for good.

The worker's retries here are milliseconds apart (``BLOB_RETRIES``), with as many attempts as a
worker makes before it only goes on while the lease is held: each outage below outlasts that
budget by its count of attempts, not by a length of time.
"""

from __future__ import annotations

import asyncio

import httpx
from tests.unit.worker.conftest import BLOB_RETRIES, Start, server_with
from tests.unit.worker.pipeline import Job, KiB, Pipeline, sample

from fap.api import BLOBS, JOB_HEARTBEAT, JOB_RESULT_URL
from fap.server.blobs import result_key

# Twice as many attempts as a transfer makes before it only goes on while the lease is held.
PAST_THE_BUDGET = 2 * BLOB_RETRIES.attempts


# The result tests send the result to its own URL, as a worker does with a result too large to go
# with its completion (or to a server without POST /v1/jobs/completions).


def result_path(job: Job) -> str:
    return f"{BLOBS}/{result_key(job.id)}"


def result_puts(pipeline: Pipeline, job: Job) -> list[int | None]:
    return [s.status for s in pipeline.sent(result_path(job)) if s.method == "PUT"]


async def done_on_its_first_attempt(pipeline: Pipeline, job: Job) -> None:
    await pipeline.until_state(job, "done")
    info = await pipeline.info(job)
    assert info.attempts == 1
    assert len(pipeline.completes(job)) == 1
    assert not pipeline.fails(job)
    assert (await pipeline.result(job))["bytes"] == len(job.data)


@server_with(heartbeat_seconds=0.5, max_attempts=3)
async def test_a_chunk_store_outage_past_the_retry_budget_is_waited_out_on_the_first_attempt(
    pipeline: Pipeline, running_worker: Start
) -> None:
    job = await pipeline.add_job(sample(192 * KiB))
    chunk_1 = pipeline.chunk_path(job, 1)

    def get_of_chunk_1(request: httpx.Request) -> bool:
        return request.method == "GET" and request.url.path == chunk_1

    outage = pipeline.wire.outage(get_of_chunk_1)
    async with running_worker() as running:
        await pipeline.until(
            lambda: (
                len(pipeline.chunk_gets(job, 1)) > PAST_THE_BUDGET
                and any(beat.status == 204 for beat in pipeline.heartbeats(job))
            ),
            "the worker to retry chunk 1 past its budget, its lease kept meanwhile",
        )
        outage.end()
        await done_on_its_first_attempt(pipeline, job)
    assert running.worker.outcomes == {"done": 1}
    assert [get.status for get in pipeline.chunk_gets(job, 1)][-1] == 200


@server_with(heartbeat_seconds=0.5, max_attempts=3)
async def test_a_result_store_outage_past_the_retry_budget_is_waited_out_on_the_first_attempt(
    pipeline: Pipeline, running_worker: Start
) -> None:
    job = await pipeline.add_job(sample(64 * KiB))
    path = result_path(job)
    falls_over = pipeline.wire.refuse(
        lambda request: request.method == "PUT" and request.url.path == path,
        times=None,
        status=503,
        detail="The object store is down for maintenance.",
    )
    async with running_worker(completions_together=False) as running:
        await pipeline.until(
            lambda: len(result_puts(pipeline, job)) > PAST_THE_BUDGET,
            "the worker to retry the result past its budget",
        )
        falls_over.end()
        await done_on_its_first_attempt(pipeline, job)
    assert running.worker.outcomes == {"done": 1}
    assert result_puts(pipeline, job)[-1] == 200


@server_with(url_ttl_seconds=10, lease_seconds=30.0)
async def test_a_result_url_that_expired_before_its_put_is_signed_again(
    pipeline: Pipeline, running_worker: Start
) -> None:
    """As an outage longer than the URL's life leaves it: the PUT is refused (403), and the
    worker asks for a fresh URL rather than fail the job."""
    job = await pipeline.add_job(sample(64 * KiB))
    path = result_path(job)
    held = pipeline.wire.hold(lambda request: request.method == "PUT" and request.url.path == path)
    async with running_worker(completions_together=False):
        await asyncio.wait_for(held.reached.wait(), 30)
        pipeline.server.clock.advance(15)  # past the URL's 10 s; the lease has 30
        held.release()
        await done_on_its_first_attempt(pipeline, job)
    assert result_puts(pipeline, job) == [403, 200]
    assert len(pipeline.sent(JOB_RESULT_URL.format(job_id=job.id))) == 2


@server_with(heartbeat_seconds=0.5, max_attempts=2)
async def test_a_worker_whose_lease_was_taken_stops_retrying_the_object_store(
    pipeline: Pipeline, running_worker: Start
) -> None:
    job = await pipeline.add_job(sample(64 * KiB))
    chunk_0 = pipeline.chunk_path(job, 0)
    pipeline.wire.outage(lambda request: request.url.path == chunk_0)
    async with running_worker() as running:
        await pipeline.until(
            lambda: len(pipeline.chunk_gets(job, 0)) > PAST_THE_BUDGET, "retries past the budget"
        )
        await pipeline.take_lease(job)
        await pipeline.until(lambda: running.worker.outcomes.get("lost") == 1, "the job to stop")
        gets = len(pipeline.chunk_gets(job, 0))
    assert pipeline.heartbeats(job)[-1].status == 409
    assert len(pipeline.chunk_gets(job, 0)) == gets  # no GET after the job stopped
    assert not pipeline.completes(job)
    assert not pipeline.fails(job)


@server_with(heartbeat_seconds=0.5, lease_seconds=1.0, max_attempts=2)
async def test_a_worker_that_cannot_keep_its_lease_either_gives_up_on_the_object_store(
    pipeline: Pipeline, running_worker: Start
) -> None:
    """Heartbeats fail too (the server is out of reach): once a lease's term has passed without
    one, the lease is presumed lapsed, and the worker leaves the job to the queue."""
    job = await pipeline.add_job(sample(64 * KiB))
    chunk_0 = pipeline.chunk_path(job, 0)
    heartbeat = JOB_HEARTBEAT.format(job_id=job.id)
    pipeline.wire.outage(lambda request: request.url.path in (chunk_0, heartbeat))
    async with running_worker() as running:
        await pipeline.until(
            lambda: running.worker.outcomes.get("abandoned") == 1, "the worker to give up"
        )
    assert len(pipeline.chunk_gets(job, 0)) > BLOB_RETRIES.attempts
    assert not pipeline.completes(job)
    assert not pipeline.fails(job)
