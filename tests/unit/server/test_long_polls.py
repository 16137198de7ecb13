"""Long-polls wait on wake-ups, not on the database: they answer as soon as what they wait for
happens, after their timeout otherwise, and at once when the server shuts down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

import pytest
from tests.unit.server.harness import CHUNK, Server, both_backends, running_server

from fap.api import JOB_CHUNKS, UPLOADS_WAIT, ChunkList, UploadList
from fap.server.auth import hash_token
from fap.server.queue.notify import chunks_topic, queue_topic, upload_topic

pytestmark = both_backends

T = TypeVar("T")

# The long-polls below ask to wait an hour, and the server lets them: one that answers within
# PROMPTLY cannot have been ended by its timeout, however slow the machine. (Its answer alone
# would not tell: a poll whose time runs out checks once more, and finds what a wake-up would.)
FOREVER = 3600.0
PROMPTLY = 60.0


@pytest.fixture
async def server(tmp_path: Path, db_url: str) -> AsyncIterator[Server]:
    async with running_server(tmp_path / "data", db=db_url, long_poll_seconds=FOREVER) as running:
        yield running


async def promptly(awaitable: Awaitable[T]) -> T:
    """The long-poll's answer, which must come long before its timeout could have ended it."""
    try:
        async with asyncio.timeout(PROMPTLY):
            return await awaitable
    except TimeoutError:
        pytest.fail(f"No answer within {PROMPTLY:g} s from a long-poll of {FOREVER:g} s.")


async def until_waiting(server: Server, topic: str) -> None:
    """Return once a long-poll waits on ``topic`` (a readiness check, not a guess of time)."""
    async with asyncio.timeout(PROMPTLY):
        while not server.notifier.waiting(topic):
            await asyncio.sleep(0.005)


async def timed(awaitable: Awaitable[T]) -> tuple[T, float]:
    start = time.monotonic()
    result = await awaitable
    return result, time.monotonic() - start


async def org_id(server: Server) -> str:
    owner = await server.services.store.credentials.resolve(
        hash_token(server.owner), server.clock()
    )
    assert owner is not None
    return owner.org.id


async def test_a_waiting_lease_is_woken_by_the_first_stored_chunk(server: Server) -> None:
    data = b"w" * (2 * CHUNK)
    created = await server.create_upload(server.owner, data)
    waiting = asyncio.create_task(promptly(server.lease(timeout=FOREVER)))
    await until_waiting(server, queue_topic(await org_id(server)))
    await server.send_chunk(server.owner, created, data, 0)
    lease = await waiting
    assert lease is not None and lease.job_id == created.upload.id


async def test_a_lease_with_nothing_to_do_answers_204_after_its_timeout(server: Server) -> None:
    lease, elapsed = await timed(server.lease(timeout=0.2))
    assert lease is None
    assert elapsed >= 0.19


async def test_a_long_poll_is_capped_at_the_servers_limit(tmp_path: Path, db_url: str) -> None:
    async with running_server(tmp_path / "data", db=db_url, long_poll_seconds=0.2) as server:
        assert await promptly(server.lease(timeout=FOREVER)) is None


async def test_a_waiting_chunk_list_is_woken_by_the_next_chunk(server: Server) -> None:
    data = b"c" * (2 * CHUNK)
    created = await server.create_upload(server.owner, data)
    await server.send_chunk(server.owner, created, data, 0)
    lease = await server.lease()
    assert lease is not None
    waiting = asyncio.create_task(
        promptly(
            server.ok(
                "POST",
                JOB_CHUNKS.format(job_id=lease.job_id),
                server.processor,
                {"lease_token": lease.lease_token, "after": 0, "timeout": FOREVER},
                returns=ChunkList,
            )
        )
    )
    await until_waiting(server, chunks_topic(lease.job_id))
    await server.send_chunk(server.owner, created, data, 1)
    listed = await waiting
    assert [chunk.seq for chunk in listed.chunks] == [1]


async def test_a_waiting_client_is_woken_when_its_upload_fails(server: Server) -> None:
    info = await server.upload(server.owner, b"doomed")
    lease = await server.lease()
    assert lease is not None
    waiting = asyncio.create_task(
        promptly(
            server.ok(
                "POST",
                UPLOADS_WAIT,
                server.owner,
                {"ids": [info.id], "timeout": FOREVER},
                returns=UploadList,
            )
        )
    )
    await until_waiting(server, upload_topic(info.id))
    await server.fail_job(lease, "Corrupt file.")
    waited = await waiting
    assert [u.state for u in waited.uploads] == ["failed"]


async def test_a_wait_for_finished_uploads_only_answers_those_alone(server: Server) -> None:
    doomed = await server.upload(server.owner, b"doomed")
    others = [await server.upload(server.owner, f"file {n}".encode()) for n in range(3)]
    ids = [info.id for info in (*others, doomed)]

    def waiting_for(timeout: float) -> Awaitable[UploadList]:
        body = {"ids": ids, "timeout": timeout, "finished_only": True}
        return server.ok("POST", UPLOADS_WAIT, server.owner, body, returns=UploadList)

    assert (await waiting_for(0.0)).uploads == []  # none finished: none to tell of
    lease = await server.lease()
    assert lease is not None and lease.job_id == doomed.id  # the oldest
    waiting = asyncio.create_task(promptly(waiting_for(FOREVER)))
    await until_waiting(server, upload_topic(doomed.id))
    await server.fail_job(lease, "Corrupt file.")
    waited = await waiting
    assert [(u.id, u.state) for u in waited.uploads] == [(doomed.id, "failed")]


async def test_shutting_down_ends_every_long_poll_at_once(server: Server) -> None:
    waiting = asyncio.create_task(promptly(server.lease(timeout=FOREVER)))
    await until_waiting(server, queue_topic(await org_id(server)))
    server.notifier.stop()
    assert await waiting is None
    # A long-poll that starts after the stop does not wait either.
    assert await promptly(server.lease(timeout=FOREVER)) is None
