"""One job's life in a worker: streamed to a real engine as its chunks are stored, sealed and
completed on the real server app — or failed with the reason, retryable or not."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from tests.unit.worker.conftest import Start, server_with
from tests.unit.worker.pipeline import LEASE_PATHS, KiB, Pipeline, sample

from fap.api import JOB_FAIL
from fap.transfer import sha256_hex

ANALYZER_ERROR = (
    "The engine could not analyse the file: "
    "the analyzer raised ValueError: this analyzer always fails."
)


async def test_a_job_is_streamed_to_the_engine_sealed_and_completed(
    pipeline: Pipeline, running_worker: Start
) -> None:
    data = sample(300 * KiB + 7)
    job = await pipeline.add_job(data)
    async with running_worker():
        await pipeline.until_state(job, "done")
    result = await pipeline.result(job)
    assert result["bytes"] == len(data)
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    sealed = await pipeline.sealed(job)
    [complete] = pipeline.completes(job)
    assert complete.result_size == len(sealed)
    assert complete.result_sha256 == sha256_hex(sealed)
    assert not pipeline.fails(job)


async def test_the_engine_does_not_see_the_processor_token(
    pipeline: Pipeline, running_worker: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAP_TOKEN", pipeline.server.processor)
    job = await pipeline.add_job(b"x")
    async with running_worker("tests.engines.analyzers:environment"):
        await pipeline.until_state(job, "done")
    assert await pipeline.result(job) == {
        "FAP_TOKEN": False,
        "FAP_ENGINE_SOCKET": True,
        "FAP_TEST_MARKERS": True,
    }


async def test_an_empty_file_has_no_chunks_and_is_analyzed(
    pipeline: Pipeline, running_worker: Start
) -> None:
    job = await pipeline.add_job(b"")
    assert (await pipeline.info(job)).chunk_count == 0
    async with running_worker():
        await pipeline.until_state(job, "done")
    assert (await pipeline.result(job))["bytes"] == 0
    assert not pipeline.listings(job)  # nothing to list


async def test_the_lease_brings_the_first_chunks_so_a_small_job_is_never_listed(
    pipeline: Pipeline, running_worker: Start
) -> None:
    small = await pipeline.add_job(sample(40 * KiB))  # one chunk
    whole = await pipeline.add_job(sample(8 * 64 * KiB))  # eight, all stored before the lease
    longer = await pipeline.add_job(sample(10 * 64 * KiB))  # ten: the lease brings eight
    async with running_worker():
        for job in (small, whole, longer):
            await pipeline.until_state(job, "done")
    for job in (small, whole, longer):
        assert (await pipeline.result(job))["bytes"] == len(job.data)
    assert pipeline.listings(small) == pipeline.listings(whole) == []
    assert [listing.after for listing in pipeline.listings(longer)] == [7]


async def test_the_engine_reads_the_first_chunk_before_the_last_is_stored(
    pipeline: Pipeline, running_worker: Start, markers: Path
) -> None:
    data = sample(256 * KiB)
    job = await pipeline.add_job(data, stored=[0])
    async with running_worker("tests.engines.analyzers:record_first_byte"):
        await pipeline.until((markers / f"{job.id}.first-byte").exists, "the first chunk read")
        assert (await pipeline.info(job)).chunks_stored == [0]  # the rest is still uploading
        await pipeline.store(job, 1, 2, 3)
        await pipeline.until_state(job, "done")
    assert await pipeline.result(job) == {"bytes": len(data)}


async def test_chunks_stored_out_of_order_reach_the_engine_in_order(
    pipeline: Pipeline, running_worker: Start
) -> None:
    data = sample(320 * KiB)
    job = await pipeline.add_job(data, stored=[2, 4])
    async with running_worker("tests.engines.analyzers:echo"):
        # Listed [2, 4]; still waiting for 0, the worker asks again from the start.
        def asked_twice() -> bool:
            return [listing.after for listing in pipeline.listings(job)][:2] == [-1, -1]

        await pipeline.until(asked_twice, "a second listing from the start")
        await pipeline.store(job, 3, 0, 1)
        await pipeline.until_state(job, "done")
    result = await pipeline.result(job)
    assert result["read"] == len(data)
    assert result["sha256"] == hashlib.sha256(data).hexdigest()


@server_with(url_ttl_seconds=10, lease_seconds=30.0)
async def test_an_expired_chunk_url_is_signed_again_and_fetched(
    pipeline: Pipeline, running_worker: Start
) -> None:
    job = await pipeline.add_job(sample(128 * KiB))
    chunk_1 = pipeline.chunk_path(job, 1)
    held = pipeline.wire.hold(lambda request: request.url.path == chunk_1)
    async with running_worker():
        await asyncio.wait_for(held.reached.wait(), 30)
        # The URL listed for chunk 1 expires before its GET arrives; the lease does not.
        pipeline.server.clock.advance(15)
        held.release()
        await pipeline.until_state(job, "done")
    assert [get.status for get in pipeline.chunk_gets(job, 1)] == [403, 200]


async def test_a_corrupted_chunk_fails_the_job_as_retryable(
    pipeline: Pipeline, running_worker: Start
) -> None:
    job = await pipeline.add_job(sample(200 * KiB))
    pipeline.corrupt(job, 2)
    async with running_worker():
        await pipeline.until_state(job, "failed")
    [failure] = pipeline.fails(job)
    assert "does not match its checksum" in failure.error
    assert failure.retryable
    assert (await pipeline.info(job)).error == failure.error


@server_with(max_attempts=3)
async def test_a_file_unlike_the_one_announced_fails_for_good(
    pipeline: Pipeline, running_worker: Start
) -> None:
    job = await pipeline.add_job(sample(100 * KiB), sha256="0" * 64)
    async with running_worker():
        await pipeline.until_state(job, "failed")
    [failure] = pipeline.fails(job)
    assert failure.error == (
        "The file's chunks do not add up to the SHA-256 the uploader announced."
    )
    assert not failure.retryable
    info = await pipeline.info(job)
    assert (info.attempts, info.error) == (1, failure.error)  # attempts were left: not retried
    assert not pipeline.completes(job)


@server_with(max_attempts=2)
async def test_an_analyzer_error_fails_the_job_with_its_reason_after_its_attempts(
    pipeline: Pipeline, running_worker: Start
) -> None:
    job = await pipeline.add_job(sample(100 * KiB))
    async with running_worker("tests.engines.analyzers:fail") as running:
        await pipeline.until_state(job, "failed")
        failures = pipeline.fails(job)
        assert [(f.error, f.retryable) for f in failures] == [(ANALYZER_ERROR, True)] * 2
        info = await pipeline.info(job)
        assert (info.attempts, info.error) == (2, ANALYZER_ERROR)
        assert not pipeline.completes(job)
        # The worker serves on, with the same engine.
        sent = pipeline.wire.sent
        last_fail = max(n for n, s in enumerate(sent) if s.path == JOB_FAIL.format(job_id=job.id))
        await pipeline.until(
            lambda: any(s.path in LEASE_PATHS for s in sent[last_fail:]), "a lease asked for after"
        )
        assert running.engine.generation == 1


async def test_an_engine_crash_fails_the_job_and_the_engine_is_restarted(
    pipeline: Pipeline, running_worker: Start
) -> None:
    first = await pipeline.add_job(sample(200 * KiB))
    async with running_worker("tests.engines.analyzers:crash") as running:
        await pipeline.until_state(first, "failed")
        [failure] = pipeline.fails(first)
        assert failure.error == "The engine crashed (exit code 3) while analysing the file."
        assert failure.retryable
        await pipeline.until(lambda: running.engine.generation == 2, "the engine to restart")
        second = await pipeline.add_job(sample(50 * KiB))
        await pipeline.until_state(second, "failed")
        assert "The engine crashed (exit code 3)" in pipeline.fails(second)[0].error
        assert not running.task.done()


async def test_a_hung_engine_fails_the_job_after_the_timeout_and_is_restarted(
    pipeline: Pipeline, running_worker: Start, markers: Path
) -> None:
    job = await pipeline.add_job(sample(20 * KiB))
    async with running_worker("tests.engines.analyzers:hang", job_timeout=1.0) as running:
        await pipeline.until_state(job, "failed")
        assert (markers / f"{job.id}.hanging").exists()
        [failure] = pipeline.fails(job)
        assert failure.error == "The engine ran past the job timeout (1 s); it was restarted."
        assert failure.retryable  # a busy machine may be less busy on the next attempt
        await pipeline.until(lambda: running.engine.generation == 2, "a fresh engine")


@server_with(heartbeat_seconds=0.5)
async def test_waiting_for_the_uploader_does_not_count_against_the_timeout(
    pipeline: Pipeline, running_worker: Start, markers: Path
) -> None:
    data = sample(128 * KiB)
    job = await pipeline.add_job(data, stored=[0])
    async with running_worker(
        "tests.engines.analyzers:record_first_byte", job_timeout=0.5
    ) as running:
        await pipeline.until((markers / f"{job.id}.first-byte").exists, "the first chunk read")

        # Heartbeats come every 0.5 s from the lease on: three answered mean the analysis has
        # waited for chunk 1 for twice the job timeout at least.
        def beats() -> int:
            return sum(beat.status == 204 for beat in pipeline.heartbeats(job))

        await pipeline.until(lambda: beats() >= 3, "three heartbeats")
        assert await pipeline.state(job) == "leased"
        assert not pipeline.fails(job)
        await pipeline.store(job, 1)
        await pipeline.until_state(job, "done")
        assert running.engine.generation == 1
