"""Wake-ups across server replicas: PostgreSQL LISTEN/NOTIFY on one channel.

Every replica holds one connection of its own, outside the pool, that LISTENs on :data:`CHANNEL`.
A publish wakes this replica's waiters at once and sends the topics as NOTIFY payloads for the
others. One channel serves every topic: channel names are identifiers (63 bytes at most), and a
LISTEN per long-poll would cost a round trip each. Publishes come after the change they announce
committed, so a replica woken by one reads the change. Waiting costs almost nothing: an idle
replica sends one ``SELECT 1`` every few seconds on that connection, and nothing else.

Wake-ups are hints to read the store again, never messages. When the connection breaks (the
database restarted, say) it is opened again with backoff; every waiter of this replica is then
woken once, since notifications sent meanwhile are lost, and topics this replica could not send are
sent after the reconnection.

That ``SELECT 1`` is how a connection that dies silently is noticed: a network partition, a
database host that vanished, a proxy that hangs — no FIN, no reset, and a LISTEN connection
waits quietly, so the kernel would notice only after many minutes, if ever. A check that gets no
answer within :data:`_CHECK_TIMEOUT` seconds (as a send that gets none) ends the connection: it
is opened again, and every waiter is woken to read the store, a wake-up may have been lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager

import asyncpg
from asyncpg.connection import Connection
from asyncpg.pool import PoolConnectionProxy

from fap.backoff import Backoff
from fap.server.background import BackgroundTask
from fap.server.queue.notify import Listener, LocalNotifier
from fap.server.store import StoreUnavailable, store_unavailable

__all__ = ("CHANNEL", "PgNotifier")

logger = logging.getLogger(__name__)

CHANNEL = "fap_wakeups"
# A payload that wakes every waiter: sent instead of topics when too many piled up unsent.
_EVERYONE = "*"
_MAX_PENDING = 1000
# PostgreSQL refuses payloads of 8000 bytes or more; topics are joined by spaces up to this.
_MAX_PAYLOAD = 7000
_SEND = "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload"
_CONNECT_TIMEOUT = 10.0
# Reconnections start at once (a restart is usually over in a moment) and wait up to 5 s, so a
# database that comes back is noticed within seconds; jittered, as every replica lost it together.
_RECONNECT = Backoff(first=0.1, cap=5.0)
_APPLICATION_NAME = "fap-serve-wakeups"
# An idle connection is checked this often, and a check or a send must be answered within the
# timeout: a silent death is noticed within about their sum. A healthy database on any network a
# server should use answers in milliseconds; 5 s rides out a loaded one without false alarms.
_CHECK_EVERY = 5.0
_CHECK_TIMEOUT = 5.0
_CHECK = "SELECT 1"
# Errors of a connection that broke or could not be made (TimeoutError is an OSError).
_BROKEN = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class PgNotifier:
    """Wake-ups shared by every replica on one PostgreSQL database."""

    def __init__(
        self,
        dsn: str,
        *,
        check_every: float = _CHECK_EVERY,
        check_timeout: float = _CHECK_TIMEOUT,
    ) -> None:
        self._dsn = dsn
        self._check_every = check_every
        self._check_timeout = check_timeout
        self._local = LocalNotifier()
        self._connection: Connection | None = None
        self._own_pid = 0
        self._pending: set[str] = set()
        # Set by a publish and by a broken connection: the task below has something to do.
        self._attention = asyncio.Event()
        self._task = BackgroundTask("fap-wakeups", self._run)

    @property
    def stopped(self) -> bool:
        return self._local.stopped

    @property
    def connected(self) -> bool:
        return self._connection is not None

    async def open(self) -> None:
        """Connect and LISTEN; raises StoreUnavailable if the database is out of reach."""
        await self._connect()
        self._task.start()

    async def close(self) -> None:
        await self._task.stop()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.remove_termination_listener(self._on_terminated)
            try:
                await asyncio.wait_for(connection.close(), _CONNECT_TIMEOUT)
            except _BROKEN:
                connection.terminate()

    def listen(self, *topics: str) -> AbstractAsyncContextManager[Listener]:
        return self._local.listen(*topics)

    async def publish(self, *topics: str) -> None:
        self._local.wake(*topics)
        self._pending.update(topics)
        if len(self._pending) > _MAX_PENDING:
            self._pending = {_EVERYONE}
        self._attention.set()

    def waiting(self, topic: str) -> int:
        """How many long-polls of this replica wait on ``topic`` now (for tests and metrics)."""
        return self._local.waiting(topic)

    def stop(self) -> None:
        self._local.stop()

    async def _run(self) -> None:
        """Send what was published; open the connection again whenever it breaks."""
        failures = 0
        while True:
            if self._connection is None:
                await asyncio.sleep(_RECONNECT.delay(failures + 1))
                try:
                    await self._connect()
                except StoreUnavailable as error:
                    failures += 1
                    log = logger.warning if failures == 1 else logger.debug
                    log("wake-ups: %s Trying again.", error)
                    continue
                failures = 0
                logger.info("wake-ups: connected again; every waiter reads the store once more")
                self._local.wake_all()
                continue
            connection = self._connection
            try:
                async with asyncio.timeout(self._check_every):
                    await self._attention.wait()
            except TimeoutError:
                # Quiet for a while: is anyone still there? (Sends answer that too, when there are.)
                if connection is self._connection:
                    await self._check(connection)
                continue
            self._attention.clear()
            if self._connection is not None and self._pending:
                await self._send(self._connection)

    async def _check(self, connection: Connection) -> None:
        """Ask the database for an answer: a connection that gives none in time is dead."""
        try:
            await connection.execute(_CHECK, timeout=self._check_timeout)
        except TimeoutError:
            logger.warning(
                "wake-ups: the database did not answer within %g s; reconnecting",
                self._check_timeout,
            )
            self._drop()
        except _BROKEN as error:
            logger.warning(
                "wake-ups: the connection to the database broke (%s); reconnecting", error
            )
            self._drop()

    async def _send(self, connection: Connection) -> None:
        topics, self._pending = self._pending, set()
        try:
            await connection.execute(
                _SEND, CHANNEL, list(_payloads(topics)), timeout=self._check_timeout
            )
        except _BROKEN as error:  # TimeoutError included: no answer in time
            reason = str(error) or f"no answer within {self._check_timeout:g} s"
            logger.warning("wake-ups: sending failed (%s); sending again once reconnected", reason)
            self._pending |= topics
            self._drop()

    async def _connect(self) -> None:
        try:
            connection = await asyncpg.connect(
                self._dsn,
                timeout=_CONNECT_TIMEOUT,
                server_settings={"application_name": _APPLICATION_NAME},
            )
        except _BROKEN as error:
            raise store_unavailable(error) from error
        try:
            await connection.add_listener(CHANNEL, self._on_notification)
        except _BROKEN as error:
            connection.terminate()
            raise store_unavailable(error) from error
        connection.add_termination_listener(self._on_terminated)
        self._own_pid = connection.get_server_pid()
        self._connection = connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.remove_termination_listener(self._on_terminated)
            # Closing politely would need the server; a broken connection just goes.
            with contextlib.suppress(*_BROKEN):
                connection.terminate()

    def _on_terminated(self, connection: Connection | PoolConnectionProxy) -> None:
        if connection is self._connection:
            logger.warning("wake-ups: the connection to the database was lost; reconnecting")
            self._drop()
            self._attention.set()

    def _on_notification(
        self, connection: Connection | PoolConnectionProxy, pid: int, channel: str, payload: object
    ) -> None:
        if pid == self._own_pid:
            return  # this replica's own publish: its waiters were woken already
        text = str(payload)
        if text == _EVERYONE:
            self._local.wake_all()
        else:
            self._local.wake(*text.split())


def _payloads(topics: Iterable[str]) -> Iterable[str]:
    """``topics`` joined by spaces into payloads under PostgreSQL's limit (topics hold none)."""
    batch: list[str] = []
    size = 0
    for topic in sorted(topics):
        if batch and size + 1 + len(topic) > _MAX_PAYLOAD:
            yield " ".join(batch)
            batch, size = [], 0
        batch.append(topic)
        size += 1 + len(topic)
    if batch:
        yield " ".join(batch)
