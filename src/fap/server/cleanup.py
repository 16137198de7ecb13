"""The clean-up: abandoned uploads fail, and blobs nobody needs any more are deleted.

What it does, every ``cleanup_seconds`` (docs/api.md, "Retention", says it for users):

- An upload is *abandoned* when its chunks stopped coming: it is pending or queued (a leased job is
  never touched), not every chunk is stored, and no chunk was reported for ``abandon_after``
  seconds. It fails with a sentence that says so; its chunks go as a failed upload's do.
- A finished upload's chunks are deleted: a done job's result is sealed and stored, a failed job
  will not run again. Not at once, though: a client may still hold a presigned PUT signed before
  the upload finished, so the chunks go once every such URL has expired (``url_ttl_seconds``
  after it finished, and a margin), and no late PUT stores a chunk after the deletion. A failed
  upload's other blobs (a result stored by a lease that lapsed) go with them.
- A pack (many small files' chunks in one object) is deleted once none of its chunks is needed
  (each one's upload had its chunks deleted, or none was ever reported in it) and the URL it was
  signed with has expired.
- Everything an upload stored, its sealed result too, is deleted ``keep_results`` seconds after it
  finished, and the upload is marked expired. Its result route answers 410 from that moment on
  (:func:`check_result_kept`), whether or not this task has run yet.

Every replica runs it. Each change is a conditional update (:mod:`fap.server.store.retention`), so
replicas cleaning at once change each upload once; deleting a blob twice is harmless. It runs
every few minutes, not per request: nothing here is urgent, and an idle server stays idle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fap.api import JobState
from fap.config import ServerSettings
from fap.durations import format_duration
from fap.server.background import BackgroundTask
from fap.server.blobs import BlobStore, pack_key, upload_prefix
from fap.server.errors import Gone
from fap.server.queue import Clock, Notifier, chunks_topic, upload_topic
from fap.server.store import Store, Upload
from fap.server.store.retention import Finished, Retention

__all__ = ("Cleaned", "Cleanup", "check_result_kept")

logger = logging.getLogger(__name__)

# Uploads handled per transaction; a pass repeats batches until the work is done.
_BATCH = 100
# Added to the URL lifetime before a finished upload's chunks go: replicas' clocks may differ.
_CLOCK_MARGIN = 60.0

_Select = Callable[[], Awaitable[list[Finished]]]
_Delete = Callable[[Finished], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Cleaned:
    """What one pass did."""

    abandoned: int = 0
    chunks_deleted: int = 0
    expired: int = 0
    packs_deleted: int = 0


def check_result_kept(upload: Upload, settings: ServerSettings, now: float) -> None:
    """Raise Gone (410) if the upload's result is past ``keep_results``: deleted, or about to be.

    Decided by the clock, not by whether a pass has deleted it yet, so the answer does not depend
    on which replica is asked, nor on when the clean-up last ran.
    """
    keep = settings.keep_results
    due = keep > 0 and upload.finished_at is not None and upload.finished_at + keep <= now
    if upload.expired_at is None and not due:
        return
    kept = f" (results are kept for {format_duration(keep)})" if keep > 0 else ""
    raise Gone(
        f"The result of upload {upload.id} expired and was deleted{kept}; send the file again "
        "to have it analysed anew."
    )


def _abandoned_error(settings: ServerSettings) -> str:
    return (
        f"The upload was abandoned: no chunk came for {format_duration(settings.abandon_after)}; "
        "send the file again to have it analysed."
    )


def _chunks_prefix(upload_id: str) -> str:
    return f"{upload_prefix(upload_id)}chunks/"


class Cleanup:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        notifier: Notifier,
        settings: ServerSettings,
        clock: Clock,
    ) -> None:
        self._retention = Retention(store.db)
        self._packs = store.packs
        self._blobs = blobs
        self._notifier = notifier
        self._settings = settings
        self._clock = clock
        self._task = BackgroundTask("fap-cleanup", self._clean_forever)

    @property
    def late_put_seconds(self) -> float:
        """How long after an upload finished a PUT signed before may still arrive."""
        return self._settings.url_ttl_seconds + _CLOCK_MARGIN

    async def clean(self) -> Cleaned:
        """One pass: fail abandoned uploads, delete finished uploads' chunks and expired blobs."""
        now = self._clock()
        settings = self._settings
        cleaned = Cleaned(
            abandoned=await self._abandon(now) if settings.abandon_after > 0 else 0,
            chunks_deleted=await self._delete_chunks(now),
            expired=await self._expire(now) if settings.keep_results > 0 else 0,
            packs_deleted=await self._delete_packs(now),
        )
        if cleaned != Cleaned():
            logger.info(
                "clean-up: %d abandoned uploads failed, chunks of %d finished uploads deleted, "
                "%d uploads expired, %d packs deleted",
                cleaned.abandoned,
                cleaned.chunks_deleted,
                cleaned.expired,
                cleaned.packs_deleted,
            )
        return cleaned

    def start(self) -> None:
        if self._settings.cleanup_seconds > 0:
            self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _clean_forever(self) -> None:
        # A pass after each interval, not at start: replicas restarted together (a rolling
        # upgrade) need not all clean at once, and a pass is never urgent.
        while True:
            await asyncio.sleep(self._settings.cleanup_seconds)
            try:
                await self.clean()
            except Exception:
                # One failed pass (the object store briefly away, a database locked too long)
                # must not end the clean-up for good; the next pass takes up where it stopped.
                logger.exception(
                    "the clean-up failed; trying again in %g s", self._settings.cleanup_seconds
                )

    async def _abandon(self, now: float) -> int:
        cutoff = now - self._settings.abandon_after
        error = _abandoned_error(self._settings)
        count = 0
        while True:
            batch = await self._retention.abandon(cutoff, error, now, _BATCH)
            for upload in batch:
                logger.info(
                    "upload %s was abandoned: no chunk came for %s",
                    upload.id,
                    format_duration(self._settings.abandon_after),
                )
                # Clients waiting on it learn it failed; a worker cannot hold it (never leased).
                await self._notifier.publish(upload_topic(upload.id), chunks_topic(upload.id))
            count += len(batch)
            if len(batch) < _BATCH:
                return count

    async def _delete_chunks(self, now: float) -> int:
        async def delete(upload: Finished) -> bool:
            # A failed upload has no result to keep: whatever it stored goes.
            if upload.state == JobState.FAILED:
                await self._blobs.delete_prefix(upload_prefix(upload.id))
            else:
                await self._blobs.delete_prefix(_chunks_prefix(upload.id))
            return await self._retention.chunks_deleted(upload.id, self._clock())

        cutoff = now - self.late_put_seconds
        return await _in_batches(lambda: self._retention.with_chunks(cutoff, _BATCH), delete)

    async def _expire(self, now: float) -> int:
        async def delete(upload: Finished) -> bool:
            await self._blobs.delete_prefix(upload_prefix(upload.id))
            return await self._retention.expired(upload.id, self._clock())

        # Never before the chunks' own deadline: a late PUT must not outlive the deletion.
        cutoff = now - max(self._settings.keep_results, self.late_put_seconds)
        return await _in_batches(lambda: self._retention.past_retention(cutoff, _BATCH), delete)

    async def _delete_packs(self, now: float) -> int:
        """Mark the packs nobody needs (after the chunks' own deadline, so no late PUT outlives
        the deletion), then delete each marked pack's object and, once it is gone, its row:
        a replica stopped in between leaves a marked row, whose object the next pass deletes."""
        cutoff = now - self.late_put_seconds
        while await self._packs.condemn(cutoff, self._clock(), _BATCH) == _BATCH:
            pass
        count = 0
        while condemned := await self._packs.condemned(_BATCH):
            for pack_id in condemned:
                # Every id has the same length: the prefix is this one pack's key alone.
                await self._blobs.delete_prefix(pack_key(pack_id))
                await self._packs.forget(pack_id)
            count += len(condemned)
        return count


async def _in_batches(select: _Select, delete: _Delete) -> int:
    """Delete the blobs of each upload ``select`` finds, then mark it, until none is left.

    Blobs first, then the mark: a replica stopped in between leaves an unmarked upload, whose
    blobs the next pass deletes again, never a marked one whose blobs stay forever.
    """
    count = 0
    while True:
        batch = await select()
        for upload in batch:
            if await delete(upload):
                count += 1
        if len(batch) < _BATCH:
            return count
