"""The worker's slots and lifecycle on the real server app: jobs side by side up to the
concurrency, one engine per slot, a graceful stop that drains and a hard one that drops."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.unit.worker.conftest import Start
from tests.unit.worker.pipeline import KiB, Pipeline, sample


async def test_jobs_run_side_by_side_up_to_the_concurrency(
    pipeline: Pipeline, running_worker: Start, markers: Path
) -> None:
    queued = [await pipeline.add_job(sample(10 * KiB)) for _ in range(3)]
    async with running_worker("tests.engines.analyzers:wait_for_release", concurrency=2):
        for job in queued[:2]:
            await pipeline.until((markers / f"{job.id}.read").exists, "two analyses at once")
        assert await pipeline.state(queued[2]) == "queued"  # two slots, two jobs
        for job in queued:
            (markers / f"{job.id}.release").touch()
        for job in queued:
            await pipeline.until_state(job, "done")


async def test_an_engine_crash_takes_down_only_its_own_job(
    pipeline: Pipeline, running_worker: Start, markers: Path
) -> None:
    # Each slot has an engine of its own: a neighbour's crash does not touch this analysis.
    steady = await pipeline.add_job(sample(10 * KiB), name="steady.bin")
    async with running_worker("tests.engines.analyzers:by_name", concurrency=2):
        await pipeline.until((markers / f"{steady.id}.read").exists, "the steady analysis")
        doomed = await pipeline.add_job(sample(10 * KiB), name="crash.bin")
        await pipeline.until_state(doomed, "failed")
        (markers / f"{steady.id}.release").touch()
        await pipeline.until_state(steady, "done")
    assert "crashed" in pipeline.fails(doomed)[0].error
    assert not pipeline.fails(steady)


async def test_stop_drains_the_job_in_flight_and_leases_no_more(
    pipeline: Pipeline, running_worker: Start, markers: Path
) -> None:
    job = await pipeline.add_job(sample(20 * KiB))
    waiting = await pipeline.add_job(sample(20 * KiB))
    async with running_worker("tests.engines.analyzers:wait_for_release") as running:
        await pipeline.until((markers / f"{job.id}.read").exists, "the engine to read the file")
        running.worker.stop()
        asked = len(pipeline.leases())
        (markers / f"{job.id}.release").touch()
        assert await running.task is False  # a graceful stop
        assert len(pipeline.leases()) == asked
    assert await pipeline.state(job) == "done"
    assert await pipeline.state(waiting) == "queued"


async def test_abort_drops_the_job_in_flight(
    pipeline: Pipeline, running_worker: Start, markers: Path
) -> None:
    job = await pipeline.add_job(sample(20 * KiB))
    async with running_worker("tests.engines.analyzers:wait_for_release") as running:
        await pipeline.until((markers / f"{job.id}.read").exists, "the engine to read the file")
        running.worker.abort()
        assert await running.task is True  # a hard stop
    assert await pipeline.state(job) == "leased"  # its lease lapses on the server
    assert not pipeline.completes(job)
    assert not pipeline.fails(job)


async def test_the_next_job_is_leased_and_analysed_while_the_last_one_delivers(
    pipeline: Pipeline, running_worker: Start
) -> None:
    """One slot: its engine is free once it answered, so the next job need not wait for the last
    one's result to be stored and completed."""
    first = await pipeline.add_job(sample(10 * KiB))
    second = await pipeline.add_job(sample(10 * KiB))
    held = pipeline.wire.hold(pipeline.completing(first))
    async with running_worker(concurrency=1):
        await asyncio.wait_for(held.reached.wait(), 30)
        await pipeline.until(
            lambda: bool(pipeline.chunk_gets(second, 0)), "the next job read while one delivers"
        )
        assert await pipeline.state(first) == "leased"
        held.release()
        await pipeline.until_state(first, "done")
        await pipeline.until_state(second, "done")


async def test_a_job_waits_for_no_busy_engine(
    pipeline: Pipeline, running_worker: Start, markers: Path
) -> None:
    """No job is leased ahead of a busy engine: another processor may have it meanwhile."""
    busy = await pipeline.add_job(sample(10 * KiB))
    other = await pipeline.add_job(sample(10 * KiB))
    async with running_worker("tests.engines.analyzers:wait_for_release", concurrency=1):
        await pipeline.until((markers / f"{busy.id}.read").exists, "the engine to read the file")
        assert await pipeline.state(other) == "queued"
        assert len(pipeline.leases()) == 1
        (markers / f"{busy.id}.release").touch()
        (markers / f"{other.id}.release").touch()
        await pipeline.until_state(other, "done")
