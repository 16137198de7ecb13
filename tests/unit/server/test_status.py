"""Status: workers seen lately with their engines and live leases, jobs by state, queue depth."""

from __future__ import annotations

from tests.unit.server.harness import Server, both_backends

from fap.api import STATUS, StatusReport

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
