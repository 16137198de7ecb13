"""Lapsed leases: the sweeper requeues the job, and fails it after the last attempt with why."""

from __future__ import annotations

from pathlib import Path

from tests.unit.server.harness import Server, both_backends, running_server

from fap.api import JOB_FAIL, JOB_HEARTBEAT, UPLOAD, UploadInfo

pytestmark = both_backends


async def state(server: Server, upload_id: str) -> UploadInfo:
    return await server.ok(
        "GET", UPLOAD.format(upload_id=upload_id), server.owner, returns=UploadInfo
    )


async def test_a_live_lease_is_left_alone(server: Server) -> None:
    info = await server.upload(server.owner, b"x")
    assert await server.lease() is not None
    server.clock.advance(29)
    assert await server.services.queue.sweep() == 0
    assert (await state(server, info.id)).state == "leased"


async def test_a_lapsed_lease_returns_the_job_to_the_queue(server: Server) -> None:
    info = await server.upload(server.owner, b"x")
    assert await server.lease() is not None
    server.clock.advance(30)
    assert await server.services.queue.sweep() == 1
    requeued = await state(server, info.id)
    assert (requeued.state, requeued.attempts) == ("queued", 1)
    assert requeued.error == "The processor stopped answering (lease lapsed)."
    again = await server.lease()
    assert again is not None and again.attempt == 2


async def test_after_max_attempts_lapses_the_job_fails_saying_why(server: Server) -> None:
    info = await server.upload(server.owner, b"x")
    for _ in range(3):
        assert await server.lease() is not None
        server.clock.advance(31)
        assert await server.services.queue.sweep() == 1
    failed = await state(server, info.id)
    assert (failed.state, failed.attempts) == ("failed", 3)
    assert failed.error == "The processor stopped answering (lease lapsed) 3 times."
    assert failed.finished_at is not None
    assert await server.lease() is None


async def test_a_last_lapse_after_a_failure_names_both(server: Server) -> None:
    info = await server.upload(server.owner, b"x")
    for attempt in (1, 2):
        lease = await server.lease()
        assert lease is not None
        await server.call(
            "POST",
            JOB_FAIL.format(job_id=info.id),
            server.processor,
            {"lease_token": lease.lease_token, "error": f"Engine out of memory ({attempt})."},
        )
    assert await server.lease() is not None
    server.clock.advance(31)
    await server.services.queue.sweep()
    failed = await state(server, info.id)
    assert failed.state == "failed"
    assert failed.error is not None
    assert "lease lapsed" in failed.error and "Engine out of memory (2)" in failed.error


async def test_a_heartbeat_after_the_sweep_is_409(server: Server) -> None:
    info = await server.upload(server.owner, b"x")
    lease = await server.lease()
    assert lease is not None
    server.clock.advance(31)
    await server.services.queue.sweep()
    response = await server.call(
        "POST",
        JOB_HEARTBEAT.format(job_id=info.id),
        server.processor,
        {"lease_token": lease.lease_token},
    )
    assert response.status_code == 409


async def test_the_background_sweeper_requeues_and_wakes_a_waiting_worker(
    tmp_path: Path, db_url: str
) -> None:
    async with running_server(tmp_path / "data", db=db_url, sweep_seconds=0.02) as server:
        await server.upload(server.owner, b"x")
        first = await server.lease(worker_id="gone")
        assert first is not None
        server.clock.advance(31)
        # This long-poll gets the job only because the sweeper requeued it and woke the poll.
        second = await server.lease(worker_id="alive", timeout=5)
        assert second is not None
        assert (second.job_id, second.attempt) == (first.job_id, 2)
