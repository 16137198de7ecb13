"""Uploads and their stored chunks, as the client side sees them."""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, select, update

from fap.server.store.database import Database, update_rows
from fap.server.store.ids import new_id
from fap.server.store.models import Chunk, Upload
from fap.server.store.outages import retried

__all__ = ("ChunkOutcome", "NewUpload", "Uploads")


class ChunkOutcome(enum.Enum):
    STORED = "stored"  # recorded now
    QUEUED = "queued"  # recorded now, and it was the first: the job became leasable
    SAME = "same"  # recorded before with the same sizes and checksum: nothing to do
    DIFFERENT = "different"  # recorded before with other sizes or checksum
    CLOSED = "closed"  # the upload is done or failed: no chunk changes it any more


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


class Uploads:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, new: NewUpload, now: float) -> Upload:
        """A new upload; one without chunks (an empty file) is queued at once.

        A ``request_id`` the user sent before answers the upload that request made, so a retry
        after a lost answer never makes a second one; the route checks it describes the same file.
        """
        empty = new.chunk_count == 0
        upload_id = new_id()
        async with self._db.write() as session:
            # Insert unless the request was seen, in one statement: two copies of one request
            # arriving at two replicas at once make one upload.
            await session.execute(
                self._db.insert(Upload)
                .values(
                    id=upload_id,
                    org_id=new.org_id,
                    user_id=new.user_id,
                    name=new.name,
                    size=new.size,
                    sha256=new.sha256,
                    engine=new.engine,
                    chunk_size=new.chunk_size,
                    chunk_count=new.chunk_count,
                    state="queued" if empty else "pending",
                    attempts=0,
                    lapses=0,
                    created_at=now,
                    queued_at=now if empty else None,
                    request_id=new.request_id,
                )
                .on_conflict_do_nothing(index_elements=[Upload.user_id, Upload.request_id])
            )
            made = await session.scalar(
                select(Upload).where(Upload.id == upload_id)
                if new.request_id is None
                else select(Upload).where(
                    Upload.user_id == new.user_id, Upload.request_id == new.request_id
                )
            )
        assert made is not None  # inserted now, or by the request this one repeats
        return made

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
    async def get_chunk(self, upload_id: str, seq: int) -> Chunk | None:
        async with self._db.read() as session:
            return await session.get(Chunk, (upload_id, seq))

    async def record_chunk(self, upload_id: str, chunk: Chunk) -> ChunkOutcome:
        """Record that ``chunk`` is stored; the first chunk of a pending upload queues its job."""
        async with self._db.write() as session:
            upload = await session.get(Upload, upload_id)
            if upload is None or upload.state in ("done", "failed"):
                return ChunkOutcome.CLOSED
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
            if cast("CursorResult[Any]", inserted).rowcount == 0:
                known = await session.get(Chunk, (upload_id, chunk.seq))
                assert known is not None  # the conflicting row, committed
                same = (known.raw_size, known.stored_size, known.codec, known.sha256) == (
                    chunk.raw_size,
                    chunk.stored_size,
                    chunk.codec,
                    chunk.sha256,
                )
                return ChunkOutcome.SAME if same else ChunkOutcome.DIFFERENT
            queued = await update_rows(
                session,
                update(Upload)
                .where(Upload.id == upload_id, Upload.state == "pending")
                .values(state="queued", queued_at=chunk.stored_at),
            )
        return ChunkOutcome.QUEUED if queued == 1 else ChunkOutcome.STORED

    @retried
    async def chunks_after(self, upload_id: str, after: int, limit: int) -> list[Chunk]:
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Chunk)
                .where(Chunk.upload_id == upload_id, Chunk.seq > after)
                .order_by(Chunk.seq)
                .limit(limit)
            )
            return list(rows)
