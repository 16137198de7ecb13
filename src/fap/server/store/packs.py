"""Packs: the objects that hold many small files' chunks end to end, and their deletion.

A pack is made when the server signs its PUT, for one user of one organisation; the chunks in it
point at it once their uploader reports them (:class:`~fap.server.store.models.Chunk`). It is
needed while any of those chunks is (their upload's chunks not deleted yet), and it may still be
PUT, by a URL signed when it was made, until that URL expires. After both, the clean-up deletes
it: first the row is marked (:meth:`Packs.condemn`, which a report of a chunk in it excludes, see
:meth:`~fap.server.store.uploads.Uploads.record_chunks`), then the object goes, then the row.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, exists, select, update

from fap.server.store.database import Database, update_rows
from fap.server.store.ids import new_id
from fap.server.store.models import Chunk, Pack, Upload
from fap.server.store.outages import retried

__all__ = ("Packs",)


class Packs:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, org_id: str, user_id: str, size: int, sha256: str, now: float) -> Pack:
        """A new pack of ``size`` bytes whose SHA-256 is ``sha256``, not stored yet."""
        pack = Pack(
            id=new_id(),
            org_id=org_id,
            user_id=user_id,
            size=size,
            sha256=sha256,
            created_at=now,
            deleted_at=None,
        )
        async with self._db.write() as session:
            session.add(pack)
        return pack

    @retried
    async def get_many(self, org_id: str, pack_ids: Iterable[str]) -> dict[str, Pack]:
        """The packs of the organisation among ``pack_ids`` that are kept (not being deleted);
        another organisation's are as absent as missing ones."""
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Pack).where(
                    Pack.org_id == org_id, Pack.id.in_(set(pack_ids)), Pack.deleted_at.is_(None)
                )
            )
            return {pack.id: pack for pack in rows}

    async def condemn(self, cutoff: float, now: float, limit: int) -> int:
        """Mark up to ``limit`` packs made at or before ``cutoff`` that no chunk needs any more
        (each chunk in it belongs to an upload whose chunks were deleted, or none was reported
        in it) as being deleted; how many were.

        The candidates are locked, skipping those a report holds (it reads them FOR SHARE), and
        checked again once locked: a report that committed between the two statements made its
        pack needed.
        """
        needed = exists().where(
            Chunk.pack_id == Pack.id,
            Chunk.upload_id == Upload.id,
            Upload.chunks_deleted_at.is_(None),
        )
        async with self._db.write() as session:
            candidates = list(
                await session.scalars(
                    select(Pack.id)
                    .where(Pack.deleted_at.is_(None), Pack.created_at <= cutoff, ~needed)
                    .order_by(Pack.created_at, Pack.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            if not candidates:
                return 0
            return await update_rows(
                session,
                update(Pack)
                .where(Pack.id.in_(candidates), Pack.deleted_at.is_(None), ~needed)
                .values(deleted_at=now),
            )

    @retried
    async def condemned(self, limit: int) -> list[str]:
        """Packs marked as being deleted whose rows remain: their objects may remain too."""
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Pack.id)
                .where(Pack.deleted_at.is_not(None))
                .order_by(Pack.deleted_at, Pack.id)
                .limit(limit)
            )
            return list(rows)

    async def forget(self, pack_id: str) -> None:
        """Drop the row of a condemned pack whose object is deleted; the chunks that pointed at
        it keep its id (their uploads' chunks are deleted: nobody reads them)."""
        async with self._db.write() as session:
            await session.execute(
                delete(Pack).where(Pack.id == pack_id, Pack.deleted_at.is_not(None))
            )
