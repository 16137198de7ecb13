"""Wake-ups across replicas through PostgreSQL LISTEN/NOTIFY: a publish on one wakes the waiters of
every other, and a lost connection comes back by itself, waking every waiter once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url
from tests.support.postgres import admin_url

from fap.server.notify import Listener
from fap.server.notify_pg import PgNotifier
from fap.server.store import libpq_dsn

WAIT = 5.0


@asynccontextmanager
async def replicas(pg_url: str, count: int = 2) -> AsyncIterator[list[PgNotifier]]:
    notifiers = [PgNotifier(libpq_dsn(pg_url)) for _ in range(count)]
    try:
        for notifier in notifiers:
            await notifier.open()
        yield notifiers
    finally:
        for notifier in notifiers:
            notifier.stop()
            await notifier.close()


async def woken(listener: Listener) -> bool:
    return await listener.wait(WAIT)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.01)


async def end_wakeup_connections(pg_url: str) -> int:
    """End the LISTEN connections on the database from the server side, as a restart would."""
    admin = await asyncpg.connect(admin_url())
    try:
        ended = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND application_name = 'fap-serve-wakeups'",
            make_url(pg_url).database,
        )
    finally:
        await admin.close()
    return len(ended)


async def test_a_publish_on_one_replica_wakes_a_waiter_on_another(pg_url: str) -> None:
    async with (
        replicas(pg_url) as (first, second),
        second.listen("queue:org") as waiter,
        second.listen("upload:x") as other,
    ):
        await first.publish("queue:org")
        assert await woken(waiter)
        assert not await other.wait(0.2)


async def test_a_replicas_own_publish_wakes_its_waiters_at_once(pg_url: str) -> None:
    async with replicas(pg_url, 1) as (only,), only.listen("t") as waiter:
        await only.publish("t")
        assert await waiter.wait(0)


async def test_many_topics_at_once_all_arrive(pg_url: str) -> None:
    topics = [f"upload:{n:032x}" for n in range(600)]  # several payloads' worth
    async with (
        replicas(pg_url) as (first, second),
        second.listen(topics[0]) as head,
        second.listen(topics[-1]) as tail,
    ):
        await first.publish(*topics)
        assert await woken(head)
        assert await woken(tail)


async def test_a_lost_connection_comes_back_and_wakes_every_waiter_once(pg_url: str) -> None:
    async with replicas(pg_url) as (first, second), second.listen("quiet") as waiter:
        assert await end_wakeup_connections(pg_url) == 2
        # Notifications sent while it was down are lost: every waiter reads the store again.
        assert await woken(waiter)
        await until(lambda: first.connected and second.connected)
        await first.publish("quiet")
        assert await woken(waiter)


async def test_a_publish_while_disconnected_is_sent_once_reconnected(pg_url: str) -> None:
    async with replicas(pg_url) as (first, second):
        await until(lambda: first.connected)
        async with second.listen("later") as waiter:
            await end_wakeup_connections(pg_url)
            await until(lambda: not first.connected)
            await woken(waiter)  # the wake-up of second's own reconnection
            await first.publish("later")
            assert await woken(waiter)
