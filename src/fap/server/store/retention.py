"""The clean-up's side of the store: abandoned uploads, and finished uploads whose blobs remain.

Several replicas may clean at once. Each change is one conditional UPDATE that repeats the
condition the row was chosen by, so exactly one replica makes it; the blobs are deleted before
a row is marked, so a replica that dies in between leaves the row to be deleted (again,
harmlessly) by the next pass rather than a blob that nobody deletes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Executable, and_, delete, exists, func, select, update
from sqlalchemy.orm import InstrumentedAttribute

from fap.api import TERMINAL_STATES, JobState, Transition, transition
from fap.server.store.database import Database, update_rows
from fap.server.store.models import Chunk, SealedResultRow, Upload
from fap.server.store.moves import in_source, moving

__all__ = ("MOVES", "Finished", "Retention")

# The move this module makes, checked against the state machine's table at import: an upload
# still waiting for chunks that stopped coming fails. A leased job is never abandoned.
_ABANDON = transition((JobState.PENDING, JobState.QUEUED), JobState.FAILED)
MOVES: tuple[Transition, ...] = (_ABANDON,)
_FINISHED = sorted(TERMINAL_STATES)


@dataclass(frozen=True, slots=True)
class Finished:
    """A finished upload whose blobs the clean-up deletes."""

    id: str
    state: JobState


class Retention:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def abandon(self, cutoff: float, error: str, now: float, limit: int) -> list[Upload]:
        """Fail up to ``limit`` uploads abandoned since ``cutoff`` (see :func:`_abandoned`)."""
        abandoned: list[Upload] = []
        async with self._db.write() as session:
            candidates = await session.scalars(
                select(Upload)
                .where(_abandoned(cutoff))
                .order_by(Upload.created_at, Upload.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            for upload in list(candidates):
                changed = await update_rows(
                    session,
                    moving(_ABANDON)
                    .where(Upload.id == upload.id, _abandoned(cutoff))
                    .values(error=error, finished_at=now),
                )
                if changed == 1:
                    abandoned.append(upload)
        return abandoned

    async def with_chunks(self, cutoff: float, limit: int) -> list[Finished]:
        """Uploads finished at or before ``cutoff`` whose chunk blobs were not deleted yet."""
        return await self._finished_without(Upload.chunks_deleted_at, cutoff, limit)

    async def chunks_deleted(self, upload_id: str, now: float) -> bool:
        """Record that the upload's chunk blobs are gone; False if another replica did first."""
        return await self._mark_once(upload_id, Upload.chunks_deleted_at, chunks_deleted_at=now)

    async def past_retention(self, cutoff: float, limit: int) -> list[Finished]:
        """Uploads finished at or before ``cutoff`` whose blobs were not all deleted yet."""
        return await self._finished_without(Upload.expired_at, cutoff, limit)

    async def _finished_without(
        self, mark: InstrumentedAttribute[float | None], cutoff: float, limit: int
    ) -> list[Finished]:
        """Uploads finished at or before ``cutoff`` that the clean-up step ``mark`` records
        has not handled yet, oldest first."""
        async with self._db.read() as session:
            rows = await session.execute(
                select(Upload.id, Upload.state)
                .where(mark.is_(None), Upload.finished_at <= cutoff, Upload.state.in_(_FINISHED))
                .order_by(Upload.finished_at, Upload.id)
                .limit(limit)
            )
            return [Finished(upload_id, state) for upload_id, state in rows]

    async def expired(self, upload_id: str, now: float) -> bool:
        """Record that every blob of the upload is gone, and delete the sealed result the
        server kept of it, in one transaction; False if another replica did first."""
        return await self._mark_once(
            upload_id,
            Upload.expired_at,
            also=delete(SealedResultRow).where(SealedResultRow.upload_id == upload_id),
            expired_at=now,
            chunks_deleted_at=func.coalesce(Upload.chunks_deleted_at, now),
        )

    async def _mark_once(
        self,
        upload_id: str,
        mark: InstrumentedAttribute[float | None],
        also: Executable | None = None,
        **values: Any,
    ) -> bool:
        """Set ``values`` on a finished upload whose clean-up step ``mark`` is not recorded yet,
        and run ``also`` with it; answer whether this call did (replicas cleaning at once: one
        wins)."""
        async with self._db.write() as session:
            changed = await update_rows(
                session,
                update(Upload)
                .where(Upload.id == upload_id, mark.is_(None), Upload.state.in_(_FINISHED))
                .values(**values),
            )
            if changed == 1 and also is not None:
                await session.execute(also)
        return changed == 1


def _abandoned(cutoff: float) -> ColumnElement[bool]:
    """An upload is abandoned when its chunks stopped coming: it is pending or queued (never
    leased), not every chunk is stored, and neither it nor any chunk was reported after
    ``cutoff``. A complete upload waiting in the queue is not abandoned, however long it waits."""
    recent_chunk = exists().where(Chunk.upload_id == Upload.id, Chunk.stored_at > cutoff)
    stored = (
        select(func.count()).select_from(Chunk).where(Chunk.upload_id == Upload.id)
    ).scalar_subquery()
    return and_(
        in_source(_ABANDON),
        Upload.created_at <= cutoff,
        ~recent_chunk,
        stored < Upload.chunk_count,
    )
