"""One leased job: heartbeat, stream the file to the engine, seal the result, complete — or fail.

The lease token fences every call: once the server answers 409 the lease is someone else's, and
this job stops at once without completing or failing anything.

While the engine works, a watch reads the kernel's figures of its sandbox (``usage.py``): what
the engine used goes to the server with the completion or the failure, and a failure the engine's
limits explain is reported as the limit it hit (``limits.py``), for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Literal

import httpx

from fap.api import (
    JOB_COMPLETE,
    JOB_FAIL,
    JOB_HEARTBEAT,
    JOB_RESULT_URL,
    MAX_INLINE_RESULT,
    ApiSession,
    CompleteRequest,
    FailRequest,
    Heartbeat,
    JobCompletion,
    Lease,
    ResultUrl,
    ResultUrlRequest,
)
from fap.api.messages import EngineUsage
from fap.crypto import seal
from fap.errors import (
    ConflictError,
    EngineError,
    InputError,
    IntegrityError,
    ServerError,
    ServerUnreachable,
)
from fap.transfer import Retries, put_bytes, sha256_hex
from fap.worker.chunks import ChunkStream
from fap.worker.completions import CompletionSender
from fap.worker.engine_client import EngineConnectionLost, ResultTooLarge
from fap.worker.engine_process import EngineProcess
from fap.worker.limits import EngineLimits, LimitExceeded, upper_first
from fap.worker.usage import JobWatch

__all__ = ("Job", "JobServices", "Outcome")

logger = logging.getLogger(__name__)

# done: result stored; failed: reported as failed; lost: the lease went to someone else;
# abandoned: the server could not be told, so the lease lapses and the job returns to the queue.
Outcome = Literal["done", "failed", "lost", "abandoned"]

MiB = 1024 * 1024

# A job leased while its engine restarts waits this long for it before failing.
ENGINE_WAIT = 120.0


class FileMismatch(IntegrityError):
    """Every chunk matched its checksum, yet the whole file does not match the uploader's: the
    stored chunks themselves are wrong, and another attempt would read the same ones."""


@dataclass(frozen=True)
class JobServices:
    """What every job of a worker shares."""

    session: ApiSession
    blobs: httpx.AsyncClient  # presigned GETs and PUTs only: no credentials on it
    executor: Executor  # checksums, decompression, sealing: never on the event loop
    prefetch: int
    job_timeout: float
    # How the object store is retried; a job retries it on for as long as it holds its lease.
    blob_retries: Retries = field(default_factory=Retries)
    # Where small results go with their completions; None: each job completes on its own.
    completions: CompletionSender | None = None


class Job:
    def __init__(self, lease: Lease, services: JobServices, engine: EngineProcess) -> None:
        self.lease = lease
        self._services = services
        self._engine = engine
        self._lease_lost = False
        self._started = time.monotonic()
        self._first_byte: float | None = None
        self._sent = 0
        # Until when the lease is surely ours: its term from the last heartbeat that succeeded
        # (from the start, the lease's own). While it is, an object store that does not answer
        # is waited out: giving up would let the lease lapse and cost the job an attempt for an
        # outage that is no fault of the job's, again and again for as long as the outage lasts.
        self._held_until = time.monotonic() + lease.lease_seconds
        self._blob_retries = dataclasses.replace(services.blob_retries, go_on=self._holds_lease)
        self._watch: JobWatch | None = None
        # Set once the engine is done with this job (or the job ended before it got there): the
        # slot may lease the next job while this one delivers its result.
        self.engine_done = asyncio.Event()
        # How long the engine took over it, once it answered (for how many jobs to lease at once).
        self.engine_seconds: float | None = None

    def _holds_lease(self) -> bool:
        return time.monotonic() < self._held_until

    async def run(self) -> Outcome:
        lease = self.lease
        logger.info(
            "Job %s attempt %d: %r, %d bytes in %d chunks.",
            lease.job_id,
            lease.attempt,
            lease.file.name,
            lease.file.size,
            lease.chunk_count,
        )
        work = asyncio.create_task(self._work())
        beat = asyncio.create_task(self._heartbeat(work))
        try:
            outcome = await work
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._lease_lost or (task is not None and task.cancelling()):
                raise  # cancelled from outside: the worker is stopping at once
            outcome = "lost"
        finally:
            self.engine_done.set()
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        first = "-" if self._first_byte is None else f"{self._first_byte - self._started:.2f} s"
        usage = self._usage()
        used = (
            f"; the engine used {usage.cpu_seconds:.2f} s of CPU and "
            f"{usage.peak_memory_bytes / MiB:.1f} MiB of memory at most"
            if usage is not None
            else ""
        )
        logger.info(
            "Job %s attempt %d: %s after %.2f s (%d bytes to the engine, the first after %s)%s.",
            lease.job_id,
            lease.attempt,
            outcome,
            time.monotonic() - self._started,
            self._sent,
            first,
            used,
        )
        return outcome

    def _usage(self) -> EngineUsage | None:
        """What the engine used on this job, once it had the file."""
        return self._watch.usage() if self._watch is not None else None

    async def _work(self) -> Outcome:
        try:
            result = await self._analyze()
            await self._deliver(result)
        except ConflictError as error:
            self._log_lost(error)
            return "lost"
        except (FileMismatch, InputError, LimitExceeded) as error:
            # For good: the same chunks, the same missing device key, the same limit hit again.
            return await self._fail(str(error), retryable=False)
        except (EngineError, IntegrityError, ServerError) as error:
            return await self._fail(str(error), retryable=True)
        except ServerUnreachable as error:
            logger.error(
                "Job %s attempt %d: %s Its lease will lapse and the job return to the queue.",
                self.lease.job_id,
                self.lease.attempt,
                error,
            )
            return "abandoned"
        return "done"

    async def _analyze(self) -> bytes:
        """Stream the file to the engine, once it is this job's turn; answer its JSON result."""
        try:
            async with self._engine.turn:
                began = time.monotonic()
                result = await self._analyze_in_turn()
                self.engine_seconds = time.monotonic() - began
                return result
        finally:
            self.engine_done.set()

    async def _analyze_in_turn(self) -> bytes:
        services, lease, engine = self._services, self.lease, self._engine
        try:
            generation = await asyncio.wait_for(engine.wait_ready(), ENGINE_WAIT)
        except TimeoutError:
            raise EngineError(
                f"The engine was not running for {ENGINE_WAIT:g} s; it is being restarted."
            ) from None
        limits = dataclasses.replace(
            engine.sandbox.limits if engine.sandbox is not None else EngineLimits(),
            job_timeout=services.job_timeout,
        )
        watch = self._watch = JobWatch(engine.tracked(generation), limits, services.executor)
        await watch.begin()
        stream = ChunkStream(
            session=services.session,
            blobs=services.blobs,
            executor=services.executor,
            job_id=lease.job_id,
            lease_token=lease.lease_token,
            chunk_count=lease.chunk_count,
            prefetch=services.prefetch,
            retries=self._blob_retries,
            listed=lease.chunks,
        )

        async def stop_for_cpu() -> None:
            await engine.restart(generation, limits.cpu_hit(), at_once=True)

        try:
            async with (
                asyncio.timeout(services.job_timeout) as timer,
                watch.watching(stop_for_cpu),
            ):
                return await engine.client.analyze(lease.file, self._body(stream, timer))
        except TimeoutError:
            if not timer.expired():
                raise
            # Out of time, perhaps because a limit held the engine up (a fork bomb at its limit
            # keeps trying): then that limit is the reason.
            hit = await watch.verdict()
            if hit is not None:
                await engine.restart(generation, hit, at_once=True)
                raise LimitExceeded(f"{upper_first(hit)}; it was restarted.") from None
            reason = limits.timeout_hit()
            await engine.restart(generation, reason)
            raise EngineError(f"{upper_first(reason)}; it was restarted.") from None
        except ResultTooLarge as error:
            raise LimitExceeded(f"{upper_first(limits.result_hit())}.") from error
        except EngineConnectionLost as error:
            ended = await engine.exit_reason(generation)
            if ended is None:
                raise
            hit = await watch.verdict(signal=engine.exit_signal(generation) or "")
            if hit is not None:
                raise LimitExceeded(f"{upper_first(hit)} while analysing the file.") from error
            raise EngineError(f"{upper_first(ended)} while analysing the file.") from error
        except EngineError as error:
            # The engine answered with an error: its own account of a limit it hit (a failed
            # allocation, a fork refused), or nothing to do with one.
            hit = await watch.verdict(error=str(error))
            if hit is None:
                raise
            # Restarted at once: what is left of it (processes, a fragmented heap) helps no job.
            await engine.restart(generation, hit, at_once=True)
            raise LimitExceeded(f"{upper_first(hit)}. {error}") from error
        finally:
            await watch.end()
            await stream.aclose()

    async def _body(self, stream: ChunkStream, timer: asyncio.Timeout) -> AsyncIterator[bytes]:
        """The request body for the engine: the file's bytes, checked as a whole at the end."""
        file = self.lease.file
        loop = asyncio.get_running_loop()
        digest = hashlib.sha256()
        chunks = stream.chunks()
        try:
            while True:
                # Time spent waiting for the uploader or the object store is not the engine's:
                # the job timeout is for an engine that hangs, not for a slow upload. So the
                # clock stops while the next chunk is awaited.
                deadline = timer.when()
                left = None if deadline is None else deadline - loop.time()
                timer.reschedule(None)
                try:
                    raw = await anext(chunks)
                except StopAsyncIteration:
                    break
                finally:
                    timer.reschedule(None if left is None else loop.time() + left)
                await loop.run_in_executor(self._services.executor, digest.update, raw)
                if self._first_byte is None:
                    self._first_byte = time.monotonic()
                self._sent += len(raw)
                yield raw
        finally:
            await chunks.aclose()
        # Raised before the body ends, so the engine sees a broken request, never a whole one.
        if self._sent != file.size:
            raise FileMismatch(
                f"The file's chunks hold {self._sent} bytes where the uploader announced "
                f"{file.size}."
            )
        if digest.hexdigest() != file.sha256:
            raise FileMismatch(
                "The file's chunks do not add up to the SHA-256 the uploader announced."
            )

    async def _deliver(self, result: bytes) -> None:
        """Seal the result for the uploader's devices, store it, and complete the job: a small
        result goes with its completion (and many jobs' completions in one request), a larger one
        to a presigned PUT of its own."""
        services, lease = self._services, self.lease
        loop = asyncio.get_running_loop()
        sealed = await loop.run_in_executor(services.executor, seal, result, lease.recipients)
        sender = services.completions
        if sender is not None and sender.supported and len(sealed) <= MAX_INLINE_RESULT:
            completion = JobCompletion(
                job_id=lease.job_id,
                lease_token=lease.lease_token,
                result=sealed,
                usage=self._usage(),
            )
            try:
                await sender.complete(completion)
                return
            except ServerError as error:
                if sender.supported or not error.route_missing:
                    raise
                # An older server, without the route: the result goes to a URL of its own.
        sealed_sha256 = await loop.run_in_executor(services.executor, sha256_hex, sealed)
        await self._store_result(sealed, sealed_sha256)
        await services.session.call(
            "POST",
            JOB_COMPLETE.format(job_id=lease.job_id),
            CompleteRequest(
                lease_token=lease.lease_token,
                result_size=len(sealed),
                result_sha256=sealed_sha256,
                usage=self._usage(),
            ),
        )

    async def _store_result(self, sealed: bytes, sha256: str) -> None:
        """PUT the sealed result to a URL signed for it, asking for a fresh one if it expired."""
        services, lease = self._services, self.lease
        for fresh in (False, True):
            target = await services.session.call(
                "POST",
                JOB_RESULT_URL.format(job_id=lease.job_id),
                ResultUrlRequest(lease_token=lease.lease_token, size=len(sealed), sha256=sha256),
                returns=ResultUrl,
            )
            try:
                await put_bytes(
                    services.blobs, target.url, sealed, target.headers, retries=self._blob_retries
                )
                return
            except ServerError as error:
                # A result URL lives no longer than the lease it was signed under, so one outlived
                # by an outage of the object store is refused; a fresh URL's refusal is final.
                if fresh or error.status_code not in (401, 403):
                    raise

    async def _fail(self, reason: str, *, retryable: bool) -> Outcome:
        lease = self.lease
        logger.warning("Job %s attempt %d failed: %s", lease.job_id, lease.attempt, reason)
        request = FailRequest(
            lease_token=lease.lease_token, error=reason, retryable=retryable, usage=self._usage()
        )
        try:
            await self._services.session.call("POST", JOB_FAIL.format(job_id=lease.job_id), request)
        except ConflictError as error:
            self._log_lost(error)
            return "lost"
        except (ServerError, ServerUnreachable) as error:
            logger.error(
                "Job %s attempt %d: the failure could not be reported (%s); its lease will lapse.",
                lease.job_id,
                lease.attempt,
                error,
            )
            return "abandoned"
        return "failed"

    async def _heartbeat(self, work: asyncio.Task[Outcome]) -> None:
        lease = self.lease
        # A server that asks for no pause would be hammered; half a second is the floor.
        interval = max(0.5, lease.heartbeat_seconds)
        request = Heartbeat(lease_token=lease.lease_token)
        path = JOB_HEARTBEAT.format(job_id=lease.job_id)
        while True:
            await asyncio.sleep(interval)
            sent = time.monotonic()
            try:
                # Retried only until the next beat is due: a late beat is worth no more.
                await self._services.session.call("POST", path, request, retry_for=interval)
                self._held_until = sent + lease.lease_seconds
            except ConflictError as error:
                self._log_lost(error)
                self._lease_lost = True
                work.cancel()
                return
            except (ServerError, ServerUnreachable) as error:
                logger.warning(
                    "Job %s attempt %d: a heartbeat failed (%s); trying again in %g s.",
                    lease.job_id,
                    lease.attempt,
                    error,
                    interval,
                )

    def _log_lost(self, error: ConflictError) -> None:
        logger.warning(
            "Job %s attempt %d: the lease is no longer ours (%s); leaving the job to its holder.",
            self.lease.job_id,
            self.lease.attempt,
            error,
        )
