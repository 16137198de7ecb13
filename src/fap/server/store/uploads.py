"""Uploads and their stored chunks, as the client side sees them."""

from __future__ import annotations

import enum
import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Select,
    Update,
    and_,
    case,
    false,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from fap.api import TERMINAL_STATES, JobState, Transition, transition
from fap.server.errors import Conflict, QuotaExceeded
from fap.server.store.accounts import Quotas
from fap.server.store.database import Database
from fap.server.store.ids import new_id
from fap.server.store.models import Chunk, Device, Pack, SealedResultRow, Upload
from fap.server.store.moves import created_in, in_source, state_after
from fap.server.store.outages import retried

__all__ = (
    "MOVES",
    "ChunkOutcome",
    "ChunkRecord",
    "Made",
    "NewUpload",
    "Uploads",
    "active_recipients_digest",
    "recipients_digest",
)

# The move this module makes, checked against the state machine's table at import: the first
# chunk stored makes the job leasable.
_FIRST_CHUNK = transition(JobState.PENDING, JobState.QUEUED)
MOVES: tuple[Transition, ...] = (_FIRST_CHUNK,)


class ChunkOutcome(enum.Enum):
    STORED = "stored"  # recorded now
    QUEUED = "queued"  # recorded now, and it was the first: the job became leasable
    SAME = "same"  # recorded before with the same sizes and checksum: nothing to do
    DIFFERENT = "different"  # recorded before with other sizes or checksum
    CLOSED = "closed"  # the upload is done or failed: no chunk changes it any more


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """What recording a chunk did, and how far the upload is (all a chunk report answers)."""

    outcome: ChunkOutcome
    stored: int  # chunks of the upload recorded, this one included (0 when CLOSED)
    state: JobState | None  # the upload's state after it (None when CLOSED)


@dataclass(frozen=True, slots=True)
class NewUpload:
    org_id: str
    user_id: str
    name: str
    size: int
    sha256: str
    engine: str
    chunk_size: int
    chunk_count: int
    request_id: str | None = None
    # Answer with an earlier analysis of the same file, if there is one to answer with
    # (:meth:`Uploads.create_or_reuse`).
    dedup: bool = False


@dataclass(frozen=True, slots=True)
class Made:
    """The upload that answers a request to create one: made now, made before by the same
    request, or (``deduplicated``) an earlier analysis of the same file, made by none."""

    upload: Upload
    deduplicated: bool = False


# What makes two uploads the same analysis: the engine's answer may depend on the file's name.
_SameFile = tuple[str, str, int, str, str]  # organisation, name, size, sha256, engine


class Uploads:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, new: NewUpload, now: float, quotas: Quotas | None = None) -> Upload:
        """A new upload; one without chunks (an empty file) is queued at once.

        A ``request_id`` the user sent before answers the upload that request made, so a retry
        after a lost answer never makes a second one; the route checks it describes the same file.
        A new one must fit the organisation's ``quotas`` (QuotaExceeded says which it would pass).
        Two uploads created at the same moment may pass a quota together by one upload: the check
        is a read, and a lock on the organisation for every upload would cost more than that.
        """
        return (await self.create_many([new], now, quotas))[0]

    async def create_many(
        self, news: Sequence[NewUpload], now: float, quotas: Quotas | None = None
    ) -> list[Upload]:
        """:meth:`create` for many files of one user and organisation, in one transaction of as
        many statements as one: all are made, or (QuotaExceeded) none. The quotas count the
        batch as a whole."""
        return [made.upload for made in await self.create_or_reuse(news, now, quotas)]

    async def create_or_reuse(
        self,
        news: Sequence[NewUpload],
        now: float,
        quotas: Quotas | None = None,
        *,
        sealed_to: str | None = None,
        reusable_after: float | None = None,
    ) -> list[Made]:
        """:meth:`create_many`, except that each of ``news`` that asks for ``dedup`` is answered
        with an earlier upload of the same file when there is one to answer with, and nothing is
        made for it: no row, nothing counted against the quotas.

        The earlier upload is the user's own, in the same organisation, of the same name, size,
        SHA-256 and engine (an engine may read the name); it is done, its result is still kept
        (not expired, finished after ``reusable_after``), and that result was sealed to exactly
        ``sealed_to``, the :func:`recipients_digest` of the devices the user has active now
        (None: nothing is reused). The server cannot open a sealed result to seal it again: the
        same set is what makes sure every device of the user opens it, and a device added since
        gets the file analysed anew, for its own result. A request id seen before answers the
        upload it made, as always, even where dedup would answer another one.

        Still as many statements as one upload: the request ids seen and the earlier analyses
        are read together.
        """
        (user_id,) = {new.user_id for new in news}
        asked = [new.request_id for new in news if new.request_id is not None]
        wanted = {_same_file(new) for new in news if new.dedup}
        reusable = (
            _reusable(user_id, wanted, sealed_to, reusable_after)
            if wanted and sealed_to is not None
            else false()
        )
        async with self._db.write() as session:
            known = (
                await session.execute(
                    select(Upload, reusable.label("reusable"))
                    .where(_requested(user_id, asked) | reusable)
                    .order_by(Upload.finished_at, Upload.id)
                )
            ).all()
            seen = {upload.request_id for upload, _ in known if upload.request_id in asked}
            earlier: dict[_SameFile, Upload] = {}
            for upload, can_answer in known:
                if can_answer and (same := _same_file(upload)) in wanted:
                    earlier[same] = upload  # oldest first: the newest is kept
            making = [new for new in news if _reused(new, seen, earlier) is None]
            rows = [_new_row(new, new_id(), now) for new in making]
            if quotas is not None:
                fresh = [new for new in making if new.request_id not in seen]
                if fresh:
                    await _check_quotas(session, fresh, quotas, now)
            found: list[Upload] = []
            if rows:
                # Insert those whose request was not seen, in one statement: two copies of one
                # request arriving at two replicas at once make one upload.
                # The rows as parameters of one statement, not in its text: a statement of
                # hundreds of VALUES would be compiled anew for every batch.
                await session.execute(
                    self._db.insert(Upload).on_conflict_do_nothing(
                        index_elements=[Upload.user_id, Upload.request_id]
                    ),
                    rows,
                )
                unnamed = [row["id"] for row in rows if row["request_id"] is None]
                named = [row["request_id"] for row in rows if row["request_id"] is not None]
                found = list(
                    await session.scalars(
                        select(Upload).where(Upload.id.in_(unnamed) | _requested(user_id, named))
                    )
                )
        by_request = {upload.request_id: upload for upload in found if upload.request_id}
        by_id = {upload.id: upload for upload in found}
        # Each one inserted now, or by the request it repeats, or analysed before.
        made = iter(rows)
        answers = []
        for new in news:
            reused = _reused(new, seen, earlier)
            if reused is not None:
                answers.append(Made(reused, deduplicated=True))
                continue
            row = next(made)
            request_id = row["request_id"]
            answers.append(Made(by_id[row["id"]] if request_id is None else by_request[request_id]))
        return answers

    @retried
    async def get(self, org_id: str, upload_id: str) -> Upload | None:
        """The upload if it belongs to the organisation: another's is as absent as a missing one."""
        async with self._db.read() as session:
            upload = await session.get(Upload, upload_id)
        if upload is None or upload.org_id != org_id:
            return None
        return upload

    @retried
    async def get_many(self, org_id: str, upload_ids: Iterable[str]) -> dict[str, Upload]:
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Upload).where(Upload.org_id == org_id, Upload.id.in_(set(upload_ids)))
            )
            return {upload.id: upload for upload in rows}

    @retried
    async def existing(self, org_id: str, upload_ids: Iterable[str]) -> set[str]:
        """Those of ``upload_ids`` that are uploads of the organisation: ids alone, no row."""
        async with self._db.read() as session:
            found = await session.scalars(
                select(Upload.id).where(Upload.id.in_(set(upload_ids)), Upload.org_id == org_id)
            )
            return set(found)

    @retried
    async def any_finished(self, org_id: str, upload_ids: Iterable[str]) -> bool:
        """Whether any of the organisation's uploads among ``upload_ids`` is done or failed: one
        indexed look, no row loaded (a wait asks it at every event of any of its uploads)."""
        async with self._db.read() as session:
            found = await session.scalar(
                select(Upload.id).where(_finished_among(org_id, upload_ids)).limit(1)
            )
        return found is not None

    @retried
    async def finished_among(self, org_id: str, upload_ids: Iterable[str]) -> dict[str, Upload]:
        """The organisation's uploads among ``upload_ids`` that are done or failed."""
        async with self._db.read() as session:
            rows = await session.scalars(select(Upload).where(_finished_among(org_id, upload_ids)))
            return {upload.id: upload for upload in rows}

    @retried
    async def list_for_user(self, user_id: str, limit: int) -> list[Upload]:
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Upload)
                .where(Upload.user_id == user_id)
                .order_by(Upload.created_at.desc(), Upload.id.desc())
                .limit(limit)
            )
            return list(rows)

    @retried
    async def stored_seqs(self, upload_ids: Iterable[str]) -> dict[str, list[int]]:
        """Sequence numbers of the stored chunks of each upload, ascending."""
        ids = set(upload_ids)
        stored: defaultdict[str, list[int]] = defaultdict(list)
        if not ids:
            return stored
        async with self._db.read() as session:
            rows = await session.execute(
                select(Chunk.upload_id, Chunk.seq)
                .where(Chunk.upload_id.in_(ids))
                .order_by(Chunk.upload_id, Chunk.seq),
            )
            for upload_id, seq in rows:
                stored[upload_id].append(seq)
        return stored

    @retried
    async def sealed_results(self, upload_ids: Iterable[str]) -> dict[str, bytes]:
        """The sealed results the server keeps (see SealedResultRow) of those of ``upload_ids``
        that have one."""
        ids = set(upload_ids)
        if not ids:
            return {}
        async with self._db.read() as session:
            rows = await session.execute(
                select(SealedResultRow.upload_id, SealedResultRow.sealed).where(
                    SealedResultRow.upload_id.in_(ids)
                )
            )
            return {upload_id: bytes(sealed) for upload_id, sealed in rows}

    @retried
    async def get_chunk(self, upload_id: str, seq: int) -> Chunk | None:
        async with self._db.read() as session:
            return await session.get(Chunk, (upload_id, seq))

    async def record_chunk(self, upload_id: str, chunk: Chunk) -> ChunkRecord:
        """Record that ``chunk`` is stored; the first chunk of a pending upload queues its job.

        One transaction of three statements, whatever the upload's size: the answer is a count,
        never the list of stored chunks (which would make a large upload's reports O(n²) bytes).
        """
        async with self._db.write() as session:
            return await self._record(session, upload_id, chunk)

    async def record_chunks(self, chunks: Sequence[Chunk]) -> list[ChunkRecord]:
        """:meth:`record_chunk` for many chunks (of many uploads, each chunk once) in one
        transaction of five statements, however many there are.

        All are recorded, or none: when one is refused (CLOSED, DIFFERENT), the transaction is
        rolled back and every record is answered as it would have been, for the caller to name
        the refused ones (the others' outcomes then did not happen). Each record's count is its
        upload's once the whole batch is in.
        """
        ids = sorted({chunk.upload_id for chunk in chunks})
        packs = sorted({chunk.pack_id for chunk in chunks if chunk.pack_id is not None})
        moment = max(chunk.stored_at for chunk in chunks)
        try:
            async with self._db.write() as session:
                # The uploads' rows locked in the order of their ids (PostgreSQL; SQLite writes
                # one transaction at a time): two batches that share uploads take turns.
                await session.execute(
                    select(Upload.id)
                    .where(Upload.id.in_(ids))
                    .order_by(Upload.id)
                    .with_for_update()
                )
                if packs:
                    await _hold_packs(session, packs)
                # As for one chunk: refuse finished uploads, queue pending ones.
                open_states: dict[str, JobState] = dict(
                    (
                        await session.execute(
                            _queue_open(Upload.id.in_(ids), moment).returning(
                                Upload.id, Upload.state
                            )
                        )
                    ).all()
                )
                taken = [chunk for chunk in chunks if chunk.upload_id in open_states]
                inserted: set[tuple[str, int]] = set()
                if taken:
                    inserted = set(
                        (
                            await session.execute(
                                self._db.insert(Chunk)
                                .on_conflict_do_nothing(index_elements=[Chunk.upload_id, Chunk.seq])
                                .returning(Chunk.upload_id, Chunk.seq),
                                [_chunk_row(chunk) for chunk in taken],
                            )
                        ).all()
                    )
                known = await _known_chunks(
                    session, [c for c in taken if (c.upload_id, c.seq) not in inserted]
                )
                counts: dict[str, int] = dict(
                    (
                        await session.execute(
                            select(Chunk.upload_id, func.count())
                            .where(Chunk.upload_id.in_(ids))
                            .group_by(Chunk.upload_id)
                        )
                    ).all()
                )
                records = _batch_records(chunks, open_states, inserted, known, counts)
                if any(record.outcome in _REFUSED for record in records):
                    raise _RolledBack
        except _RolledBack:
            pass
        return records

    async def _record(self, session: AsyncSession, upload_id: str, chunk: Chunk) -> ChunkRecord:
        # First, and in one statement: refuse a finished upload, queue a pending one, and take
        # the upload's row lock (PostgreSQL), so that the reports of one upload take turns and
        # the count below is exact. Only an upload without chunks is pending, so the CASE
        # changes nothing for a report of a chunk recorded before.
        state = await session.scalar(
            _queue_open(Upload.id == upload_id, chunk.stored_at).returning(Upload.state)
        )
        if state is None:
            return ChunkRecord(ChunkOutcome.CLOSED, 0, None)
        # Insert unless recorded already, in one statement: the same report arriving twice at
        # once (a client retrying on another replica) records it once and answers SAME.
        inserted = await session.execute(
            self._db.insert(Chunk)
            .values(
                upload_id=upload_id,
                seq=chunk.seq,
                raw_size=chunk.raw_size,
                stored_size=chunk.stored_size,
                codec=chunk.codec,
                sha256=chunk.sha256,
                stored_at=chunk.stored_at,
            )
            .on_conflict_do_nothing(index_elements=[Chunk.upload_id, Chunk.seq])
        )
        stored = _count_chunks(upload_id)
        if cast("CursorResult[Any]", inserted).rowcount == 0:
            known = (
                await session.execute(
                    select(
                        Chunk.raw_size,
                        Chunk.stored_size,
                        Chunk.codec,
                        Chunk.sha256,
                        stored.scalar_subquery(),
                    ).where(Chunk.upload_id == upload_id, Chunk.seq == chunk.seq)
                )
            ).one()  # the conflicting row, committed
            same = tuple(known[:4]) == (
                chunk.raw_size,
                chunk.stored_size,
                chunk.codec,
                chunk.sha256,
            )
            outcome = ChunkOutcome.SAME if same else ChunkOutcome.DIFFERENT
            return ChunkRecord(outcome, known[4], state)
        count = await session.scalar(stored)
        assert count is not None  # a count, of one chunk at least: the one inserted now
        # The first chunk recorded is the one that queued the job (the lock above made it first).
        return ChunkRecord(ChunkOutcome.QUEUED if count == 1 else ChunkOutcome.STORED, count, state)

    @retried
    @retried
    async def first_chunks(self, upload_ids: Sequence[str], limit: int) -> dict[str, list[Chunk]]:
        """The first ``limit`` stored chunks of each upload (in order of seq), in one read."""
        ranked = (
            select(
                Chunk,
                func.row_number()
                .over(partition_by=Chunk.upload_id, order_by=Chunk.seq)
                .label("rank"),
            )
            .where(Chunk.upload_id.in_(list(upload_ids)))
            .subquery()
        )
        first = aliased(Chunk, ranked)
        found: dict[str, list[Chunk]] = {upload_id: [] for upload_id in upload_ids}
        async with self._db.read() as session:
            rows = await session.scalars(
                select(first).where(ranked.c.rank <= limit).order_by(first.upload_id, first.seq)
            )
            for chunk in rows:
                found[chunk.upload_id].append(chunk)
        return found

    async def chunks_after(self, upload_id: str, after: int, limit: int) -> list[Chunk]:
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Chunk)
                .where(Chunk.upload_id == upload_id, Chunk.seq > after)
                .order_by(Chunk.seq)
                .limit(limit)
            )
            return list(rows)


def _finished_among(org_id: str, upload_ids: Iterable[str]) -> ColumnElement[bool]:
    return and_(
        Upload.id.in_(set(upload_ids)),
        Upload.org_id == org_id,
        Upload.state.in_(sorted(TERMINAL_STATES)),
    )


def recipients_digest(recipients: Iterable[str]) -> str:
    """The SHA-256 of a set of age recipients, in whatever order they come: what a job's result
    was sealed to, to compare with the devices its uploader has now."""
    return hashlib.sha256("\n".join(sorted(set(recipients))).encode()).hexdigest()


async def active_recipients_digest(session: AsyncSession, user_id: str) -> str:
    """The digest of a user's active devices, read in the caller's transaction: written on a job
    being leased, in the lease's transaction, as the recipients its lease hands out, read a moment
    later. A device registered in between makes a digest of fewer than the result is sealed to,
    one revoked in between a digest no later set of devices matches (revoking is for good):
    either way no upload is answered with a result a device it names cannot open."""
    recipients = await session.scalars(
        select(Device.recipient).where(Device.user_id == user_id, Device.revoked_at.is_(None))
    )
    return recipients_digest(recipients)


def _same_file(upload: NewUpload | Upload) -> _SameFile:
    return (upload.org_id, upload.name, upload.size, upload.sha256, upload.engine)


def _reused(
    new: NewUpload, seen: Collection[str | None], earlier: dict[_SameFile, Upload]
) -> Upload | None:
    """The earlier upload that answers ``new``, if it asks for one and its request is new."""
    if not new.dedup or new.request_id in seen:
        return None
    return earlier.get(_same_file(new))


def _reusable(
    user_id: str, files: set[_SameFile], sealed_to: str, reusable_after: float | None
) -> ColumnElement[bool]:
    """The user's uploads that can answer a new upload of one of ``files`` (by their SHA-256:
    the caller checks the rest), as :meth:`Uploads.create_or_reuse` says."""
    reusable = and_(
        Upload.user_id == user_id,
        Upload.sha256.in_(sorted({file[3] for file in files})),
        Upload.state == JobState.DONE,
        Upload.result_size.is_not(None),
        Upload.expired_at.is_(None),
        Upload.recipients_sha256 == sealed_to,
    )
    if reusable_after is not None:
        reusable = and_(reusable, Upload.finished_at > reusable_after)
    return reusable


def _queue_open(which: ColumnElement[bool], at: float) -> Update:
    """The UPDATE a stored chunk makes of its upload: none of a finished one (it returns no row),
    and a pending one is queued (leasable from ``at``); a queued or leased one keeps its state."""
    return (
        update(Upload)
        .where(which, Upload.state.not_in(sorted(TERMINAL_STATES)))
        .values(
            state=state_after(_FIRST_CHUNK),
            queued_at=case((in_source(_FIRST_CHUNK), at), else_=Upload.queued_at),
        )
        .execution_options(synchronize_session=False)
    )


def _chunk_row(chunk: Chunk) -> dict[str, Any]:
    return {
        "upload_id": chunk.upload_id,
        "seq": chunk.seq,
        "raw_size": chunk.raw_size,
        "stored_size": chunk.stored_size,
        "codec": chunk.codec,
        "sha256": chunk.sha256,
        "stored_at": chunk.stored_at,
        "pack_id": chunk.pack_id,
        "pack_offset": chunk.pack_offset,
    }


async def _known_chunks(
    session: AsyncSession, chunks: Sequence[Chunk]
) -> dict[tuple[str, int], tuple[int, int, str, str]]:
    """What was recorded before for ``chunks`` (each a report of a chunk recorded already)."""
    if not chunks:
        return {}
    rows = await session.execute(
        select(
            Chunk.upload_id, Chunk.seq, Chunk.raw_size, Chunk.stored_size, Chunk.codec, Chunk.sha256
        ).where(tuple_(Chunk.upload_id, Chunk.seq).in_([(c.upload_id, c.seq) for c in chunks]))
    )
    return {(row[0], row[1]): (row[2], row[3], row[4], row[5]) for row in rows}


def _batch_records(
    chunks: Sequence[Chunk],
    open_states: dict[str, JobState],
    inserted: set[tuple[str, int]],
    known: dict[tuple[str, int], tuple[int, int, str, str]],
    counts: dict[str, int],
) -> list[ChunkRecord]:
    """Each chunk's record, in the batch's order: the first chunk recorded of an upload that had
    none is the one that queued its job."""
    new_per_upload: defaultdict[str, int] = defaultdict(int)
    for upload_id, _ in inserted:
        new_per_upload[upload_id] += 1
    queued: set[str] = set()
    records = []
    for chunk in chunks:
        state = open_states.get(chunk.upload_id)
        count = counts.get(chunk.upload_id, 0)
        key = (chunk.upload_id, chunk.seq)
        if state is None:
            records.append(ChunkRecord(ChunkOutcome.CLOSED, 0, None))
        elif key in inserted:
            first = count == new_per_upload[chunk.upload_id] and chunk.upload_id not in queued
            queued.add(chunk.upload_id)
            outcome = ChunkOutcome.QUEUED if first else ChunkOutcome.STORED
            records.append(ChunkRecord(outcome, count, state))
        else:
            same = known[key] == (chunk.raw_size, chunk.stored_size, chunk.codec, chunk.sha256)
            outcome = ChunkOutcome.SAME if same else ChunkOutcome.DIFFERENT
            records.append(ChunkRecord(outcome, count, state))
    return records


_REFUSED = (ChunkOutcome.CLOSED, ChunkOutcome.DIFFERENT)


async def _hold_packs(session: AsyncSession, pack_ids: Sequence[str]) -> None:
    """Keep the packs ``pack_ids`` from the clean-up until the transaction ends (FOR SHARE, on
    PostgreSQL; SQLite writes one transaction at a time); Conflict if one is being deleted
    already: the chunks in it must be sent again."""
    held = set(
        await session.scalars(
            select(Pack.id)
            .where(Pack.id.in_(pack_ids), Pack.deleted_at.is_(None))
            .order_by(Pack.id)
            .with_for_update(read=True)
        )
    )
    if missing := [pack_id for pack_id in pack_ids if pack_id not in held]:
        raise Conflict(
            f"Pack {missing[0]} is no longer kept: it was not reported in time. Send its chunks "
            "again."
        )


class _RolledBack(Exception):
    """Raised inside a batch's transaction to roll it back."""


def _count_chunks(upload_id: str) -> Select[int]:
    # An index-only count over the primary key's (upload_id, seq) range.
    return select(func.count()).select_from(Chunk).where(Chunk.upload_id == upload_id)


def _new_row(new: NewUpload, upload_id: str, now: float) -> dict[str, Any]:
    empty = new.chunk_count == 0
    return {
        "id": upload_id,
        "org_id": new.org_id,
        "user_id": new.user_id,
        "name": new.name,
        "size": new.size,
        "sha256": new.sha256,
        "engine": new.engine,
        "chunk_size": new.chunk_size,
        "chunk_count": new.chunk_count,
        # Nothing to wait for makes it leasable at once.
        "state": created_in(JobState.QUEUED if empty else JobState.PENDING),
        "attempts": 0,
        "lapses": 0,
        "created_at": now,
        "queued_at": now if empty else None,
        "request_id": new.request_id,
    }


def _requested(user_id: str, request_ids: Sequence[str]) -> ColumnElement[bool]:
    """The user's uploads made by any of ``request_ids``."""
    if not request_ids:
        return false()
    return (Upload.user_id == user_id) & Upload.request_id.in_(request_ids)


async def _check_quotas(
    session: AsyncSession, news: Sequence[NewUpload], quotas: Quotas, now: float
) -> None:
    """QuotaExceeded unless all of ``news`` (new uploads of one organisation) fit its quotas."""
    org_id = news[0].org_id
    adding = sum(new.size for new in news)
    if quotas.max_concurrent_uploads is not None:
        in_flight = await session.scalar(
            select(func.count())
            .select_from(Upload)
            .where(Upload.org_id == org_id, Upload.state.not_in(TERMINAL_STATES))
        )
        if (in_flight or 0) + len(news) > quotas.max_concurrent_uploads:
            most = f"the most its {quotas.plan} plan allows at once"
            raise QuotaExceeded(
                f"The organisation has {in_flight} uploads in flight, {most}; try again when "
                "some have finished."
                if len(news) == 1
                else f"The organisation has {in_flight} uploads in flight: {len(news)} more "
                f"would pass {quotas.max_concurrent_uploads}, {most}."
            )
    if quotas.max_bytes_per_month is not None:
        month = month_start(now)
        used = await session.scalar(
            select(func.coalesce(func.sum(Upload.size), 0)).where(
                Upload.org_id == org_id, Upload.created_at >= month
            )
        )
        if (used or 0) + adding > quotas.max_bytes_per_month:
            what = "This file" if len(news) == 1 else f"These {len(news)} files"
            raise QuotaExceeded(
                f"{what} would take the organisation past the {quotas.max_bytes_per_month} "
                f"bytes a month of its {quotas.plan} plan ({used} used since the 1st, UTC)."
            )


def month_start(now: float) -> float:
    """The first moment of ``now``'s calendar month, UTC: monthly quotas count from there."""
    moment = datetime.fromtimestamp(now, UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
