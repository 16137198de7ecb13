"""The worker's lifecycle: N slots, each with its own engine, and graceful and hard stops.

Each of ``concurrency`` slots owns an engine process and long-polls for a job that engine runs,
then works it to an end. One engine per slot, not one shared: an engine sees one file at a time
(an engine in any language need not handle concurrency), and an engine that crashes or hangs
takes down only its own job, never a neighbour's.

The first stop request ends leasing and lets jobs in flight finish (a drain); the second cancels
them, and their leases lapse back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import uuid
from collections.abc import Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

from fap import __version__
from fap.api import (
    LEASE,
    LEASES,
    MAX_LEASES,
    ApiSession,
    Lease,
    LeaseRequest,
    Leases,
    LeasesRequest,
    tls_context,
)
from fap.backoff import Backoff
from fap.config import WorkerSettings
from fap.errors import AuthError, ConfigError, ServerError, ServerUnreachable
from fap.worker.completions import CompletionSender
from fap.worker.engine_process import EngineProcess, start_engines
from fap.worker.job import Job, JobServices
from fap.worker.sandbox import Sandbox, sandbox_for

__all__ = ("Worker", "default_engine_command", "run_worker")

logger = logging.getLogger(__name__)

LEASE_POLL = 20.0  # how long the server may hold a lease request while no job is queued
# Jobs one slot works at once: one in its engine, the others delivering their results (sealing,
# storing, completing) — a few, should the server be slow to answer.
JOBS_PER_SLOT = 3
# Between failed lease requests; jittered, so workers cut off together come back apart.
_LEASE_RETRY = Backoff(first=0.5, cap=30.0)

# A lease of several brings jobs worth about this much of the engine's time, going by the jobs it
# took last: a quick engine gets a handful of small files per request, a slow one one at a time
# (each job leased is one no other processor can take meanwhile).
LEASE_ENGINE_SECONDS = 0.5
# And files of this many bytes in all, beyond the first job's.
LEASE_BYTES = 4 * 1024 * 1024
# Jobs one lease brings at most.
JOBS_PER_LEASE = min(8, MAX_LEASES)

T = TypeVar("T")


class LeasePace:
    """How many jobs a slot asks for at once: as many as its engine, at the pace of the jobs it
    took last, gets through in about LEASE_ENGINE_SECONDS; one until it has taken any."""

    def __init__(self) -> None:
        self.jobs = 1
        self._seconds: float | None = None  # the engine's time per job, a moving average

    def observe(self, seconds: Iterable[float | None]) -> None:
        for taken in seconds:
            if taken is None:
                continue  # ended before the engine answered: says nothing of its pace
            self._seconds = taken if self._seconds is None else 0.7 * self._seconds + 0.3 * taken
        if self._seconds is not None:
            fits = int(LEASE_ENGINE_SECONDS / max(self._seconds, 1e-3))
            self.jobs = max(1, min(JOBS_PER_LEASE, fits))


def default_engine_command() -> list[str]:
    """This installation's own ``fap engine``, run by the interpreter running the worker."""
    return [sys.executable, "-m", "fap", "engine"]


class Worker:
    def __init__(
        self,
        services: JobServices,
        engines: Sequence[EngineProcess],
        *,
        worker_id: str | None = None,
    ) -> None:
        self.services = services
        self.engines = list(engines)
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        self.outcomes: dict[str, int] = {}
        self._stopping = asyncio.Event()
        self._slots: list[asyncio.Task[None]] = []
        self._aborted = False
        self._several_leases = True  # until the server says it has no such route (an older one)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Lease no more jobs; let the jobs in flight finish."""
        self._stopping.set()
        for engine in self.engines:
            engine.retire()

    def abort(self) -> None:
        """Stop at once: jobs in flight are dropped and their leases lapse back to the queue."""
        self.stop()
        self._aborted = True
        for slot in self._slots:
            slot.cancel()

    async def run(self) -> bool:
        """Lease and work jobs until stopped; answer whether the stop was a hard one."""
        names = sorted({engine.name for engine in self.engines})
        logger.info(
            "Worker %s serving %s with %d slot(s).",
            self.worker_id,
            ", ".join(names),
            len(self.engines),
        )
        self._slots = [
            asyncio.create_task(self._slot(n, engine), name=f"slot-{n}")
            for n, engine in enumerate(self.engines)
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

    async def _slot(self, number: int, engine: EngineProcess) -> None:
        """Lease and work jobs for one engine: once the engine is done with a job, the next is
        leased while that one seals, stores and completes its result, so delivering costs the
        engine no time (up to ``JOBS_PER_SLOT`` jobs at once, when delivering is slow)."""
        running: set[asyncio.Task[None]] = set()
        try:
            await self._lease_for(number, engine, running)
            if running:  # stopping: the jobs in flight finish (a drain)
                _reap(await asyncio.wait(running))
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _lease_for(
        self, number: int, engine: EngineProcess, running: set[asyncio.Task[None]]
    ) -> None:
        failures = 0
        pace = LeasePace()
        while not self.stopping:
            if len(running) >= JOBS_PER_SLOT - 1 + pace.jobs:
                done = await self._unless_stopped(
                    asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                )
                if done is not None:
                    _reap(done)
                continue
            if await self._unless_stopped(engine.wait_ready()) is None:
                return
            try:
                leases = await self._unless_stopped(self._lease(engine.name, pace.jobs))
            except (ServerUnreachable, ServerError) as error:  # an AuthError is fatal: not here
                failures += 1
                delay = _LEASE_RETRY.delay(failures)
                logger.warning(
                    "Slot %d: no lease (%s); asking again in %.1f s.", number, error, delay
                )
                await self._unless_stopped(asyncio.sleep(delay))
                continue
            failures = 0
            if not leases:
                continue  # the long-poll ran out (or we are stopping): ask again
            jobs = [Job(lease, self.services, engine) for lease in leases]
            for job in jobs:  # each waits for the engine's turn, in the order leased
                task = asyncio.create_task(self._work(job), name=f"job-{job.lease.job_id}")
                running.add(task)
                task.add_done_callback(running.discard)
            # The next lease once the engine is free: a job never waits on a busy engine, where
            # an idle processor could have had it (beyond the few quick ones a lease brings).
            await self._unless_stopped(jobs[-1].engine_done.wait())
            pace.observe(job.engine_seconds for job in jobs)

    async def _work(self, job: Job) -> None:
        outcome = await job.run()
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    async def _lease(self, engine: str, jobs: int) -> list[Lease]:
        """Up to ``jobs`` leases (files of LEASE_BYTES in all, beyond the first); [] if none came.
        A new request id per request; the session resends this very body after a lost answer."""
        request_id = uuid.uuid4().hex
        session = self.services.session
        if self._several_leases:
            request = LeasesRequest(
                worker_id=self.worker_id,
                engines=[engine],
                max_jobs=jobs,
                max_bytes=LEASE_BYTES,
                timeout=LEASE_POLL,
                request_id=request_id,
                packs=True,  # ChunkStream reads a chunk out of its pack
            )
            try:
                leased = await session.call("POST", LEASES, request, returns=Leases)
                return [] if leased is None else leased.leases
            except ServerError as error:
                if not error.route_missing:
                    raise
                logger.info("The server leases one job at a time (it has no %s).", LEASES)
                self._several_leases = False
        single = LeaseRequest(
            worker_id=self.worker_id, engines=[engine], timeout=LEASE_POLL, request_id=request_id
        )
        lease = await session.call("POST", LEASE, single, returns=Lease)
        return [] if lease is None else [lease]

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


def _reap(waited: tuple[set[asyncio.Task[None]], set[asyncio.Task[None]]]) -> None:
    """Raise the error of a job that ended with one (a bug, or a refused token: fatal)."""
    for task in waited[0]:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error


def check_limits(settings: WorkerSettings) -> None:
    """The engine's limits make sense, or ConfigError says which does not."""
    if settings.engine_memory < 0 or settings.engine_cpu_seconds < 0:
        raise ConfigError("The engine's memory and CPU seconds must be 0 (no limit) or more.")
    if settings.result_max_bytes < 1 or settings.engine_max_processes < 0:
        raise ConfigError(
            "The result limit must be at least 1 byte, and engine_max_processes 0 (no limit) "
            "or more."
        )


async def engine_sandbox(settings: WorkerSettings) -> Sandbox:
    """The sandbox engines run in here; said once in the log when it is not the full one, or
    refused with ``require_sandbox``."""
    sandbox, missing = await sandbox_for(settings)
    if not sandbox.isolated:
        if settings.require_sandbox:
            raise ConfigError(
                f"The engine sandbox is required (--require-sandbox), but {missing}: "
                "install bubblewrap, or see fap work --check-sandbox."
            )
        logger.warning(
            "Engines run without a sandbox: %s. They get their rlimits alone: they can use the "
            "network and read whatever this user can%s. Install bubblewrap (Debian: apt-get "
            "install bubblewrap), or see fap work --check-sandbox.",
            missing,
            "; and as root no process limit holds" if os.geteuid() == 0 else "",
        )
    elif missing:
        logger.warning("The engine sandbox is not complete: %s.", missing)
    logger.info("Engines run in %s.", sandbox.describe())
    return sandbox


async def run_worker(settings: WorkerSettings) -> bool:
    """``fap work``: run until SIGTERM/SIGINT; answer whether the stop was a hard one."""
    if not settings.server:
        raise ConfigError("fap work needs the server's URL: pass --server URL or set FAP_SERVER.")
    if not settings.token:
        raise AuthError("fap work needs a processor token: set FAP_TOKEN.")
    if settings.concurrency < 1 or settings.prefetch_chunks < 1 or settings.job_timeout <= 0:
        raise ConfigError(
            "The worker's concurrency and prefetch_chunks must be at least 1, "
            "and its job_timeout more than 0 seconds."
        )
    check_limits(settings)
    command = list(settings.engine_command) or default_engine_command()
    sandbox = await engine_sandbox(settings)
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
        async with contextlib.AsyncExitStack() as stack:
            session = await stack.enter_async_context(
                ApiSession(
                    settings.server,
                    settings.token,
                    retry_for=settings.retry_for,
                    user_agent=f"fap-worker/{__version__}",
                )
            )
            blobs = await stack.enter_async_context(
                httpx.AsyncClient(
                    timeout=httpx.Timeout(60.0, connect=10.0),
                    limits=httpx.Limits(
                        max_connections=settings.concurrency * settings.prefetch_chunks + 4
                    ),
                    verify=tls_context(),
                )
            )
            engines = [
                EngineProcess(command, label=f"slot {n}", sandbox=sandbox)
                for n in range(settings.concurrency)
            ]
            for engine in engines:
                stack.push_async_exit(engine)  # stopped on the way out, whatever happens
            await start_engines(engines)
            completions = CompletionSender(session)
            stack.push_async_callback(completions.aclose)
            services = JobServices(
                session=session,
                blobs=blobs,
                executor=executor,
                prefetch=settings.prefetch_chunks,
                job_timeout=settings.job_timeout,
                completions=completions,
            )
            worker = Worker(services, engines)
            return await worker.run()
    except asyncio.CancelledError:
        if worker is not None:
            raise
        return True  # interrupted while starting
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        executor.shutdown(wait=False, cancel_futures=True)
