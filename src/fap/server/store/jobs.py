"""The job side of an upload: leases, fencing, completion, failure, lapsed leases, workers.

Every state change is one conditional UPDATE that names the state (and the lease token) it expects
and checks that it changed exactly one row: two workers racing for a job, or a stale holder racing
the sweeper, cannot both win, on SQLite or on PostgreSQL. Candidate rows are picked with
``FOR UPDATE SKIP LOCKED`` where the database has it (SQLite ignores it; its writers are serial).

A lease picks and locks exactly the rows it takes, the one it always takes and the more of a lease
of several as far as their sizes allow. Locking candidates it does not take would hide them from
concurrent leases until the commit: woken by the same wake-up, they would find nothing and go back
to sleep with jobs still queued (hence a lease of several wakes the queue's waiters again).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    and_,
    bindparam,
    exists,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from fap.api import JobState, Transition, transition
from fap.api.messages import EngineUsage
from fap.server.store.database import Database, update_each, update_rows
from fap.server.store.models import Chunk, SealedResultRow, Upload, Worker
from fap.server.store.moves import moving
from fap.server.store.outages import retried
from fap.server.store.uploads import active_recipients_digest

__all__ = ("MOVES", "Backlog", "Jobs", "Lapse", "Recorded", "WorkerSeen")

_SWEEP_BATCH = 100

# The moves this module makes, checked against the state machine's table at import.
_LEASE = transition(JobState.QUEUED, JobState.LEASED)
_COMPLETE = transition(JobState.LEASED, JobState.DONE)
# Failed or lapsed with attempts left, or handed back before its worker heard of the lease.
_REQUEUE = transition(JobState.LEASED, JobState.QUEUED)
_FAIL = transition(JobState.LEASED, JobState.FAILED)  # failed or lapsed on its last attempt
MOVES: tuple[Transition, ...] = (_LEASE, _COMPLETE, _REQUEUE, _FAIL)


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    worker_id: str
    engines: list[str]
    last_seen: float
    active_jobs: int


@dataclass(frozen=True, slots=True)
class Lapse:
    """A lease the sweeper ended: the job is queued again, or failed after its last attempt."""

    upload: Upload
    state: JobState


@dataclass(frozen=True, slots=True)
class Recorded:
    """A result to record for a job, under the lease that made it."""

    job_id: str
    lease_token: str
    size: int
    sha256: str
    usage: EngineUsage | None = None
    # The sealed result itself, when the server keeps it (it came with the completion); None:
    # the worker stored it at the job's result key.
    sealed: bytes | None = None


@dataclass(frozen=True, slots=True)
class Backlog:
    """Across every organisation, per engine: jobs queued, jobs leased, processors online."""

    queued: dict[str, int]
    leased: dict[str, int]
    processors: dict[str, int]


class Jobs:
    def __init__(self, db: Database) -> None:
        self._db = db

    @retried
    async def see_worker(
        self, org_id: str, worker_id: str, engines: list[str] | None, now: float
    ) -> None:
        """Record that a worker asked for work now (with the engines it runs, if given)."""
        async with self._db.write() as session:
            if engines is None:
                await update_rows(
                    session,
                    update(Worker)
                    .where(Worker.org_id == org_id, Worker.worker_id == worker_id)
                    .values(last_seen=now),
                )
                return
            # One statement, so two first requests of a new worker (on two replicas, say) cannot
            # both find no row and both insert one.
            insert = self._db.insert(Worker).values(
                org_id=org_id, worker_id=worker_id, engines=engines, last_seen=now
            )
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=[Worker.org_id, Worker.worker_id],
                    set_={
                        "engines": insert.excluded.engines,
                        "last_seen": insert.excluded.last_seen,
                    },
                )
            )

    async def lease_many(
        self,
        org_id: str,
        engines: Sequence[str],
        worker_id: str,
        lease_seconds: float,
        now: float,
        request_id: str | None = None,
        *,
        max_jobs: int = 1,
        max_bytes: int = 0,
        packs: bool = True,
    ) -> list[Upload]:
        """Lease the oldest queued jobs of the organisation whose engine is one of ``engines``: up
        to ``max_jobs``, as long as their files hold ``max_bytes`` in all (the first whatever its
        size), each with a lease token of its own. Without ``packs`` (a worker that cannot read a
        chunk out of a pack), only jobs with no chunk in a pack.

        A ``request_id`` that already holds live leases of this worker answers those leases again:
        the request is a retry whose first answer was lost.

        Candidates passed over for their size stay locked until the commit: a concurrent lease
        skips them, so the caller wakes the queue's waiters after a lease of several.
        """
        async with self._db.write() as session:
            if request_id is not None:
                held = list(
                    await session.scalars(
                        select(Upload)
                        .where(
                            Upload.org_id == org_id,
                            Upload.lease_request_id == request_id,
                            Upload.worker_id == worker_id,
                            Upload.state == JobState.LEASED,
                            Upload.lease_expires > now,
                        )
                        .order_by(Upload.created_at, Upload.id)
                    )
                )
                if held:
                    return held
            # Rows other leases hold locked are skipped, not waited for: each concurrent lease
            # takes the oldest jobs nobody else is taking.
            candidates = (
                await session.execute(
                    select(Upload.id, Upload.size, Upload.user_id)
                    .where(
                        Upload.org_id == org_id,
                        Upload.state == JobState.QUEUED,
                        Upload.engine.in_(list(engines)),
                        true() if packs else ~_in_a_pack(),
                    )
                    .order_by(Upload.created_at, Upload.id)
                    .limit(max(1, max_jobs))
                    .with_for_update(skip_locked=True)
                )
            ).all()
            chosen: list[tuple[str, str]] = []
            total = 0
            for upload_id, size, user_id in candidates:
                total += size
                if chosen and total > max_bytes:
                    break
                chosen.append((upload_id, user_id))
            if not chosen:
                return []
            digests: dict[str, str] = {}  # by uploader: a folder's files share one
            for _, user_id in chosen:
                if user_id not in digests:
                    digests[user_id] = await active_recipients_digest(session, user_id)
            tokens = {upload_id: secrets.token_urlsafe(24) for upload_id, _ in chosen}
            lease = (
                moving(_LEASE)
                .where(Upload.id == bindparam("b_id"))
                .values(
                    lease_token=bindparam("b_token"),
                    lease_expires=now + lease_seconds,
                    attempts=Upload.attempts + 1,
                    worker_id=worker_id,
                    lease_request_id=request_id,
                    # What the result will be sealed to, for dedup to compare.
                    recipients_sha256=bindparam("b_recipients"),
                )
            )
            await update_each(
                session,
                lease,
                [
                    {"b_id": upload_id, "b_token": tokens[upload_id], "b_recipients": digests[user]}
                    for upload_id, user in chosen
                ],
            )
            rows = await session.scalars(
                select(Upload)
                .where(Upload.id.in_(list(tokens)))
                .order_by(Upload.created_at, Upload.id)
                .execution_options(populate_existing=True)
            )
            # Leased by this transaction: under the token it gave.
            return [row for row in rows if row.lease_token == tokens[row.id]]

    @retried
    async def holder_view(self, org_id: str, job_id: str) -> Upload | None:
        """The job as its lease holder sees it, if it belongs to the organisation."""
        async with self._db.read() as session:
            upload = await session.get(Upload, job_id)
        if upload is None or upload.org_id != org_id:
            return None
        return upload

    @retried
    async def completion_view(self, org_id: str, job_id: str) -> tuple[Upload, int] | None:
        """The job as its holder sees it and how many of its chunks are stored, in one read:
        all that completing it checks in the store."""
        stored = select(func.count()).select_from(Chunk).where(Chunk.upload_id == job_id)
        async with self._db.read() as session:
            row = (
                await session.execute(
                    select(Upload, stored.scalar_subquery()).where(
                        Upload.id == job_id, Upload.org_id == org_id
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        upload, count = row
        return upload, count

    @retried
    async def completion_views(
        self, org_id: str, job_ids: Sequence[str]
    ) -> dict[str, tuple[Upload, int]]:
        """:meth:`completion_view` of many jobs in one read, by id; jobs that are not the
        organisation's are left out."""
        stored = (
            select(Chunk.upload_id, func.count().label("stored"))
            .where(Chunk.upload_id.in_(list(job_ids)))
            .group_by(Chunk.upload_id)
            .subquery()
        )
        async with self._db.read() as session:
            rows = (
                await session.execute(
                    select(Upload, func.coalesce(stored.c.stored, 0))
                    .outerjoin(stored, stored.c.upload_id == Upload.id)
                    .where(Upload.id.in_(list(job_ids)), Upload.org_id == org_id)
                )
            ).all()
        return {upload.id: (upload, count) for upload, count in rows}

    @retried
    async def extend(self, job_id: str, token: str, lease_seconds: float, now: float) -> bool:
        async with self._db.write() as session:
            changed = await update_rows(
                session,
                update(Upload)
                .where(Upload.state == JobState.LEASED, _held(job_id, token, now))
                .values(lease_expires=now + lease_seconds),
            )
            if changed != 1:
                return False
            upload = await _reload(session, job_id)
            if upload.worker_id:
                await update_rows(
                    session,
                    update(Worker)
                    .where(Worker.org_id == upload.org_id, Worker.worker_id == upload.worker_id)
                    .values(last_seen=now),
                )
        return True

    async def complete(
        self,
        job_id: str,
        token: str,
        result_size: int,
        result_sha256: str,
        now: float,
        usage: EngineUsage | None = None,
    ) -> bool:
        """Record the result, once: only the current, unexpired lease can."""
        recorded = Recorded(job_id, token, result_size, result_sha256, usage)
        return job_id in await self.complete_many([recorded], now)

    async def complete_many(self, results: Sequence[Recorded], now: float) -> set[str]:
        """Record each result, once, in one transaction: only a current, unexpired lease can; the
        sealed results that came with them are kept with them. Answer the jobs recorded (the
        others' leases changed meanwhile)."""
        if not results:
            return set()
        record = (
            moving(_COMPLETE)
            .where(_held(bindparam("b_job_id"), bindparam("b_token"), now))
            .values(
                result_size=bindparam("b_size"),
                result_sha256=bindparam("b_sha256"),
                error=None,
                finished_at=now,
                engine_cpu_seconds=bindparam("b_cpu_seconds"),
                engine_peak_memory_bytes=bindparam("b_peak_memory_bytes"),
                engine_wall_seconds=bindparam("b_wall_seconds"),
            )
        )
        tokens = {result.job_id: result.lease_token for result in results}
        async with self._db.write() as session:
            await update_each(session, record, [_recorded_values(result) for result in results])
            # Done by this transaction: done now, under the token that asked. (A job done
            # earlier under the same token was finished at another time.)
            rows = await session.execute(
                select(Upload.id, Upload.lease_token).where(
                    Upload.id.in_(list(tokens)),
                    Upload.state == JobState.DONE,
                    Upload.finished_at == now,
                )
            )
            done = {job_id for job_id, token in rows if tokens[job_id] == token}
            kept = [
                {"upload_id": result.job_id, "sealed": result.sealed}
                for result in results
                if result.job_id in done and result.sealed is not None
            ]
            if kept:
                # One row per job recorded done just now: no other transaction can have written
                # it (only the lease's holder gets here, once).
                await session.execute(insert(SealedResultRow), kept)
        return done

    async def release(
        self,
        job_id: str,
        token: str,
        error: str,
        requeue: bool,
        now: float,
        usage: EngineUsage | None = None,
    ) -> JobState | None:
        """End the current lease with ``error``: queued again, or failed. None if not current.
        The usage reported (of this attempt) replaces an earlier attempt's."""
        values: dict[str, object] = {"error": error, "worker_id": None, **_usage_values(usage)}
        if requeue:
            move, values["queued_at"] = _REQUEUE, now
        else:
            move, values["finished_at"] = _FAIL, now
        if not await self._while_current(move, job_id, token, now, **values):
            return None
        return move.target

    async def unlease(self, job_id: str, token: str, now: float) -> bool:
        """Take back a lease its worker never received: queued again, the attempt not counted."""
        return await self._while_current(
            _REQUEUE,
            job_id,
            token,
            now,
            lease_token=None,
            lease_expires=None,
            worker_id=None,
            lease_request_id=None,
            attempts=Upload.attempts - 1,
        )

    async def _while_current(
        self, move: Transition, job_id: str, token: str, now: float, **values: Any
    ) -> bool:
        """Make ``move`` with ``values`` if ``token`` still holds the job's unexpired lease;
        answer whether it did (False: the lease changed meanwhile)."""
        assert move.sources == {JobState.LEASED}  # what the fencing check takes for granted
        async with self._db.write() as session:
            changed = await update_rows(
                session, moving(move).where(_held(job_id, token, now)).values(**values)
            )
        return changed == 1

    async def sweep(self, max_attempts: int, now: float) -> list[Lapse]:
        """End every lease whose deadline passed: requeue the job, or fail it after the last
        attempt with the reason."""
        lapses: list[Lapse] = []
        async with self._db.write() as session:
            expired = await session.scalars(
                select(Upload)
                .where(Upload.state == JobState.LEASED, Upload.lease_expires <= now)
                .order_by(Upload.lease_expires)
                .limit(_SWEEP_BATCH)
                .with_for_update(skip_locked=True)
            )
            for upload in list(expired):
                lapsed = upload.lapses + 1
                final = upload.attempts >= max_attempts
                values: dict[str, object] = {"lapses": lapsed, "worker_id": None}
                if final:
                    move = _FAIL
                    values.update(
                        finished_at=now, error=_gave_up(lapsed, upload.attempts, upload.error)
                    )
                else:
                    move = _REQUEUE
                    values.update(
                        queued_at=now, error="The processor stopped answering (lease lapsed)."
                    )
                changed = await update_rows(
                    session,
                    moving(move)
                    .where(Upload.id == upload.id, Upload.lease_token == upload.lease_token)
                    .values(**values),
                )
                if changed == 1:
                    lapses.append(Lapse(upload, move.target))
        return lapses

    @retried
    async def next_deadline(self) -> float | None:
        """The earliest deadline of a live lease, if any job is leased (what the sweeper waits
        for); one look at the (state, lease_expires) index."""
        async with self._db.read() as session:
            deadline: float | None = await session.scalar(
                select(func.min(Upload.lease_expires)).where(Upload.state == JobState.LEASED)
            )
            return deadline

    @retried
    async def status(
        self, org_id: str, now: float, online_seconds: float
    ) -> tuple[list[WorkerSeen], dict[JobState, int]]:
        """Workers seen in the last ``online_seconds`` with their live leases; jobs by state."""
        async with self._db.read() as session:
            workers = list(
                await session.scalars(
                    select(Worker)
                    .where(Worker.org_id == org_id, Worker.last_seen >= now - online_seconds)
                    .order_by(Worker.worker_id)
                )
            )
            active_rows = await session.execute(
                select(Upload.worker_id, func.count())
                .where(
                    Upload.org_id == org_id,
                    Upload.state == JobState.LEASED,
                    Upload.lease_expires > now,
                )
                .group_by(Upload.worker_id)
            )
            active: dict[str | None, int] = {worker: count for worker, count in active_rows}
            state_rows = await session.execute(
                select(Upload.state, func.count())
                .where(Upload.org_id == org_id)
                .group_by(Upload.state)
            )
            by_state: dict[JobState, int] = {state: count for state, count in state_rows}
        seen = [
            WorkerSeen(w.worker_id, list(w.engines), w.last_seen, active.get(w.worker_id, 0))
            for w in workers
        ]
        return seen, by_state

    @retried
    async def live_by_engine(self, org_id: str) -> dict[str, tuple[int, int]]:
        """The organisation's jobs queued and leased, per engine: what each version has waiting
        and in hand (one grouped count over the leasing index)."""
        async with self._db.read() as session:
            rows = await session.execute(
                select(Upload.engine, Upload.state, func.count())
                .where(
                    Upload.org_id == org_id,
                    Upload.state.in_((JobState.QUEUED, JobState.LEASED)),
                )
                .group_by(Upload.engine, Upload.state)
            )
            counts: dict[str, tuple[int, int]] = {}
            for engine, state, count in rows:
                queued, leased = counts.get(engine, (0, 0))
                if state == JobState.QUEUED:
                    queued = count
                else:
                    leased = count
                counts[engine] = (queued, leased)
        return counts

    async def backlog(self, now: float, online_seconds: float) -> Backlog:
        """Queued and leased jobs per engine, processors seen in the last ``online_seconds`` per
        engine: one grouped count over the live rows (the state index), cheap enough to scrape."""
        async with self._db.read() as session:
            rows = await session.execute(
                select(Upload.engine, Upload.state, func.count())
                .where(Upload.state.in_((JobState.QUEUED, JobState.LEASED)))
                .group_by(Upload.engine, Upload.state)
            )
            counts = {(engine, state): count for engine, state, count in rows}
            engines = await session.scalars(
                select(Worker.engines).where(Worker.last_seen >= now - online_seconds)
            )
            processors: dict[str, int] = {}
            for names in engines:
                for name in set(names):
                    processors[name] = processors.get(name, 0) + 1
        return Backlog(
            queued={e: n for (e, state), n in counts.items() if state == JobState.QUEUED},
            leased={e: n for (e, state), n in counts.items() if state == JobState.LEASED},
            processors=processors,
        )


def _recorded_values(result: Recorded) -> dict[str, object]:
    """The parameters of complete_many's UPDATE for one result (named apart from the
    columns: SQLAlchemy keeps the columns' own names for the SET clause)."""
    usage = _usage_values(result.usage)
    return {
        "b_job_id": result.job_id,
        "b_token": result.lease_token,
        "b_size": result.size,
        "b_sha256": result.sha256,
        "b_cpu_seconds": usage["engine_cpu_seconds"],
        "b_peak_memory_bytes": usage["engine_peak_memory_bytes"],
        "b_wall_seconds": usage["engine_wall_seconds"],
    }


def _usage_values(usage: EngineUsage | None) -> dict[str, object]:
    """The upload row's usage columns for what the processor reported of the attempt."""
    return {
        "engine_cpu_seconds": usage.cpu_seconds if usage else None,
        "engine_peak_memory_bytes": usage.peak_memory_bytes if usage else None,
        "engine_wall_seconds": usage.wall_seconds if usage else None,
    }


def _in_a_pack() -> ColumnElement[bool]:
    """The job has a chunk stored in a pack."""
    return exists().where(Chunk.upload_id == Upload.id, Chunk.pack_id.is_not(None))


def _held(
    job_id: str | BindParameter[str], token: str | BindParameter[str], now: float
) -> ColumnElement[bool]:
    """The job's lease is ``token``'s and unexpired (the fencing check; with the state leased).
    Given as bind parameters, the check of each row of an executemany."""
    return and_(Upload.id == job_id, Upload.lease_token == token, Upload.lease_expires > now)


async def _reload(session: AsyncSession, upload_id: str) -> Upload:
    upload = await session.get(Upload, upload_id, populate_existing=True)
    assert upload is not None  # the row was just updated in this transaction
    return upload


def _gave_up(lapses: int, attempts: int, earlier: str | None) -> str:
    times = "once" if lapses == 1 else f"{lapses} times"
    if lapses >= attempts or not earlier:
        return f"The processor stopped answering (lease lapsed) {times}."
    return (
        f"The processor stopped answering (lease lapsed) on the last of {attempts} attempts; "
        f"before that: {earlier.rstrip('.')}."
    )
