"""Two ``fap serve`` replicas on one PostgreSQL database: they start together without tripping over
each other, a change made through one wakes a long-poll held by the other at once (LISTEN/NOTIFY),
and many long-polls across both never get one job twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from tests.support.fap_api import Api
from tests.support.long_polls import FOREVER, WOKEN_WITHIN, held_forever
from tests.support.processes import ServerProcess


@pytest.fixture
async def replicas(
    pg_url: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> AsyncIterator[tuple[Api, Api]]:
    """Replicas A and B on one database, sharing a data directory for the local blob store."""
    shared = tmp_path / "shared"
    env = held_forever(tmp_path / "home")  # a long-poll that answers was woken: see FOREVER
    first = start_server("--db", pg_url, data_dir=shared, env=env)
    second = start_server("--db", pg_url, data_dir=shared, env=env)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=200)) as http:
        a, b = Api.of(http, first, first), Api.of(http, second, first)
        await a.register_device()
        yield a, b


async def until_seen(api: Api, *worker_ids: str) -> None:
    """Return once the workers' long-polls are under way (their leases record them as seen)."""
    async with asyncio.timeout(10):
        while not set(worker_ids) <= await api.workers():
            await asyncio.sleep(0.02)


def test_replicas_starting_together_on_a_new_database_both_come_up(
    pg_url: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    def start(n: int) -> ServerProcess:
        return start_server("--db", pg_url, data_dir=tmp_path / f"replica-{n}")

    with ThreadPoolExecutor(max_workers=3) as pool:
        servers = list(pool.map(start, range(3)))
    # One migrated and created organisation "local" (writing its tokens); the others found both.
    with_tokens = [s for s in servers if (s.data_dir / "local-owner.token").exists()]
    assert len(with_tokens) == 1
    token = with_tokens[0].owner_token
    for server in servers:
        me = httpx.get(f"{server.url}/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, server.log()


async def test_a_job_queued_through_one_replica_wakes_a_worker_waiting_on_the_other(
    replicas: tuple[Api, Api],
) -> None:
    a, b = replicas
    waiting = asyncio.create_task(b.lease("worker-on-b", FOREVER))
    await until_seen(a, "worker-on-b")
    job_id = await a.queue_empty_file("via-a")
    async with asyncio.timeout(WOKEN_WITHIN):
        lease = await waiting
    assert lease is not None and lease["job_id"] == job_id


async def test_a_client_waiting_on_one_replica_is_woken_by_a_result_recorded_on_the_other(
    replicas: tuple[Api, Api],
) -> None:
    a, b = replicas
    job_id = await a.queue_empty_file("waited-for")
    waiting = asyncio.create_task(a.wait([job_id], FOREVER))
    lease = await b.lease("worker-on-b", 0)
    assert lease is not None
    await b.finish(lease)
    async with asyncio.timeout(WOKEN_WITHIN):
        (upload,) = await waiting
    assert upload["state"] == "done"


async def test_many_long_polls_across_both_replicas_never_get_a_job_twice(
    replicas: tuple[Api, Api],
) -> None:
    a, b = replicas
    jobs = 40
    workers = [f"w{n}" for n in range(16)]

    async def work(api: Api, worker_id: str) -> list[str]:
        """Lease until a long-poll comes back empty: then every job is taken."""
        taken = []
        while (lease := await api.lease(worker_id, 3)) is not None:
            taken.append(lease["job_id"])
        return taken

    polls = [asyncio.create_task(work((a, b)[n % 2], w)) for n, w in enumerate(workers)]
    await until_seen(a, *workers)
    queued = await asyncio.gather(
        *(((a, b)[n % 2]).queue_empty_file(f"file-{n}") for n in range(jobs))
    )
    leased = [job for taken in await asyncio.gather(*polls) for job in taken]
    assert sorted(leased) == sorted(queued)  # each job once, none twice, none left behind
    assert {(await a.upload(job))["state"] for job in queued} == {"leased"}
