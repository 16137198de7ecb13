"""Wake-ups for long-polls, so a waiting request re-reads the store only when something changed.

A long-poll subscribes to its topics *before* it reads the state it waits on, then sleeps on the
subscription; a publish between the read and the sleep is therefore never lost (the event stays
set). Wake-ups are hints, not messages: after each one the waiter reads the store again.

:class:`LocalNotifier` serves one process. Several replicas on one PostgreSQL database share
wake-ups through LISTEN/NOTIFY (:class:`fap.server.queue.notify_pg.PgNotifier`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol, TypeVar

from fap.backoff import Backoff
from fap.server.errors import StoreUnavailable

__all__ = (
    "Listener",
    "LocalNotifier",
    "Notifier",
    "chunks_topic",
    "leases_topic",
    "long_poll",
    "queue_topic",
    "upload_topic",
)

T = TypeVar("T")

logger = logging.getLogger(__name__)

# How a held long-poll re-checks a store that is out of reach: soon, then every few seconds.
_RECHECK = Backoff(first=0.2, cap=3.0)


def queue_topic(org_id: str) -> str:
    """Published when a job of the organisation became leasable."""
    return f"queue:{org_id}"


def upload_topic(upload_id: str) -> str:
    """Published when an upload's job changed state: leased, requeued, done, failed."""
    return f"upload:{upload_id}"


def chunks_topic(upload_id: str) -> str:
    """Published when a chunk of the upload was stored, or its lease ended."""
    return f"chunks:{upload_id}"


def leases_topic() -> str:
    """Published when a job was leased: the sweeper learns there is a deadline to wait for."""
    return "leases"


class Listener(Protocol):
    async def wait(self, timeout: float | None) -> bool:
        """Return True on the next publish to one of the topics, False after ``timeout`` seconds
        (None: no timeout)."""


class Notifier(Protocol):
    @property
    def stopped(self) -> bool: ...

    async def open(self) -> None:
        """Connect whatever carries wake-ups between processes (nothing, for one process)."""

    async def close(self) -> None: ...

    def listen(self, *topics: str) -> AbstractAsyncContextManager[Listener]: ...

    async def publish(self, *topics: str) -> None:
        """Wake the waiters of ``topics``; call it after the change they wait for committed."""

    def stop(self) -> None:
        """Wake every waiter and end waits at once from now on: the server is shutting down."""


class _LocalListener:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self, timeout: float | None) -> bool:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
        # arrives as the event is set (a shutdown does both), and the waiter would never end.
        try:
            async with asyncio.timeout(timeout):
                await self.event.wait()
        except TimeoutError:
            return False
        finally:
            self.event.clear()
        return True


class LocalNotifier:
    """In-process topics; wake-ups reach every waiter of this process and no other."""

    def __init__(self) -> None:
        self._listeners: defaultdict[str, set[_LocalListener]] = defaultdict(set)
        self._stopped = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    @asynccontextmanager
    async def _listen(self, topics: tuple[str, ...]) -> AsyncIterator[Listener]:
        listener = _LocalListener()
        if self._stopped:
            listener.event.set()
        for topic in topics:
            self._listeners[topic].add(listener)
        try:
            yield listener
        finally:
            for topic in topics:
                waiting = self._listeners.get(topic)
                if waiting is not None:
                    waiting.discard(listener)
                    if not waiting:
                        del self._listeners[topic]

    def listen(self, *topics: str) -> AbstractAsyncContextManager[Listener]:
        return self._listen(topics)

    async def publish(self, *topics: str) -> None:
        self.wake(*topics)

    def wake(self, *topics: str) -> None:
        """Wake the waiters of ``topics`` in this process (what ``publish`` does here)."""
        for topic in topics:
            for listener in self._listeners.get(topic, ()):
                listener.event.set()

    def wake_all(self) -> None:
        """Wake every waiter once, to read the store again: wake-ups may have been missed."""
        for listeners in self._listeners.values():
            for listener in listeners:
                listener.event.set()

    def waiting(self, topic: str) -> int:
        """How many long-polls wait on ``topic`` now (for tests and metrics)."""
        return len(self._listeners.get(topic, ()))

    def stop(self) -> None:
        self._stopped = True
        self.wake_all()


async def long_poll(
    notifier: Notifier,
    topics: list[str],
    check: Callable[[], Awaitable[T | None]],
    timeout: float,
    *,
    abandoned: asyncio.Event | None = None,
) -> T | None:
    """Answer ``check()``'s first non-None result, re-checking after each wake-up, or None after
    ``timeout`` seconds, at once when the server is shutting down, or as soon as ``abandoned`` is
    set (the client hung up).

    ``abandoned`` ends the poll only where it waits, never in the middle of a ``check()``: a
    check is a store call, and one cut short would leave its connection half-way through a
    round trip. A check that has begun runs to its end and its answer is returned (a lease it
    took must be handed back by the caller).

    A first check that finds the store out of reach raises :class:`StoreUnavailable`; a later one
    does not end the poll, which checks again with backoff and raises only at its deadline.
    """
    deadline = time.monotonic() + timeout
    checks = outages = 0
    async with notifier.listen(*topics) as listener:
        while True:
            if abandoned is not None and abandoned.is_set():
                return None
            checks += 1
            try:
                result = await check()
            except StoreUnavailable:
                # The first check answers an outage at once (503: the caller retries). A poll
                # already held rides one out, checking again with backoff until its deadline:
                # a database restart ends no poll that outlives it.
                remaining = deadline - time.monotonic()
                if checks == 1 or remaining <= 0 or notifier.stopped:
                    raise
                outages += 1
                logger.debug("long-poll: the store is out of reach; checking again shortly")
                await _wait(listener, min(remaining, _RECHECK.delay(outages)), abandoned)
                continue
            if result is not None:
                return result
            outages = 0
            remaining = deadline - time.monotonic()
            if remaining <= 0 or notifier.stopped:
                return None
            await _wait(listener, remaining, abandoned)


async def _wait(listener: Listener, timeout: float, abandoned: asyncio.Event | None) -> None:
    if abandoned is None:
        await listener.wait(timeout)
    else:
        await _wait_unless(listener, timeout, abandoned)


async def _wait_unless(listener: Listener, timeout: float, abandoned: asyncio.Event) -> None:
    """``listener.wait(timeout)``, ended early once ``abandoned`` is set."""
    woken = asyncio.ensure_future(listener.wait(timeout))
    given_up = asyncio.ensure_future(abandoned.wait())
    try:
        await asyncio.wait((woken, given_up), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Both are waits on events, with nothing half-done to cut short.
        woken.cancel()
        given_up.cancel()
        await asyncio.gather(woken, given_up, return_exceptions=True)
