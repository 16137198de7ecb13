"""The job queue: leasing (long-polled), fencing checks, heartbeats, completion, failure, and the
sweeper that returns lapsed leases to the queue.

Completing a job is done here and only here (:meth:`JobQueue.complete`): one read of the job, every
check, the conditional update, the seal of the result, the metrics and the wake-ups.

Delivery is at least once — a worker that stops answering loses its lease and another gets the
job — and completion exactly once: only the current, unexpired lease token can record a result.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import NoReturn

from fap.api import JobState
from fap.api.messages import CompletionOutcome, EngineUsage, JobCompletion
from fap.config import ServerSettings
from fap.server.blobs import BlobStore, StoredBlob, result_key
from fap.server.errors import BadRequest, Conflict, NotFound, shown_id
from fap.server.metrics import Metrics
from fap.server.queue.notify import (
    Notifier,
    chunks_topic,
    leases_topic,
    long_poll,
    queue_topic,
    upload_topic,
)
from fap.server.queue.sweeper import Sweeper
from fap.server.store import Recorded, Store, Upload

__all__ = ("Clock", "JobQueue")

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

# How often a worker's "asked for work" is written, at most, while it keeps asking: the status and
# the metrics count a worker online for a minute after it last asked, so a few seconds stale
# changes nothing — and a busy worker that leases many jobs a second writes its row once.
SEEN_EVERY_SECONDS = 10.0
_SEEN_KEPT = 10_000


class JobQueue:
    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        settings: ServerSettings,
        clock: Clock,
        *,
        blobs: BlobStore,
        metrics: Metrics,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._metrics = metrics
        self._notifier = notifier
        self._settings = settings
        self._clock = clock
        self._seen: dict[tuple[str, str, tuple[str, ...]], float] = {}  # when written last
        self._sweeper = Sweeper(store.jobs, notifier, self.sweep, settings.sweep_seconds, clock)

    async def lease(
        self,
        org_id: str,
        worker_id: str,
        engines: Sequence[str],
        timeout: float,
        request_id: str | None = None,
        *,
        max_jobs: int = 1,
        max_bytes: int = 0,
        packs: bool = True,
        abandoned: asyncio.Event | None = None,
    ) -> list[Upload] | None:
        """The oldest queued jobs for one of ``engines`` (up to ``max_jobs`` of them, while their
        files hold ``max_bytes`` in all; with ``packs``, those with chunks in packs too; see
        ``Jobs.lease_many``), waiting up to ``timeout`` s for
        one, or until ``abandoned`` is set (the worker hung up; see ``long_poll``).
        None if none came."""
        await self._see_worker(org_id, worker_id, engines)

        async def attempt() -> list[Upload] | None:
            leased = await self._store.jobs.lease_many(
                org_id,
                engines,
                worker_id,
                self._settings.lease_seconds,
                self._clock(),
                request_id,
                max_jobs=max_jobs,
                max_bytes=max_bytes,
                packs=packs,
            )
            return leased or None

        topics = [queue_topic(org_id)]
        jobs = await long_poll(self._notifier, topics, attempt, timeout, abandoned=abandoned)
        for job in jobs or ():
            logger.info("job %s leased by %s (attempt %d)", job.id, worker_id, job.attempts)
        if jobs:
            published = [*(upload_topic(job.id) for job in jobs), leases_topic()]
            if max_jobs > 1:  # what it passed over was hidden from other leases until now
                published.append(queue_topic(org_id))
            await self._notifier.publish(*published)
        return jobs

    async def _see_worker(self, org_id: str, worker_id: str, engines: Sequence[str]) -> None:
        now = self._clock()
        key = (org_id, worker_id, tuple(engines))
        if now - self._seen.get(key, float("-inf")) < SEEN_EVERY_SECONDS:
            return
        await self._store.jobs.see_worker(org_id, worker_id, list(engines), now)
        if len(self._seen) > _SEEN_KEPT:  # workers come and go: forget the long gone
            self._seen = {k: t for k, t in self._seen.items() if now - t < SEEN_EVERY_SECONDS}
        self._seen[key] = now

    async def undeliver(self, job: Upload) -> None:
        """The worker hung up before its lease was answered: the job goes to another worker.

        Without this a long-poll held by a worker that died (say, killed while waiting) would take
        the next job, which could then only come back by lapsing — one attempt lost for nothing.
        """
        assert job.lease_token is not None
        if await self._store.jobs.unlease(job.id, job.lease_token, self._clock()):
            logger.info("job %s: %s hung up before its lease was answered", job.id, job.worker_id)
            await self._announce(job, True)

    async def holding(self, org_id: str, job_id: str, token: str) -> Upload:
        """The job, if ``token`` holds its current, unexpired lease (the fencing check)."""
        job = await self._store.jobs.holder_view(org_id, job_id)
        if job is None:
            raise NotFound(f"There is no job {shown_id(job_id)} in your organisation.")
        _check_lease(job, token, self._clock())
        return job

    async def heartbeat(self, org_id: str, job_id: str, token: str) -> None:
        await self.holding(org_id, job_id, token)
        now = self._clock()
        if not await self._store.jobs.extend(job_id, token, self._settings.lease_seconds, now):
            await self._lost(org_id, job_id, token)

    async def complete(
        self,
        org_id: str,
        job_id: str,
        token: str,
        result_size: int,
        result_sha256: str,
        usage: EngineUsage | None = None,
    ) -> None:
        """Record the result the current lease holder stored, once, and seal it.

        The very same completion sent again (its first answer was lost) is answered as the first
        was; any other after the job finished, or from a stale or lapsed lease, is a Conflict.
        A result that is not stored as reported is a BadRequest: the worker may PUT it again.
        """
        view = await self._store.jobs.completion_view(org_id, job_id)
        if view is None:
            raise NotFound(f"There is no job {shown_id(job_id)} in your organisation.")
        job, chunks_stored = view
        key = result_key(job_id)
        if _recorded_already(job, token, result_size, result_sha256):
            # This holder's completion, answered again. Sealed again too: the first request may
            # have ended between recording the result and sealing it.
            await self._blobs.seal(key)
            return
        _check_lease(job, token, self._clock())
        _check_chunks_stored(job, chunks_stored)
        _check_stored_result(job_id, await self._blobs.describe(key), result_size, result_sha256)
        done = await self._store.jobs.complete(
            job_id, token, result_size, result_sha256, self._clock(), usage
        )
        if not done:
            await self._lost(org_id, job_id, token)
        # Sealed once recorded, not before: a lease that lapsed in between leaves the result's
        # key open to the next holder's PUT. From now on the result is what the uploader checks
        # it against, and nothing replaces it.
        await self._blobs.seal(key)
        self._finished(job, usage)
        await self._notifier.publish(upload_topic(job_id))

    async def complete_inline(
        self, org_id: str, completions: Sequence[JobCompletion]
    ) -> list[CompletionOutcome]:
        """Record the completions and keep the sealed results that came with them, in one
        transaction; answer each completion on its own, in order.

        Each is checked as :meth:`complete` checks one, and the very same completion sent again
        (the answer was lost) is answered done again. A lease that is not current is the only
        completion it costs: the others are recorded all the same. The results are kept in the
        database, not the blob store (see ``SealedResultRow``): written with the job's new
        state, so a job is never done without its result, nor a result kept for a job not done.
        """
        now = self._clock()
        digests = await asyncio.to_thread(
            lambda: [hashlib.sha256(completion.result).hexdigest() for completion in completions]
        )
        views = await self._store.jobs.completion_views(
            org_id, [completion.job_id for completion in completions]
        )
        outcomes: dict[int, CompletionOutcome] = {}
        to_record: dict[int, Recorded] = {}
        named: set[str] = set()
        for index, (completion, sha256) in enumerate(zip(completions, digests, strict=True)):
            job_id, token = completion.job_id, completion.lease_token
            try:
                view = views.get(job_id)
                if view is None:
                    raise NotFound(f"There is no job {shown_id(job_id)} in your organisation.")
                job, chunks_stored = view
                if _recorded_already(job, token, len(completion.result), sha256):
                    outcomes[index] = CompletionOutcome(job_id=job_id, status="done")
                    continue
                _check_lease(job, token, now)
                _check_chunks_stored(job, chunks_stored)
                if job_id in named:
                    raise BadRequest(f"Job {job_id} is completed twice in this request.")
            except Conflict as error:
                outcomes[index] = CompletionOutcome(job_id, "conflict", str(error))
                continue
            except (BadRequest, NotFound) as error:
                outcomes[index] = CompletionOutcome(job_id, "refused", str(error))
                continue
            named.add(job_id)
            to_record[index] = Recorded(
                job_id, token, len(completion.result), sha256, completion.usage, completion.result
            )
        done = await self._store.jobs.complete_many(list(to_record.values()), self._clock())
        for index, record in to_record.items():
            if record.job_id in done:
                outcomes[index] = CompletionOutcome(record.job_id, "done")
                job, _ = views[record.job_id]
                self._finished(job, record.usage)
            else:
                outcomes[index] = CompletionOutcome(
                    record.job_id, "conflict", _changed_meanwhile(record.job_id)
                )
        if done:
            await self._notifier.publish(*(upload_topic(job_id) for job_id in done))
        return [outcomes[index] for index in range(len(completions))]

    def _finished(self, job: Upload, usage: EngineUsage | None) -> None:
        """The metrics and the log line of a job just recorded done."""
        since = job.queued_at if job.queued_at is not None else job.created_at
        self._metrics.job_done(job.engine, self._clock() - since)
        if usage is not None:
            self._metrics.engine_used(job.engine, "done", usage)
        logger.info("job %s done", job.id)

    async def fail(
        self,
        org_id: str,
        job_id: str,
        token: str,
        error: str,
        retryable: bool,
        usage: EngineUsage | None = None,
    ) -> JobState:
        """End the lease with ``error``; answer the job's new state (queued or failed)."""
        job = await self.holding(org_id, job_id, token)
        requeue = retryable and job.attempts < self._settings.max_attempts
        state = await self._store.jobs.release(job_id, token, error, requeue, self._clock(), usage)
        if state is None:
            await self._lost(org_id, job_id, token)
        if usage is not None:
            self._metrics.engine_used(job.engine, "failed", usage)
        logger.info("job %s failed on attempt %d (%s): %s", job_id, job.attempts, state, error)
        await self._announce(job, state == JobState.QUEUED)
        return state

    async def queued(self, upload: Upload) -> None:
        """Tell waiting workers that ``upload`` became leasable."""
        await self._announce(upload, True)

    async def sweep(self) -> int:
        """End lapsed leases once; answer how many."""
        lapses = await self._store.jobs.sweep(self._settings.max_attempts, self._clock())
        for lapse in lapses:
            logger.warning(
                "job %s: the lease of %s lapsed on attempt %d; the job is %s now",
                lapse.upload.id,
                lapse.upload.worker_id,
                lapse.upload.attempts,
                lapse.state,
            )
            await self._announce(lapse.upload, lapse.state == JobState.QUEUED)
        return len(lapses)

    def start_sweeper(self) -> None:
        self._sweeper.start()

    async def stop_sweeper(self) -> None:
        await self._sweeper.stop()

    async def _announce(self, upload: Upload, queued: bool) -> None:
        topics = [upload_topic(upload.id), chunks_topic(upload.id)]
        if queued:
            topics.append(queue_topic(upload.org_id))
        await self._notifier.publish(*topics)

    async def _lost(self, org_id: str, job_id: str, token: str) -> NoReturn:
        """A conditional update changed nothing: the lease changed meanwhile. Say how, as 409."""
        await self.holding(org_id, job_id, token)
        raise Conflict(_changed_meanwhile(job_id))


def _check_lease(job: Upload, token: str, now: float) -> None:
    # The job's state first: a token that is not the current lease's says nothing more.
    if job.state != JobState.LEASED:
        raise Conflict(f"Job {job.id} is {job.state}: no lease of it is current; drop the job.")
    if job.lease_token != token:
        raise Conflict(f"That lease token is not job {job.id}'s current lease; drop the job.")
    if job.lease_expires is None or job.lease_expires <= now:
        raise Conflict(
            f"This lease of job {job.id} lapsed (no heartbeat in time); the job goes back "
            "to the queue."
        )


def _recorded_already(job: Upload, token: str, size: int, sha256: str) -> bool:
    """``job`` is done with this very result from this lease: a completion sent again."""
    return (job.state, job.lease_token, job.result_size, job.result_sha256) == (
        JobState.DONE,
        token,
        size,
        sha256,
    )


def _changed_meanwhile(job_id: str) -> str:
    return f"The lease of job {job_id} changed while this request ran; drop the job."


def _check_chunks_stored(job: Upload, chunks_stored: int) -> None:
    # Chunks are never unrecorded, so a count read before the update stays true until it.
    if chunks_stored < job.chunk_count:
        raise Conflict(
            f"Job {job.id} cannot be complete: not all of its {job.chunk_count} chunks "
            "are stored yet."
        )


def _check_stored_result(job_id: str, stored: StoredBlob | None, size: int, sha256: str) -> None:
    """The result stored for ``job_id`` is the one the worker reports, or the completion is refused."""
    if stored is None:
        raise BadRequest(f"No result is stored for job {job_id}; PUT it to the result URL first.")
    if stored.size != size:
        raise BadRequest(f"The stored result holds {stored.size} bytes, not the {size} reported.")
    # None: an object store that keeps no checksum (its URL was bound to the SHA-256 even so).
    if stored.sha256 is not None and stored.sha256 != sha256:
        raise BadRequest(
            f"The stored result of job {job_id} does not have the SHA-256 reported; PUT the "
            "result again."
        )
