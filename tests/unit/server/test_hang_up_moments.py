"""A hang-up may land at any moment of a long-poll, the middle of a store read included: the poll
is given up at its next wait, never cut off inside a store call. Cut off there, SQLAlchemy's own
closing of the connection is cancelled too and its pool logs an ERROR with a traceback — for a
client that did nothing wrong (and on PostgreSQL, where a read takes several turns of the loop).
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
import pytest
from tests.unit.server.harness import Server, both_backends
from tests.unit.server.test_hang_ups import asgi_call, long_polls, status_of

from fap.api import LEASE, LeaseRequest
from fap.server.problems import CLIENT_CLOSED_REQUEST
from fap.server.store import Upload

pytestmark = both_backends

# A hang-up this many turns of the event loop after the moment chosen, for each count up to it:
# a store read on PostgreSQL spans several turns, so some of these land inside one.
_TURNS = 40


async def turns(count: int) -> None:
    """Let the event loop run ``count`` times: a moment chosen by order of events, not by time."""
    for _ in range(count):
        await asyncio.sleep(0)


async def hang_up_after(
    server: Server, path: str, token: str, body: bytes, moment: asyncio.Event, count: int
) -> int:
    """Make the call, hang up ``count`` turns after ``moment``; answer the status it ended with."""
    gone = asyncio.Event()
    call = asyncio.create_task(asgi_call(server, path, token, body, hang_up=gone))
    await moment.wait()
    await turns(count)
    gone.set()
    return status_of(await call)


async def the_pool_still_serves(server: Server) -> None:
    """Every connection went back to the pool, and the pool answers a request that needs it."""
    info = await server.upload(server.owner, b"after the hang-ups")
    lease = await server.lease()
    assert lease is not None and lease.job_id == info.id
    pool = server.services.store.db.engine.pool
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_a_hang_up_at_any_moment_from_the_start_of_a_long_poll_logs_no_error(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """From the first turn on: the body read, the caller's token checked, the first store read."""
    started = asyncio.Event()
    started.set()
    for path, token, body, _ in await long_polls(server):
        for count in range(_TURNS):
            status = await hang_up_after(server, path, token, body, started, count)
            assert status == CLIENT_CLOSED_REQUEST, (path, count)
    assert not errors(caplog), caplog.text
    await the_pool_still_serves(server)


async def test_a_hang_up_while_a_woken_long_poll_reads_the_store_again_logs_no_error(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Each poll waits, is woken (nothing it waits for changed: it reads the store and waits on),
    and the client hangs up some turns after the wake-up: before, inside and after that read."""
    for path, token, body, topic in await long_polls(server):
        for count in range(_TURNS):
            waiting = asyncio.Event()
            call = asyncio.create_task(
                hang_up_after(server, path, token, body, waiting, count), name=path
            )
            await wait_for_poll(server, topic)
            await server.notifier.publish(topic)
            waiting.set()
            assert await call == CLIENT_CLOSED_REQUEST, (path, count)
            assert not server.notifier.waiting(topic)
    assert not errors(caplog), caplog.text
    await the_pool_still_serves(server)


async def test_a_job_leased_as_its_worker_hangs_up_is_handed_back_without_losing_an_attempt(
    server: Server, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hang-up lands while the lease is being taken: the lease is taken all the same (the
    store call runs to its end), then handed back at once, and the next worker gets attempt 1."""
    info = await server.upload(server.owner, b"a job for a worker that dies")
    jobs = server.services.store.jobs
    lease_in_store = jobs.lease_many
    gone = asyncio.Event()
    leased: list[Upload] = []

    async def hung_up_meanwhile(*args: object, **kwargs: object) -> list[Upload]:
        gone.set()  # the worker's connection drops while its lease is being taken
        taken = await lease_in_store(*args, **kwargs)  # type: ignore[arg-type]
        leased.extend(taken)
        return taken

    monkeypatch.setattr(jobs, "lease_many", hung_up_meanwhile)
    body = LeaseRequest(worker_id="dying", engines=["size@1"], timeout=60)
    sent = await asgi_call(server, LEASE, server.processor, msgspec.json.encode(body), hang_up=gone)
    assert status_of(sent) == CLIENT_CLOSED_REQUEST
    assert [job.id for job in leased] == [info.id]
    monkeypatch.undo()

    lease = await server.lease()
    assert lease is not None and lease.job_id == info.id and lease.attempt == 1
    assert not errors(caplog), caplog.text


async def wait_for_poll(server: Server, topic: str) -> None:
    """Until a long-poll waits on ``topic`` (polled by turns of the loop; a deadline, no measure)."""
    async with asyncio.timeout(30):
        while not server.notifier.waiting(topic):
            await asyncio.sleep(0.001)
