"""The lease sweeper: returns lapsed leases to the queue, waking only when one can have lapsed.

It does not poll. It sleeps until the earliest lease deadline it knows of; with nothing leased it
sleeps until a lease is announced (:func:`leases_topic`, from any replica) or the wake-ups reconnect,
so an idle server sends the database no query at all. A heartbeat needs no announcement: it only
moves a deadline later, and a sweeper that wakes at the old deadline reads the new one.

Every replica runs one. Each lapse is one conditional UPDATE on a row picked with
``FOR UPDATE SKIP LOCKED`` (see :meth:`Jobs.sweep`), so sweepers that wake together handle every
lapse exactly once. Sweeps are at least ``sweep_seconds`` apart, which bounds the work when many
deadlines fall close together and is the most a lapse waits past its deadline for that reason.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fap.backoff import Backoff
from fap.server.background import BackgroundTask
from fap.server.queue.notify import Notifier, leases_topic
from fap.server.store import Jobs, StoreUnavailable

__all__ = ("Sweeper",)

logger = logging.getLogger(__name__)

# While the database is out of reach: the first retry, and the longest wait between two.
_RETRY = Backoff(first=0.5, cap=10.0, jitter=False)


class Sweeper:
    def __init__(
        self,
        jobs: Jobs,
        notifier: Notifier,
        sweep: Callable[[], Awaitable[int]],
        interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._jobs = jobs
        self._notifier = notifier
        self._sweep = sweep
        self._interval = interval
        self._clock = clock
        self._task = BackgroundTask("fap-sweeper", self._run)

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        # Subscribed for the whole run, so an announcement between two looks is never missed.
        async with self._notifier.listen(leases_topic()) as wake_ups:
            due: float | None = self._clock()  # leases may have lapsed while no server ran
            last = float("-inf")
            failures = 0
            while True:
                wait = None if due is None else max(due, last + self._interval) - self._clock()
                if wait is not None and wait <= 0:
                    last = self._clock()
                    try:
                        await self._sweep()
                        due = await self._jobs.next_deadline()
                        failures = 0
                    except StoreUnavailable as error:
                        failures += 1
                        log = logger.warning if failures == 1 else logger.debug
                        log("sweeping lapsed leases: %s Trying again.", error)
                        due = self._clock() + _RETRY.delay(failures)
                    except Exception:
                        # Any other failure (SQLite busy for too long, say) must not end sweeping
                        # for good either.
                        failures += 1
                        logger.exception("sweeping lapsed leases failed; trying again")
                        due = self._clock() + _RETRY.delay(failures)
                    continue
                woken = await wake_ups.wait(wait)
                if woken and due is None:
                    due = self._clock()  # a lease somewhere: learn its deadline
