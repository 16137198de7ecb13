"""The worker's side of the lease on the real server app: heartbeats keep it, a lapsed or stolen
lease stops the job without completing or failing it, and a server that does not answer, or whose
answer is lost, is asked again without leasing or recording anything twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec
from tests.unit.worker.conftest import Start, server_with
from tests.unit.worker.pipeline import KiB, Pipeline, sample

from fap.api import LeasesRequest


@server_with(heartbeat_seconds=0.5, lease_seconds=30.0)
async def test_heartbeats_keep_the_lease_past_its_first_deadline(
    pipeline: Pipeline, running_worker: Start, markers: Path
) -> None:
    server = pipeline.server
    job = await pipeline.add_job(sample(20 * KiB))

    def beats() -> int:
        return sum(beat.status == 204 for beat in pipeline.heartbeats(job))

    async def until_beats(count: int) -> None:
        await pipeline.until(lambda: beats() >= count, f"{count} heartbeats answered")

    async with running_worker("tests.engines.analyzers:wait_for_release"):
        await pipeline.until((markers / f"{job.id}.read").exists, "the engine to read the file")
        for _ in range(2):
            answered = beats()
            server.clock.advance(20)
            # The second beat answered since was sent after the move: it read the new clock.
            await until_beats(answered + 2)
        # 40 s since the lease of 30 s: only the heartbeats kept it.
        assert await server.services.queue.sweep() == 0
        assert await pipeline.state(job) == "leased"
        (markers / f"{job.id}.release").touch()
        await pipeline.until_state(job, "done")


@server_with(heartbeat_seconds=0.5, max_attempts=2)
async def test_a_lost_lease_stops_the_job_without_completing_or_failing_it(
    pipeline: Pipeline, running_worker: Start, markers: Path
) -> None:
    job = await pipeline.add_job(sample(20 * KiB))
    async with running_worker("tests.engines.analyzers:wait_for_release") as running:
        await pipeline.until((markers / f"{job.id}.read").exists, "the engine to read the file")
        await pipeline.take_lease(job)
        await pipeline.until(lambda: running.worker.outcomes.get("lost") == 1, "the job to stop")
        assert pipeline.heartbeats(job)[-1].status == 409
        (markers / f"{job.id}.release").touch()
    assert not pipeline.completes(job)
    assert not pipeline.fails(job)
    assert await pipeline.state(job) == "leased"  # by the other worker


@server_with(max_attempts=2)
async def test_a_stale_holder_cannot_complete_and_leaves_the_job_to_its_holder(
    pipeline: Pipeline, running_worker: Start
) -> None:
    job = await pipeline.add_job(sample(20 * KiB))
    held = pipeline.wire.hold(pipeline.completing(job))
    # The worker asks for its next job while this one delivers: that request waits at the wire,
    # so the job, once its lease lapsed, goes to the other worker.
    later = pipeline.wire.hold(after_the_first(pipeline.is_lease), every=True)
    async with running_worker() as running:
        await asyncio.wait_for(held.reached.wait(), 30)  # sealed and stored, about to complete
        await pipeline.take_lease(job)
        held.release()
        await pipeline.until(lambda: running.worker.outcomes.get("lost") == 1, "the job to stop")
        later.release()
    assert len(pipeline.completes(job)) == 1  # refused (its lease was lost), and not sent again
    assert not pipeline.fails(job)
    assert await pipeline.state(job) == "leased"  # by the other worker, who completes it


def after_the_first(
    kind: Callable[[httpx.Request], bool],
) -> Callable[[httpx.Request], bool]:
    """Matches the requests of a ``kind`` after the first one."""
    seen = 0

    def matches(request: httpx.Request) -> bool:
        nonlocal seen
        if not kind(request):
            return False
        seen += 1
        return seen > 1

    return matches


async def test_the_worker_keeps_asking_a_server_that_does_not_answer(
    pipeline: Pipeline, running_worker: Start
) -> None:
    pipeline.wire.refuse(pipeline.is_lease, times=2, status=503)
    job = await pipeline.add_job(sample(10 * KiB))
    async with running_worker():
        await pipeline.until_state(job, "done")
    assert [sent.status for sent in pipeline.leases()][:3] == [503, 503, 200]


async def test_a_lease_whose_answer_is_lost_is_answered_again_not_leased_twice(
    pipeline: Pipeline, running_worker: Start
) -> None:
    job = await pipeline.add_job(sample(10 * KiB))
    pipeline.wire.lose_answer(pipeline.is_lease)
    async with running_worker(retry_for=10.0):
        await pipeline.until_state(job, "done")
    first, again = (msgspec.json.decode(s.body, type=LeasesRequest) for s in pipeline.leases()[:2])
    assert first.request_id is not None
    assert again.request_id == first.request_id  # the very same request, sent again
    assert (await pipeline.info(job)).attempts == 1


async def test_a_completion_whose_answer_is_lost_is_recorded_once(
    pipeline: Pipeline, running_worker: Start
) -> None:
    job = await pipeline.add_job(sample(10 * KiB))
    pipeline.wire.lose_answer(pipeline.completing(job))
    async with running_worker(retry_for=10.0) as running:
        await pipeline.until(lambda: running.worker.outcomes.get("done") == 1, "the job done")
    first, again = pipeline.completes(job)
    assert again == first
    assert [sent.status for sent in pipeline.completion_requests(job)] == [None, 200]
    assert (await pipeline.info(job)).state == "done"
    assert not pipeline.fails(job)
