"""Wake-ups across replicas through PostgreSQL LISTEN/NOTIFY: a publish on one wakes the waiters of
every other, and a lost connection — closed, or dead without a word — comes back by itself,
waking every waiter once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url
from tests.support.postgres import admin_url

from fap.server.queue.notify import Listener
from fap.server.queue.notify_pg import PgNotifier
from fap.server.store import libpq_dsn

WAIT = 5.0
# Checks of the quiet connection under test: often, so that the test takes a second, not ten.
CHECK_EVERY = 0.2
CHECK_TIMEOUT = 0.5


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


class FreezableProxy:
    """A TCP proxy on loopback to PostgreSQL that can go silent: ``freeze()`` stops it forwarding
    on the connections it holds, without closing them — a network partition, as the client sees
    one. Connections made afterwards pass again (the network healed)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._frozen: list[asyncio.Event] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> FreezableProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    def freeze(self) -> None:
        for frozen in self._frozen:
            frozen.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, upstream_writer]
        frozen = asyncio.Event()
        self._frozen.append(frozen)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink, frozen))
            self._tasks.add(task)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, frozen: asyncio.Event
    ) -> None:
        while data := await source.read(65536):
            if frozen.is_set():
                return  # silent from now on: the bytes go nowhere, the socket stays open
            sink.write(data)
            await sink.drain()
        sink.close()  # one side hung up: so does the other (a close is no silent death)


async def test_a_connection_that_dies_silently_is_noticed_within_seconds(pg_url: str) -> None:
    url = make_url(libpq_dsn(pg_url))
    async with FreezableProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        quiet = PgNotifier(through_proxy, check_every=CHECK_EVERY, check_timeout=CHECK_TIMEOUT)
        other = PgNotifier(libpq_dsn(pg_url))
        await quiet.open()
        await other.open()
        try:
            async with quiet.listen("later") as waiter:
                proxy.freeze()
                frozen_at = time.monotonic()
                # The reconnection wakes every waiter: wake-ups sent meanwhile were lost.
                assert await woken(waiter)
                assert time.monotonic() - frozen_at < CHECK_EVERY + CHECK_TIMEOUT + 2
                await until(lambda: quiet.connected)
                await other.publish("later")
                assert await woken(waiter)  # through the new connection
        finally:
            for notifier in (quiet, other):
                notifier.stop()
                await notifier.close()
