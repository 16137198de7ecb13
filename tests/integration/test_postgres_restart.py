"""Restarting PostgreSQL mid-run: requests meanwhile are answered 503 (which clients and workers
retry), and once it is back the same two server processes, never restarted, carry on: long-polls
held through the outage are woken again, and every job, leased or queued before it, is finished.

The database restarts on a server of the test's own (``private_postgres``): restarting the shared
one would break every other test using it at that moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.support.fap_api import Api
from tests.support.long_polls import FOREVER, WOKEN_WITHIN, held_forever
from tests.support.postgres import PrivateServer, async_url, create_database
from tests.support.processes import ServerProcess

OTHER_ENGINE = "other@1"  # a job no worker takes before the outage


@dataclass
class Deployment:
    postgres: PrivateServer
    servers: list[ServerProcess]
    a: Api
    b: Api


@pytest.fixture
async def deployment(
    private_postgres: PrivateServer, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> AsyncIterator[Deployment]:
    admin = private_postgres.admin
    options = ("--db", async_url(admin, create_database(admin)))
    shared = tmp_path / "shared"
    env = held_forever(tmp_path / "home")  # a long-poll that answers was woken: see FOREVER
    servers = [start_server(*options, data_dir=shared, env=env) for _ in range(2)]
    async with httpx.AsyncClient() as http:
        a, b = (Api.of(http, server, servers[0]) for server in servers)
        yield Deployment(private_postgres, servers, a, b)


def unavailable(response: httpx.Response) -> str:
    """The sentence of a 503 answer, which must be an ErrorBody that says to retry."""
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status_code"] == 503
    assert response.headers["Retry-After"] == "1"
    detail: str = body["detail"]
    return detail


async def test_the_servers_recover_from_a_postgresql_restart_and_finish_every_job(
    deployment: Deployment,
) -> None:
    a, b = deployment.a, deployment.b
    pids = [server.pid for server in deployment.servers]
    await a.register_device()
    leased_job = await a.queue_empty_file("leased-before")
    lease = await a.lease("worker-1", 0)
    assert lease is not None and lease["job_id"] == leased_job
    queued_job = await b.queue_empty_file("queued-before", engine=OTHER_ENGINE)
    # Held open through the outage: a worker waiting on B, a client waiting on A for its result.
    waiting_worker = asyncio.create_task(b.lease("worker-2", FOREVER))
    waiting_client = asyncio.create_task(a.wait([leased_job], FOREVER))
    async with asyncio.timeout(10):
        while "worker-2" not in await a.workers():
            await asyncio.sleep(0.02)

    deployment.postgres.stop()
    try:
        during = [
            await a.heartbeat(lease),
            await b.call("GET", f"/v1/uploads/{queued_job}", b.owner),
            await a.call("POST", "/v1/uploads", a.owner, {"name": "x", "size": 0, "sha256": ""}),
        ]
        for response in during:
            assert "cannot reach its database" in unavailable(response)
    finally:
        deployment.postgres.start()

    # The lease survived the outage (it is shorter than the lease): its holder carries on.
    assert (await a.heartbeat(lease)).status_code == 204
    await a.finish(lease)
    async with asyncio.timeout(WOKEN_WITHIN):
        (finished,) = await waiting_client
    assert (finished["id"], finished["state"]) == (leased_job, "done")

    # Work queued now reaches the worker that waited through the outage, across replicas: woken,
    # since a poll of FOREVER cannot have timed out.
    new_job = await a.queue_empty_file("queued-after")
    async with asyncio.timeout(WOKEN_WITHIN):
        new_lease = await waiting_worker
    assert new_lease is not None and new_lease["job_id"] == new_job
    await b.finish(new_lease)

    other = await b.lease("worker-3", 0, engine=OTHER_ENGINE)
    assert other is not None and other["job_id"] == queued_job
    await b.finish(other)

    states = {job: (await b.upload(job))["state"] for job in (leased_job, queued_job, new_job)}
    assert set(states.values()) == {"done"}, states
    for server, pid in zip(deployment.servers, pids, strict=True):
        assert server.alive() and server.pid == pid
        assert "Traceback" not in server.log(), server.log()
