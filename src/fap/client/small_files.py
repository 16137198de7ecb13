"""Small files sent together: a folder of them costs two requests a batch, not two a file.

Alone, a file of one chunk takes three round trips (create with its URL, PUT, report), and two of
them are the server's: a request each, a transaction each. Here the files that arrive while a
batch is out wait for the next one, which makes all their uploads in one request, PUTs their
chunks end to end as one object (a pack) in one more, and reports them in a third. So batches
grow as the server slows, and a lone file waits for nothing. Where the server signs no pack (one
of the files was analysed before, a request sent again found a chunk stored, an older server),
each chunk is PUT to its own URL, side by side.

A batch the server refuses as a whole (one file it would refuse alone, a quota, a server without
the batch routes) is sent again file by file, with the same request ids: each file gets its own
answer and none is made twice.

:meth:`SmallFiles.close` stops taking files (a watch that is stopping): the batches out finish,
and the files still waiting for one fail with :class:`UploadStopped`, never asked for.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
from dataclasses import dataclass, field

import msgspec

from fap.api import (
    MAX_BATCH,
    UPLOADS_BATCH,
    UPLOADS_REPORTS,
    ChunkReports,
    ChunkSpec,
    ChunkStored,
    JobState,
    PackSpec,
    PackUrl,
    UploadBatch,
    UploadBatchCreated,
    UploadChunkReport,
    UploadCreate,
    UploadCreated,
)
from fap.client.uploader import (
    LocalFile,
    Sent,
    Uploader,
    UploadListener,
    UploadStopped,
    encode_small,
    new_request_id,
)
from fap.errors import InputError, ServerError
from fap.transfer import EncodedChunk

__all__ = ("BATCH_BYTES", "FILES_TO_FILL", "SMALL_FILE", "SmallFiles")

# Files up to this size go in batches: each is read whole, and a batch holds them all at once.
SMALL_FILE = 1024 * 1024
# The raw bytes of one batch, at most (and a file more): what a batch holds in memory.
BATCH_BYTES = 16 * 1024 * 1024
# Batches out at once: one being answered while the next one's files are encoded and PUT.
BATCHES_IN_FLIGHT = 2
# Files handed in at once that keep every batch full: those of the batches out, and a whole
# next batch waiting. A caller that hands in no more keeps its memory bounded (each file waiting
# is a few hundred bytes; its data is read only once its batch is made).
FILES_TO_FILL = MAX_BATCH * (BATCHES_IN_FLIGHT + 1)
# PUTs of small files in flight: each is a few kilobytes, so their round trips, not the link,
# set the pace; many at once keep the link busy (large chunks have the uploader's own limit).
SMALL_PUTS = 8
# Files of a refused batch sent alone at once.
ALONE_IN_FLIGHT = 4
# Answers that say "not this batch" rather than "not now": its files are sent one by one.
_REFUSED = frozenset({400, 404, 405, 409, 413, 422, 429})


@dataclass(eq=False)
class _File:
    local: LocalFile
    request_id: str
    listener: UploadListener
    sent: asyncio.Future[Sent] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    chunk: EncodedChunk | None = None

    def resolve(self, sent: Sent) -> None:
        if not self.sent.done():  # its caller may have stopped waiting
            self.sent.set_result(sent)

    def fail(self, error: BaseException) -> None:
        if not self.sent.done():
            self.sent.set_exception(error)


class SmallFiles:
    """Uploads small files in batches through ``uploader``; :meth:`run` sends them.

    A caller awaits :meth:`upload` for each file, as it would :meth:`Uploader.upload`, while
    :meth:`run` is running (in a task of its own, cancelled once every file is answered).
    """

    def __init__(
        self, uploader: Uploader, *, engine: str | None = None, dedup: bool = True
    ) -> None:
        self._uploader = uploader
        self._engine = engine
        self._dedup = dedup
        self._waiting: asyncio.Queue[_File | None] = asyncio.Queue()  # None: closed
        self._batches = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        self._alone = asyncio.Semaphore(ALONE_IN_FLIGHT)
        self._puts = asyncio.Semaphore(SMALL_PUTS)
        self._batched = True  # until a server without the batch routes says so
        self._closed = False

    @property
    def waiting(self) -> int:
        """Files waiting for a batch to go in."""
        return self._waiting.qsize()

    def takes(self, file: LocalFile) -> bool:
        """Whether ``file`` goes in a batch: one chunk, and small enough to hold whole."""
        chunk_size = self._uploader.settings.chunk_size
        return 0 < file.size <= min(SMALL_FILE, chunk_size)

    async def upload(
        self,
        file: LocalFile,
        *,
        request_id: str | None = None,
        listener: UploadListener | None = None,
    ) -> Sent:
        """Send ``file`` in the next batch; what :meth:`Uploader.upload` would answer.
        :class:`UploadStopped` once :meth:`close` is called, unless its batch is out by then."""
        if self._closed:
            raise _not_sent(file)
        waiting = _File(file, request_id or new_request_id(), listener or UploadListener())
        self._waiting.put_nowait(waiting)
        return await waiting.sent

    def close(self) -> None:
        """Take no more files: the files waiting for a batch fail with :class:`UploadStopped`
        (nothing was asked for them), the batches out finish, and then :meth:`run` returns."""
        if self._closed:
            return
        self._closed = True
        while not self._waiting.empty():
            if (file := self._waiting.get_nowait()) is not None:
                file.fail(_not_sent(file.local))
        self._waiting.put_nowait(None)

    async def run(self) -> None:
        """Send batches of the files waiting, until cancelled (or, once closed, until the
        batches out are answered)."""
        async with asyncio.TaskGroup() as group:
            while (first := await self._waiting.get()) is not None:
                # Files that arrive while the batches in flight are out wait for the next one.
                await self._batches.acquire()
                if self._closed:  # while this one waited: it is not sent either
                    first.fail(_not_sent(first.local))
                    self._batches.release()
                    return
                batch = [first]
                size = first.local.size
                while not self._waiting.empty() and len(batch) < MAX_BATCH and size < BATCH_BYTES:
                    file = self._waiting.get_nowait()
                    # Not closed (no await since the look): close() leaves None alone behind.
                    assert file is not None
                    batch.append(file)
                    size += file.local.size
                group.create_task(self._send(batch))

    async def _send(self, batch: list[_File]) -> None:
        try:
            await self._send_batch(batch)
        except asyncio.CancelledError:
            for file in batch:
                file.sent.cancel()
            raise
        except Exception as error:  # noqa: BLE001 - each file's caller raises it
            for file in batch:  # whatever happened, no caller waits for ever
                file.fail(error)
        finally:
            self._batches.release()

    async def _send_batch(self, batch: list[_File]) -> None:
        batch = await self._encode(batch)
        if not batch:
            return
        if not self._batched:
            await self._each_alone(batch)
            return
        pack: tuple[bytes, PackSpec | None] = (b"", None)
        if len(batch) > 1:  # one file is one PUT anyway
            pack = await asyncio.get_running_loop().run_in_executor(
                self._uploader.executor, _pack, batch
            )
        data, spec = pack
        try:
            made = await self._uploader.session.call(
                "POST", UPLOADS_BATCH, self._creates(batch, spec), returns=UploadBatchCreated
            )
        except ServerError as error:
            if error.status_code not in _REFUSED:
                raise
            if error.route_missing:
                self._batched = False  # an older server: it has no batch routes
            await self._each_alone(batch)
            return
        if made.pack is not None:
            await self._store_packed(batch, made.uploads, made.pack, data)
        else:
            await self._store(batch, made.uploads)

    async def _encode(self, batch: list[_File]) -> list[_File]:
        """The files of ``batch`` encoded, each its one chunk; one that cannot be read fails.
        A slice of the batch per core, each in one trip to a thread (a trip a file would cost
        about as much as encoding it)."""
        loop = asyncio.get_running_loop()
        level = self._uploader.levels.level
        parts = min(len(batch), os.cpu_count() or 1)
        bounds = [len(batch) * index // parts for index in range(parts + 1)]
        encoded = await asyncio.gather(
            *(
                loop.run_in_executor(self._uploader.executor, _encode_each, batch[start:end], level)
                for start, end in itertools.pairwise(bounds)
            )
        )
        outcomes = [outcome for part in encoded for outcome in part]
        ready = []
        for file, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, InputError):
                file.fail(outcome)
            else:
                file.chunk = outcome
                ready.append(file)
        return ready

    def _creates(self, batch: list[_File], pack: PackSpec | None) -> UploadBatch:
        uploads = []
        for file in batch:
            assert file.chunk is not None  # encoded
            uploads.append(
                UploadCreate(
                    name=file.local.name,
                    size=file.local.size,
                    sha256=file.local.sha256,
                    engine=self._engine,
                    chunk_size=self._uploader.settings.chunk_size,
                    request_id=file.request_id,
                    chunks=[
                        ChunkSpec(seq=0, size=file.chunk.stored_size, sha256=file.chunk.sha256)
                    ],
                    dedup=self._dedup,
                )
            )
        return UploadBatch(uploads=uploads, pack=pack)

    async def _store(self, batch: list[_File], made: list[UploadCreated]) -> None:
        """PUT the chunks of the uploads ``made`` for ``batch``, then report them together."""
        pairs = list(zip(batch, made, strict=True))
        # Each caller hears of its upload before any byte of it is sent; all at once, so that
        # what they do with it (a journal's write) is not done one after another's answer.
        await asyncio.gather(*(file.listener.on_upload(created.upload) for file, created in pairs))
        sending: list[tuple[_File, UploadCreated]] = []
        for file, created in pairs:
            if created.upload.state != JobState.PENDING:
                # Its one chunk is stored: a resent request id named an upload that has it, or
                # the file was analysed before (done: dedup).
                file.listener.on_bytes(file.local.size)
                dedup = created.upload.state == JobState.DONE
                file.resolve(Sent(created.upload, 0, deduplicated=dedup))
            else:
                sending.append((file, created))
        put = await asyncio.gather(
            *(self._put(file, created) for file, created in sending), return_exceptions=True
        )
        stored = []
        for (file, created), outcome in zip(sending, put, strict=True):
            if isinstance(outcome, ServerError):
                file.fail(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                stored.append((file, created))
        if stored:
            await self._report(stored)

    async def _store_packed(
        self, batch: list[_File], made: list[UploadCreated], pack: PackUrl, data: bytes
    ) -> None:
        """PUT ``data``, the chunks of ``batch`` end to end, as the pack the server signed, then
        report them; a refused PUT sends each file alone (its upload, found again by its request
        id, has its chunk signed on its own)."""
        pairs = list(zip(batch, made, strict=True))
        await asyncio.gather(*(file.listener.on_upload(created.upload) for file, created in pairs))
        try:
            await self._uploader.put_pack(pack, data, puts=self._puts)
        except ServerError:
            await self._each_alone(batch)
            return
        await self._report(pairs, pack.pack_id)

    async def _put(self, file: _File, created: UploadCreated) -> None:
        assert file.chunk is not None
        # No URL for a pending upload's chunk: a request sent again found it stored, unreported.
        for url in created.chunk_urls:
            await self._uploader.put_chunk(created.upload.id, file.chunk, url, puts=self._puts)

    async def _report(
        self, stored: list[tuple[_File, UploadCreated]], pack_id: str | None = None
    ) -> None:
        """Report the chunks ``stored``: each its own object, or (``pack_id``) the pack of them
        all, end to end in this order."""
        reports = []
        offset = 0
        for file, created in stored:
            chunk = file.chunk
            assert chunk is not None
            reports.append(
                UploadChunkReport(
                    upload_id=created.upload.id,
                    seq=0,
                    raw_size=chunk.raw_size,
                    stored_size=chunk.stored_size,
                    codec="zstd" if chunk.codec == "zstd" else "raw",
                    sha256=chunk.sha256,
                    pack_id=pack_id,
                    pack_offset=offset if pack_id is not None else 0,
                )
            )
            offset += chunk.stored_size
        try:
            answers = await self._uploader.session.call(
                "POST", UPLOADS_REPORTS, ChunkReports(reports), returns=list[ChunkStored]
            )
        except ServerError as error:
            if error.status_code not in _REFUSED:
                raise
            # Alone, each file learns what became of its own chunk (the same request id finds
            # its upload, and a chunk stored but not recorded is PUT again).
            await self._each_alone([file for file, _ in stored])
            return
        for (file, created), answer in zip(stored, answers, strict=True):
            assert file.chunk is not None
            file.listener.on_bytes(file.local.size)
            await file.listener.on_chunk(answer)
            info = msgspec.structs.replace(created.upload, chunks_stored=[0], state=answer.state)
            file.resolve(Sent(info, file.chunk.stored_size))

    async def _each_alone(self, files: list[_File]) -> None:
        async def alone(file: _File) -> None:
            async with self._alone:
                try:
                    file.resolve(
                        await self._uploader.upload(
                            file.local,
                            engine=self._engine,
                            request_id=file.request_id,
                            listener=file.listener,
                            dedup=self._dedup,
                        )
                    )
                except Exception as error:  # noqa: BLE001 - the file's caller raises it
                    file.fail(error)

        await asyncio.gather(*(alone(file) for file in files))


def _encode_each(files: list[_File], level: int) -> list[EncodedChunk | InputError]:
    """Each file's one chunk, or why it could not be read (every other error is raised)."""
    encoded: list[EncodedChunk | InputError] = []
    for file in files:
        try:
            encoded.append(encode_small(file.local, level))
        except InputError as error:
            encoded.append(error)
    return encoded


def _pack(batch: list[_File]) -> tuple[bytes, PackSpec]:
    """The encoded chunks of ``batch`` end to end in its order (the pack's bytes), and what the
    server signs its PUT for."""
    data = b"".join(_encoded(file).data for file in batch)
    return data, PackSpec(size=len(data), sha256=hashlib.sha256(data).hexdigest())


def _encoded(file: _File) -> EncodedChunk:
    assert file.chunk is not None  # every file of a batch out is encoded
    return file.chunk


def _not_sent(file: LocalFile) -> UploadStopped:
    return UploadStopped(f"{file.path} was not sent: batches stopped before its turn.")
