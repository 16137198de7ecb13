"""Status: workers seen lately with their engines and live leases, jobs by state, queue depth."""

from __future__ import annotations

from tests.unit.server.harness import Server, both_backends

from fap.api import STATUS, StatusReport
from fap.server.queue.job_queue import SEEN_EVERY_SECONDS

pytestmark = both_backends


async def test_status_counts_jobs_and_lists_recent_workers(server: Server) -> None:
    for data in (b"1", b"2", b"3"):
        await server.upload(server.owner, data)
    await server.create_upload(server.owner, b"not sent yet")
    assert await server.lease(worker_id="busy", engines=["size@1", "magic@2"]) is not None
    assert await server.lease(worker_id="idle", engines=["other@1"]) is None

    report = await server.ok("GET", STATUS, server.owner, returns=StatusReport)
    assert report.jobs == {"pending": 1, "queued": 2, "leased": 1, "done": 0, "failed": 0}
    assert report.queue_depth == 2
    workers = {w.worker_id: w for w in report.workers}
    assert set(workers) == {"busy", "idle"}
    assert (workers["busy"].engines, workers["busy"].active_jobs) == (["size@1", "magic@2"], 1)
    assert workers["idle"].active_jobs == 0
    assert workers["busy"].last_seen == server.clock()


async def test_a_worker_silent_for_a_minute_is_no_longer_listed(server: Server) -> None:
    assert await server.lease(worker_id="gone") is None
    server.clock.advance(61)
    assert await server.lease(worker_id="here") is None
    report = await server.ok("GET", STATUS, server.owner, returns=StatusReport)
    assert [w.worker_id for w in report.workers] == ["here"]


async def test_status_is_per_organisation(server: Server) -> None:
    await server.upload(server.owner, b"ours")
    stranger, stranger_processor = await server.new_org("elsewhere")
    assert await server.lease(stranger_processor, worker_id="theirs") is None
    report = await server.ok("GET", STATUS, stranger, returns=StatusReport)
    assert report.queue_depth == 0
    assert [w.worker_id for w in report.workers] == ["theirs"]


async def test_a_worker_that_keeps_asking_is_written_down_once_every_few_seconds(
    server: Server,
) -> None:
    """A busy worker leases many jobs a second: its row is written when it was last written
    SEEN_EVERY_SECONDS ago or more, not once a lease — and it stays online all along."""
    jobs = server.services.store.jobs
    writes: list[float] = []
    see_worker = jobs.see_worker

    async def counted(*args: object, **kwargs: object) -> None:
        writes.append(server.clock())
        await see_worker(*args, **kwargs)  # type: ignore[arg-type]

    jobs.see_worker = counted  # type: ignore[method-assign]
    for _ in range(5):
        assert await server.lease(worker_id="busy") is None
    server.clock.advance(SEEN_EVERY_SECONDS)
    assert await server.lease(worker_id="busy") is None
    assert await server.lease(worker_id="busy", engines=["other@2"]) is None  # news: written

    assert len(writes) == 3
    report = await server.ok("GET", STATUS, server.owner, returns=StatusReport)
    assert [(w.worker_id, w.last_seen) for w in report.workers] == [("busy", server.clock())]
