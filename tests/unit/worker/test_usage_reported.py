"""What the engine used on a job goes to the server with the completion, or with the failure."""

from __future__ import annotations

from tests.unit.worker.conftest import Start
from tests.unit.worker.pipeline import KiB, Pipeline, sample


async def test_a_completion_says_what_the_engine_used(
    pipeline: Pipeline, running_worker: Start
) -> None:
    job = await pipeline.add_job(sample(200 * KiB))
    async with running_worker():
        await pipeline.until_state(job, "done")
    [complete] = pipeline.completes(job)
    assert complete.usage is not None
    assert complete.usage.cpu_seconds >= 0
    # A Python engine holds tens of MiB resident: a figure from the kernel, not a default.
    assert complete.usage.peak_memory_bytes > 10 * 1024 * 1024
    assert complete.usage.wall_seconds > 0


async def test_a_failure_says_what_the_engine_used_too(
    pipeline: Pipeline, running_worker: Start
) -> None:
    job = await pipeline.add_job(sample(20 * KiB))
    async with running_worker("tests.engines.analyzers:fail"):
        await pipeline.until_state(job, "failed")
    [failure] = pipeline.fails(job)
    assert failure.usage is not None
    assert failure.usage.peak_memory_bytes > 0
