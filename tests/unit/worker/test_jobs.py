"""A worker's jobs, end to end against a fake server and a real engine process."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, suppress
from pathlib import Path

import pytest
from tests.unit.worker.conftest import Running
from tests.unit.worker.fake_server import FakeJob, FakeServer

from fap.crypto import open_sealed
from fap.transfer import sha256_hex

Start = Callable[..., AbstractAsyncContextManager[Running]]
KiB = 1024


def _data(size: int) -> bytes:
    """Half text, half noise: some chunks compress, some are stored raw."""
    text = b"".join(b"line %d of the test file\n" % n for n in range(size // 40 + 1))
    return (text[: size // 2] + os.urandom(size))[:size]


def _result(fake: FakeServer, job: FakeJob) -> dict[str, object]:
    assert job.result is not None
    opened: dict[str, object] = json.loads(open_sealed(job.result, fake.identity))
    return opened


async def test_a_job_is_streamed_to_the_engine_sealed_and_completed(
    fake: FakeServer, running_worker: Start
) -> None:
    data = _data(300 * KiB + 7)
    job = fake.add_job(data, chunk_size=64 * KiB)
    async with running_worker():
        await fake.until(lambda: job.state == "done", "the job to be done")
    result = _result(fake, job)
    assert result["bytes"] == len(data)
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    [complete] = job.completes
    assert job.result is not None
    assert complete.result_size == len(job.result)
    assert complete.result_sha256 == sha256_hex(job.result)
    assert not job.failures


async def test_the_engine_does_not_see_the_processor_token(
    fake: FakeServer, running_worker: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAP_TOKEN", "fap_processor_secret")
    job = fake.add_job(b"x")
    async with running_worker("tests.engines.analyzers:environment"):
        await fake.until(lambda: job.state == "done", "the job to be done")
    assert _result(fake, job) == {
        "FAP_TOKEN": False,
        "FAP_ENGINE_SOCKET": True,
        "FAP_TEST_MARKERS": True,
    }


async def test_an_empty_file_has_no_chunks_and_is_analyzed(
    fake: FakeServer, running_worker: Start
) -> None:
    job = fake.add_job(b"")
    async with running_worker():
        await fake.until(lambda: job.state == "done", "the empty file's job")
    assert _result(fake, job)["bytes"] == 0


async def test_the_engine_reads_the_first_chunk_before_the_last_is_stored(
    fake: FakeServer, running_worker: Start, markers: Path
) -> None:
    data = _data(256 * KiB)
    job = fake.add_job(data, chunk_size=64 * KiB, stored=[0])
    first_byte = markers / f"{job.id}.first-byte"
    async with running_worker("tests.engines.analyzers:record_first_byte"):
        await fake.until(first_byte.exists, "the engine to read the first chunk")
        assert job.stored == {0}  # the rest is still "uploading"
        fake.store(job, 1, 2, 3)
        await fake.until(lambda: job.state == "done", "the job to be done")
    assert _result(fake, job) == {"bytes": len(data)}


async def test_chunks_stored_out_of_order_reach_the_engine_in_order(
    fake: FakeServer, running_worker: Start
) -> None:
    data = _data(320 * KiB)
    job = fake.add_job(data, chunk_size=64 * KiB, stored=[2, 4])
    async with running_worker("tests.engines.analyzers:echo"):
        # Listed [2, 4]; still waiting for 0, the worker asks again after chunk -1.
        await fake.until(lambda: fake.chunk_lists.count((job.id, -1)) >= 2, "a second listing")
        fake.store(job, 3)
        fake.store(job, 0)
        fake.store(job, 1)
        await fake.until(lambda: job.state == "done", "the job to be done")
    result = _result(fake, job)
    assert result["read"] == len(data)
    assert result["sha256"] == hashlib.sha256(data).hexdigest()


async def test_an_expired_chunk_url_is_fetched_again(
    fake: FakeServer, running_worker: Start
) -> None:
    job = fake.add_job(_data(128 * KiB), chunk_size=64 * KiB)
    job.expired.add(1)
    async with running_worker():
        await fake.until(lambda: job.state == "done", "the job to be done")
    assert fake.chunk_gets.count((job.id, 1)) == 2


async def test_jobs_run_side_by_side_up_to_the_concurrency(
    fake: FakeServer, running_worker: Start, markers: Path
) -> None:
    jobs = [fake.add_job(_data(10 * KiB)) for _ in range(3)]
    async with running_worker("tests.engines.analyzers:wait_for_release", concurrency=2):
        for job in jobs[:2]:
            await fake.until((markers / f"{job.id}.read").exists, "two analyses at once")
        assert jobs[2].state == "queued"  # two slots, two jobs
        for job in jobs:
            (markers / f"{job.id}.release").touch()
        await fake.until(lambda: all(j.state == "done" for j in jobs), "every job done")


async def test_an_engine_crash_takes_down_only_its_own_job(
    fake: FakeServer, running_worker: Start, markers: Path
) -> None:
    # Each slot has an engine of its own: a neighbour's crash does not touch this analysis.
    steady = fake.add_job(_data(10 * KiB), name="steady.bin")
    async with running_worker("tests.engines.analyzers:by_name", concurrency=2):
        await fake.until((markers / f"{steady.id}.read").exists, "the steady analysis")
        doomed = fake.add_job(_data(10 * KiB), name="crash.bin")
        await fake.until(lambda: doomed.state == "failed", "the crashing job to fail")
        (markers / f"{steady.id}.release").touch()
        await fake.until(lambda: steady.state == "done", "the steady job to finish")
    assert "crashed" in doomed.failures[0].error


async def test_an_analyzer_error_fails_the_job_with_its_reason(
    fake: FakeServer, running_worker: Start
) -> None:
    job = fake.add_job(_data(100 * KiB))
    async with running_worker("tests.engines.analyzers:fail") as running:
        await fake.until(lambda: job.state == "failed", "the job to fail")
        [failure] = job.failures
        assert failure.error == (
            "The engine could not analyse the file: "
            "the analyzer raised ValueError: this analyzer always fails."
        )
        assert failure.retryable
        assert not job.completes
        # The worker serves on, with the same engine.
        asked = len(fake.lease_requests)
        await fake.until(lambda: len(fake.lease_requests) > asked, "the next lease request")
        assert running.engine.generation == 1


async def test_an_engine_crash_fails_the_job_and_the_engine_is_restarted(
    fake: FakeServer, running_worker: Start
) -> None:
    first = fake.add_job(_data(200 * KiB))
    async with running_worker("tests.engines.analyzers:crash") as running:
        await fake.until(lambda: first.state == "failed", "the first job to fail")
        assert first.failures[0].error == (
            "The engine crashed (exit code 3) while analysing the file."
        )
        assert first.failures[0].retryable
        await fake.until(lambda: running.engine.generation == 2, "the engine to be restarted")
        second = fake.add_job(_data(50 * KiB))
        await fake.until(lambda: second.state == "failed", "the second job to fail too")
        assert "The engine crashed (exit code 3)" in second.failures[0].error
        assert not running.task.done()


async def test_a_hung_engine_fails_the_job_after_the_timeout_and_is_restarted(
    fake: FakeServer, running_worker: Start, markers: Path
) -> None:
    job = fake.add_job(_data(20 * KiB))
    async with running_worker("tests.engines.analyzers:hang", job_timeout=1.0) as running:
        await fake.until(lambda: job.state == "failed", "the hung job to fail", timeout=30)
        assert (markers / f"{job.id}.hanging").exists()
        assert job.failures[0].error == (
            "The engine did not finish the analysis within 1 s; it was restarted."
        )
        await fake.until(lambda: running.engine.generation == 2, "a fresh engine")


async def test_waiting_for_the_uploader_does_not_count_against_the_timeout(
    fake: FakeServer, running_worker: Start, markers: Path
) -> None:
    data = _data(128 * KiB)
    job = fake.add_job(data, chunk_size=64 * KiB, stored=[0])
    async with running_worker(
        "tests.engines.analyzers:record_first_byte", job_timeout=0.5
    ) as running:
        await fake.until((markers / f"{job.id}.first-byte").exists, "the first chunk read")
        with suppress(TimeoutError):
            await fake.until(lambda: job.state != "leased", "nothing to happen", timeout=1.0)
        assert job.state == "leased"  # 1 s waiting for chunk 1 did not time the engine out
        fake.store(job, 1)
        await fake.until(lambda: job.state == "done", "the job to be done")
        assert running.engine.generation == 1


async def test_a_corrupted_chunk_fails_the_job_as_retryable(
    fake: FakeServer, running_worker: Start
) -> None:
    job = fake.add_job(_data(200 * KiB), chunk_size=64 * KiB)
    job.corrupt.add(2)
    async with running_worker():
        await fake.until(lambda: job.state == "failed", "the job to fail")
    [failure] = job.failures
    assert "does not match its checksum" in failure.error
    assert failure.retryable


async def test_a_file_unlike_the_one_announced_fails_for_good(
    fake: FakeServer, running_worker: Start
) -> None:
    job = fake.add_job(_data(100 * KiB), sha256="0" * 64)
    async with running_worker():
        await fake.until(lambda: job.state == "failed", "the job to fail")
    [failure] = job.failures
    assert failure.error == (
        "The file's chunks do not add up to the SHA-256 the uploader announced."
    )
    assert not failure.retryable
    assert not job.completes


async def test_a_lost_lease_stops_the_job_without_completing_or_failing_it(
    fake: FakeServer, running_worker: Start, markers: Path
) -> None:
    fake.heartbeat_seconds = 0.5
    job = fake.add_job(_data(20 * KiB))
    async with running_worker("tests.engines.analyzers:wait_for_release") as running:
        await fake.until((markers / f"{job.id}.read").exists, "the engine to read the file")
        fake.take_lease(job)
        await fake.until(lambda: running.worker.outcomes.get("lost") == 1, "the job to stop")
        (markers / f"{job.id}.release").touch()
    assert not job.completes
    assert not job.failures


async def test_stop_drains_the_job_in_flight_and_leases_no_more(
    fake: FakeServer, running_worker: Start, markers: Path
) -> None:
    job = fake.add_job(_data(20 * KiB))
    waiting = fake.add_job(_data(20 * KiB))
    async with running_worker("tests.engines.analyzers:wait_for_release") as running:
        await fake.until((markers / f"{job.id}.read").exists, "the engine to read the file")
        running.worker.stop()
        asked = len(fake.lease_requests)
        (markers / f"{job.id}.release").touch()
        assert await running.task is False  # a graceful stop
        assert len(fake.lease_requests) == asked
    assert job.state == "done"
    assert waiting.state == "queued"


async def test_abort_drops_the_job_in_flight(
    fake: FakeServer, running_worker: Start, markers: Path
) -> None:
    job = fake.add_job(_data(20 * KiB))
    async with running_worker("tests.engines.analyzers:wait_for_release") as running:
        await fake.until((markers / f"{job.id}.read").exists, "the engine to read the file")
        running.worker.abort()
        assert await running.task is True  # a hard stop
    assert job.state == "leased"  # its lease lapses on the server
    assert not job.completes


async def test_the_worker_keeps_asking_a_server_that_does_not_answer(
    fake: FakeServer, running_worker: Start
) -> None:
    fake.unreachable_leases = 2
    job = fake.add_job(_data(10 * KiB))
    async with running_worker():
        await fake.until(lambda: job.state == "done", "the job, once the server answers")
    assert len(fake.lease_requests) > 2
