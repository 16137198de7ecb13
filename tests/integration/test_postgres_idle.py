"""Idle long-polls cost the database nothing: two replicas with workers and a client all waiting
send PostgreSQL no statement at all, and the lease sweeper sleeps as soon as nothing is leased.
The one exception is chosen: each replica checks its wake-up connection with a ``SELECT 1`` every
few seconds, so that one that died silently is noticed (fap.server.queue.notify_pg).

Measured with PostgreSQL's own statistics on a server of the test's own (``private_postgres``:
nothing else runs in it, not even autovacuum): pg_stat_statements counts every statement as it
ends, and pg_stat_activity shows when each session last did anything. (pg_stat_database would do
too, but a backend reports its counters to it up to 10 s late, which blurs a window of seconds.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.support.fap_api import Api
from tests.support.long_polls import FOREVER, WOKEN_WITHIN, held_forever
from tests.support.postgres import (
    PrivateServer,
    activity,
    async_url,
    create_database,
    statements,
)
from tests.support.processes import ServerProcess

# No statement for this long before the window opens (the sweeper's last look at the 1 s lease
# below comes within it), and none during the window.
QUIET_BEFORE = 2.0
WINDOW = 5.0
OTHER_ENGINE = "other@1"  # what the waiting client's job needs: no worker here runs it
# The wake-up connection's liveness check, as pg_stat_statements shows it, and its session.
LIVENESS_CHECK = "SELECT $1"
WAKEUPS = "fap-serve-wakeups"


@dataclass
class Replicas:
    a: Api
    b: Api
    admin: str
    database: str

    def statements(self) -> dict[str, int]:
        """Statements run so far, but the liveness checks of the wake-up connections."""
        counts = statements(self.admin, self.database)
        counts.pop(LIVENESS_CHECK, None)
        return counts

    def sessions(self) -> dict[int, tuple[str, str]]:
        """Every session, with when it last did anything; for the wake-up connections (checked
        every few seconds), only that they are still the same ones."""
        return {
            pid: (application, "" if application == WAKEUPS else changed)
            for pid, (application, changed) in activity(self.admin, self.database).items()
        }


@pytest.fixture
async def replicas(
    private_postgres: PrivateServer, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> AsyncIterator[Replicas]:
    admin = private_postgres.admin
    database = create_database(admin)
    # Long-polls held longer than the whole test, so none ends and asks again inside the
    # measurement, and one that answers afterwards was woken.
    env = held_forever(tmp_path / "home")
    options = ("--db", async_url(admin, database), "--lease-seconds", "1")
    options += ("--heartbeat-seconds", "0.5")
    shared = tmp_path / "shared"
    first = start_server(*options, data_dir=shared, env=env)
    second = start_server(*options, data_dir=shared, env=env)
    async with httpx.AsyncClient() as http:
        yield Replicas(Api.of(http, first, first), Api.of(http, second, first), admin, database)


async def until_quiet(replicas: Replicas) -> dict[str, int]:
    """Wait until no statement has run for QUIET_BEFORE seconds; answer the counts then."""
    deadline = time.monotonic() + 30
    counts, since = replicas.statements(), time.monotonic()
    while time.monotonic() - since < QUIET_BEFORE:
        await asyncio.sleep(0.2)
        now = replicas.statements()
        if now != counts:
            assert time.monotonic() < deadline, f"the servers never go quiet: {ran(counts, now)}"
            counts, since = now, time.monotonic()
    return counts


def ran(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The statements that ran between two counts, with how many times."""
    return {
        query: calls - before.get(query, 0)
        for query, calls in after.items()
        if calls != before.get(query, 0)
    }


async def test_idle_long_polls_cost_no_database_queries(replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    await a.register_device()
    # One job through its whole life first: leased (the sweepers learn of a deadline), finished.
    done = await a.queue_empty_file("warm-up")
    lease = await b.lease("warm-up-worker", 0)
    assert lease is not None and lease["job_id"] == done
    await b.finish(lease)

    # Then everyone waits: two workers on each replica, a client on A for a job none of them runs.
    client_job = await a.queue_empty_file("for-the-client", engine=OTHER_ENGINE)
    workers = {f"worker-{n}": (a, b)[n % 2] for n in range(4)}
    polls = [asyncio.create_task(api.lease(w, FOREVER)) for w, api in workers.items()]
    client = asyncio.create_task(a.wait([client_job], FOREVER))
    try:
        async with asyncio.timeout(10):
            while not set(workers) <= await a.workers():
                await asyncio.sleep(0.05)
        before = await until_quiet(replicas)
        sessions_before = replicas.sessions()
        await asyncio.sleep(WINDOW)  # the measurement itself: nothing may happen in it
        after = replicas.statements()
        assert ran(before, after) == {}
        assert replicas.sessions() == sessions_before
        assert not any(poll.done() for poll in [*polls, client])

        # The waiting was real: work arriving now wakes every one of them (a poll of FOREVER
        # that answers was woken).
        jobs = {await a.queue_empty_file(f"file-{n}") for n in range(len(workers))}
        async with asyncio.timeout(WOKEN_WITHIN):
            leases = await asyncio.gather(*polls)
        assert {lease["job_id"] for lease in leases if lease is not None} == jobs
        other = await b.lease("other-worker", 0, engine=OTHER_ENGINE)
        assert other is not None
        await b.finish(other)
        async with asyncio.timeout(WOKEN_WITHIN):
            (finished,) = await client
        assert finished["state"] == "done"
    finally:
        for task in [*polls, client]:
            task.cancel()  # only those a failed assertion left waiting
        await asyncio.gather(*polls, client, return_exceptions=True)
