"""Small jobs by the handful: a slot leases several at once when its engine is quick, and the
completions of jobs that finish while one completion request is on its way go together in the
next, each answered on its own. Against an older server without those routes, one at a time."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from tests.support.app_transport import Sent
from tests.unit.server.harness import BASE
from tests.unit.worker.conftest import Start
from tests.unit.worker.pipeline import Pipeline, sample

from fap.api import (
    JOB_COMPLETIONS,
    JOB_RESULT_URL,
    LEASE,
    LEASES,
    ApiSession,
    Completions,
    JobCompletion,
    LeasesRequest,
)
from fap.errors import ConflictError
from fap.worker.completions import CompletionSender
from fap.worker.runner import JOBS_PER_LEASE, LEASE_ENGINE_SECONDS, LeasePace

SEALED = b"age-encryption.org/v1 pretend ciphertext"


def carried(sent: Sent) -> list[str]:
    """The jobs a completions request carried."""
    return [c.job_id for c in msgspec.json.decode(sent.body, type=Completions).completions]


async def test_completions_that_come_while_one_request_is_out_go_together_in_the_next(
    pipeline: Pipeline,
) -> None:
    jobs = [await pipeline.add_job(sample(1000)) for _ in range(5)]
    leases = [await pipeline.server.lease(engines=["test@1"]) for _ in jobs]
    held = pipeline.wire.hold(lambda request: request.url.path == JOB_COMPLETIONS)
    async with ApiSession(BASE, pipeline.server.processor, transport=pipeline.wire) as session:
        sender = CompletionSender(session)
        completions = [
            JobCompletion(lease.job_id, lease.lease_token, SEALED)
            for lease in leases
            if lease is not None
        ]
        first = asyncio.create_task(sender.complete(completions[0]))
        await asyncio.wait_for(held.reached.wait(), 30)  # the first one, on its own
        others = [asyncio.create_task(sender.complete(c)) for c in completions[1:]]
        await asyncio.sleep(0.05)  # they come meanwhile, and wait for it
        assert len(pipeline.sent(JOB_COMPLETIONS)) == 1
        held.release()
        await asyncio.gather(first, *others)
        await sender.aclose()
    requests = pipeline.sent(JOB_COMPLETIONS)
    assert [carried(sent) for sent in requests] == [[jobs[0].id], [job.id for job in jobs[1:]]]
    for job in jobs:
        assert await pipeline.state(job) == "done"
        assert await pipeline.sealed(job) == SEALED


async def test_a_completion_whose_lease_is_not_current_fails_alone(pipeline: Pipeline) -> None:
    jobs = [await pipeline.add_job(sample(1000)) for _ in range(2)]
    good, stale = [await pipeline.server.lease(engines=["test@1"]) for _ in jobs]
    assert good is not None and stale is not None
    async with ApiSession(BASE, pipeline.server.processor, transport=pipeline.wire) as session:
        sender = CompletionSender(session)
        answers = await asyncio.gather(
            sender.complete(JobCompletion(good.job_id, good.lease_token, SEALED)),
            sender.complete(JobCompletion(stale.job_id, "a stale token", SEALED)),
            return_exceptions=True,
        )
        await sender.aclose()
    assert answers[0] is None
    assert isinstance(answers[1], ConflictError)
    assert [await pipeline.state(job) for job in jobs] == ["done", "leased"]


async def test_a_quick_engine_gets_several_small_jobs_per_lease(
    pipeline: Pipeline, running_worker: Start
) -> None:
    jobs = [await pipeline.add_job(sample(2000)) for _ in range(30)]
    async with running_worker(concurrency=1):
        for job in jobs:
            await pipeline.until_state(job, "done")
    asked = [msgspec.json.decode(s.body, type=LeasesRequest) for s in pipeline.sent(LEASES)]
    assert asked[0].max_jobs == 1  # nothing known of the engine's pace yet
    assert max(request.max_jobs for request in asked) > 1
    assert len(pipeline.sent(LEASES)) < len(jobs)  # so some brought several jobs
    # And their results went with their completions, several to a request.
    assert not any(s.path.endswith("/result-url") for s in pipeline.wire.sent)
    assert len(pipeline.sent(JOB_COMPLETIONS)) < len(jobs)


async def test_against_a_server_without_the_batch_routes_jobs_go_one_at_a_time(
    pipeline: Pipeline, running_worker: Start
) -> None:
    for path in (LEASES, JOB_COMPLETIONS):
        pipeline.wire.refuse(
            lambda request, path=path: request.url.path == path,
            times=None,
            status=404,
            detail="Not Found",
        )
    jobs = [await pipeline.add_job(sample(2000)) for _ in range(3)]
    async with running_worker(concurrency=1):
        for job in jobs:
            await pipeline.until_state(job, "done")
    assert [s.status for s in pipeline.sent(LEASES)] == [404]  # asked once, then not again
    assert len(pipeline.sent(LEASE)) >= len(jobs)
    assert [s.status for s in pipeline.sent(JOB_COMPLETIONS)] == [404]
    for job in jobs:
        assert len(pipeline.sent(JOB_RESULT_URL.format(job_id=job.id))) == 1
        assert (await pipeline.result(job))["bytes"] == len(job.data)


def test_a_lease_asks_for_as_many_jobs_as_the_engine_gets_through_in_half_a_second() -> None:
    pace = LeasePace()
    assert pace.jobs == 1
    pace.observe([None])  # a job that ended before the engine answered says nothing
    assert pace.jobs == 1
    pace.observe([0.1])
    assert pace.jobs == int(LEASE_ENGINE_SECONDS / 0.1)
    pace.observe([0.001] * 20)
    assert pace.jobs == JOBS_PER_LEASE
    pace.observe([2.0] * 20)
    assert pace.jobs == 1


@pytest.mark.parametrize("seconds", [0.0, 1e-9])
def test_an_engine_too_quick_to_time_is_given_the_most_jobs(seconds: float) -> None:
    pace = LeasePace()
    pace.observe([seconds])
    assert pace.jobs == JOBS_PER_LEASE
