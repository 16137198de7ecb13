"""The worker's lifecycle: its engine, N lease loops, graceful and hard stops.

Each of ``concurrency`` slots long-polls for a job whose engine this worker runs, then works it to
an end; a slot never holds two jobs. The first stop request ends leasing and lets jobs in flight
finish (a drain); the second cancels them, and their leases lapse back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import signal
import socket
import sys
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

from fap import __version__
from fap.api import LEASE, ApiSession, Lease, LeaseRequest
from fap.config import WorkerSettings
from fap.errors import AuthError, ConfigError, ServerError, ServerUnreachable
from fap.worker.engine_process import EngineProcess
from fap.worker.job import Job, JobServices

__all__ = ("Worker", "default_engine_command", "run_worker")

logger = logging.getLogger(__name__)

LEASE_POLL = 20.0  # how long the server may hold a lease request while no job is queued
MAX_BACKOFF = 30.0

T = TypeVar("T")


def default_engine_command() -> list[str]:
    """This installation's own ``fap engine``, run by the interpreter running the worker."""
    return [sys.executable, "-m", "fap", "engine"]


class Worker:
    def __init__(
        self,
        services: JobServices,
        *,
        concurrency: int,
        worker_id: str | None = None,
    ) -> None:
        self.services = services
        self.concurrency = max(1, concurrency)
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        self.outcomes: dict[str, int] = {}
        self._stopping = asyncio.Event()
        self._slots: list[asyncio.Task[None]] = []
        self._aborted = False

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Lease no more jobs; let the jobs in flight finish."""
        self._stopping.set()
        self.services.engine.retire()

    def abort(self) -> None:
        """Stop at once: jobs in flight are dropped and their leases lapse back to the queue."""
        self.stop()
        self._aborted = True
        for slot in self._slots:
            slot.cancel()

    async def run(self) -> bool:
        """Lease and work jobs until stopped; answer whether the stop was a hard one."""
        engine = self.services.engine
        logger.info(
            "Worker %s serving engine %s with %d slot(s).",
            self.worker_id,
            engine.name,
            self.concurrency,
        )
        self._slots = [
            asyncio.create_task(self._slot(n), name=f"slot-{n}") for n in range(self.concurrency)
        ]
        try:
            pending = set(self._slots)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if not task.cancelled() and (error := task.exception()) is not None:
                        raise error  # a fatal error (a refused token): every slot would hit it
        finally:
            for slot in self._slots:
                slot.cancel()
            await asyncio.gather(*self._slots, return_exceptions=True)
        logger.info("Worker %s stopped: %s.", self.worker_id, self._summary())
        return self._aborted

    async def _slot(self, number: int) -> None:
        failures = 0
        while not self.stopping:
            if not await self._unless_stopped(self.services.engine.wait_ready()):
                return
            try:
                lease = await self._unless_stopped(self._lease())
            except (ServerUnreachable, ServerError) as error:  # an AuthError is fatal: not here
                failures += 1
                delay = _backoff(failures)
                logger.warning(
                    "Slot %d: no lease (%s); asking again in %.1f s.", number, error, delay
                )
                await self._unless_stopped(asyncio.sleep(delay))
                continue
            failures = 0
            if lease is None:
                continue  # the long-poll ran out (or we are stopping): ask again
            outcome = await Job(lease, self.services).run()
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    async def _lease(self) -> Lease | None:
        request = LeaseRequest(
            worker_id=self.worker_id, engines=[self.services.engine.name], timeout=LEASE_POLL
        )
        return await self.services.session.call("POST", LEASE, request, returns=Lease)

    async def _unless_stopped(self, awaitable: Coroutine[Any, Any, T]) -> T | None:
        """The result of ``awaitable``, or None when stop() comes first (it is then cancelled).

        A lease request cut short this way may have been granted a job just then; that lease
        lapses and the job returns to the queue. Waiting out a 20 s long-poll on every Ctrl-C
        would cost more than that rare lapse.
        """
        task = asyncio.ensure_future(awaitable)
        stopped = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return task.result() if not task.cancelled() else None

    def _summary(self) -> str:
        if not self.outcomes:
            return "no jobs"
        return ", ".join(f"{count} {outcome}" for outcome, count in sorted(self.outcomes.items()))


async def run_worker(settings: WorkerSettings) -> bool:
    """``fap work``: run until SIGTERM/SIGINT; answer whether the stop was a hard one."""
    if not settings.server:
        raise ConfigError("fap work needs the server's URL: pass --server URL or set FAP_SERVER.")
    if not settings.token:
        raise AuthError("fap work needs a processor token: set FAP_TOKEN.")
    command = list(settings.engine_command) or default_engine_command()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    worker: Worker | None = None

    def on_signal(signum: signal.Signals) -> None:
        if worker is None:  # still starting: nothing to drain
            if main is not None:
                main.cancel()
        elif not worker.stopping:
            logger.info(
                "%s: leasing no more jobs; finishing the ones in flight (again to stop at once).",
                signum.name,
            )
            worker.stop()
        else:
            logger.warning(
                "%s again: stopping now; jobs in flight return to the queue.", signum.name
            )
            worker.abort()

    handled = (signal.SIGINT, signal.SIGTERM)
    for signum in handled:
        loop.add_signal_handler(signum, on_signal, signum)
    # Threads for checksums, decompression and sealing: CPU work that releases the GIL.
    executor = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="fap-work")
    try:
        async with (
            ApiSession(
                settings.server,
                settings.token,
                retry_for=settings.retry_for,
                user_agent=f"fap-worker/{__version__}",
            ) as session,
            httpx.AsyncClient(
                timeout=httpx.Timeout(60.0, connect=10.0),
                limits=httpx.Limits(
                    max_connections=settings.concurrency * settings.prefetch_chunks + 4
                ),
            ) as blobs,
            EngineProcess(command, max_connections=settings.concurrency) as engine,
        ):
            services = JobServices(
                session=session,
                blobs=blobs,
                engine=engine,
                executor=executor,
                prefetch=settings.prefetch_chunks,
                job_timeout=settings.job_timeout,
            )
            worker = Worker(services, concurrency=settings.concurrency)
            return await worker.run()
    except asyncio.CancelledError:
        if worker is not None:
            raise
        return True  # interrupted while starting
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        executor.shutdown(wait=False, cancel_futures=True)


def _backoff(failures: int) -> float:
    # Jittered, so that workers cut off together do not come back together.
    return float(min(MAX_BACKOFF, 0.25 * 2**failures) * (0.5 + random.random()))  # noqa: S311
