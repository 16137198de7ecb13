"""The upload engine: one code path for ``fap upload`` and ``fap watch``.

One file goes like this: hash it (sha256, in a thread); create the upload (or look up the one to
resume and skip the chunks the server already stores); then read the file once in chunk order,
compress each chunk on the thread pool (at a zstd level adapted to whichever of the link and
the CPU is the limit: ``fap.transfer.adapt``), ask for its presigned URL — signed for the exact size and
SHA-256 of the encoded bytes, so it can only be had once the chunk is encoded; the chunks encoded
while one request is out go together in the next — and PUT it while later chunks are still
compressing; report each stored chunk. Memory stays bounded: a chunk takes a buffer slot
before it is read and gives it back once it is stored, and there are ``cores + parallel_puts``
slots — enough to keep every core compressing while every PUT is in flight, and no more. Each slot
reads into a buffer of its own, used for chunk after chunk.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from io import BufferedReader
from pathlib import Path
from stat import S_ISREG
from typing import NamedTuple

import httpx
import msgspec

from fap.api import (
    CHUNKS,
    TERMINAL_STATES,
    UPLOAD,
    UPLOADS,
    ApiSession,
    ChunkReport,
    ChunkSpec,
    ChunkStored,
    ChunkUrl,
    JobState,
    PackUrl,
    UploadCreate,
    UploadCreated,
    UploadInfo,
)
from fap.client.chunk_urls import ChunkUrlBook
from fap.client.tasks import first_error
from fap.config import ClientSettings
from fap.errors import FapError, InputError, ServerError
from fap.transfer import (
    EncodedChunk,
    chunk_count,
    encode_chunk,
    file_sha256,
    put_bytes,
    read_chunk_into,
)
from fap.transfer.adapt import LevelControl
from fap.transfer.schedule import BandwidthSchedule

__all__ = (
    "FileChanged",
    "LocalFile",
    "Sent",
    "UploadListener",
    "UploadStopped",
    "Uploader",
    "encode_small",
    "new_request_id",
    "raw_chunk_size",
)


@dataclass(frozen=True, slots=True)
class LocalFile:
    """One version of a local file: what the server is told about it."""

    path: Path
    name: str  # the name the upload carries (a base name, or a path relative to a watched dir)
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Sent:
    """An upload with every chunk stored, and the bytes this call PUT for it (fewer on a resume).
    ``deduplicated``: the server answered with an earlier analysis of the file (done)."""

    info: UploadInfo
    bytes_sent: int
    deduplicated: bool = False


class UploadListener:
    """What an upload tells its caller as it goes; every method is optional."""

    async def on_upload(self, info: UploadInfo) -> None:
        """The upload exists (created or resumed), before any byte is sent."""

    async def on_chunk(self, stored: ChunkStored) -> None:
        """The server confirmed one more stored chunk; ``stored.stored`` counts them all."""

    def on_bytes(self, raw_bytes: int) -> None:
        """``raw_bytes`` more of the file are stored (or were stored before a resume)."""


def new_request_id() -> str:
    """A request id for one upload to create (the server takes up to 64 characters)."""
    return uuid.uuid4().hex


def raw_chunk_size(seq: int, size: int, chunk_size: int) -> int:
    return max(0, min(chunk_size, size - seq * chunk_size))


class FileChanged(InputError):
    """The file changed under the reader; once it settles, it is a new version to send."""


class UploadStopped(FapError):
    """The uploader was drained (:meth:`Uploader.drain`) before every chunk of a file was
    stored; a resume of the upload sends the rest."""


def _changed(file: LocalFile) -> FileChanged:
    return FileChanged(f"{file.path} changed while it was being uploaded.")


class Uploader:
    """Uploads files through one API session and one keep-alive HTTP client for blob traffic.

    ``bytes_sent`` counts the stored (compressed) bytes PUT, so a resumed upload shows it sent
    only what was missing.
    """

    def __init__(
        self,
        session: ApiSession,
        settings: ClientSettings,
        *,
        blobs: httpx.AsyncClient,
        executor: Executor,
        workers: int,
        bwlimit: BandwidthSchedule | None = None,
        level: int | None = None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.blobs = blobs
        self.executor = executor
        self.bytes_sent = 0
        self._workers = workers
        self._parallel_puts = max(1, settings.parallel_puts)
        # Shared by every file in flight, so memory stays bounded however many files are sent.
        self._slots = asyncio.Semaphore(workers + self._parallel_puts)
        self._puts = asyncio.Semaphore(self._parallel_puts)
        # One per slot at most, made as first needed: a slot's chunk is read into one.
        self._buffers: list[bytearray] = []
        self._pacer = _Pacer(bwlimit) if bwlimit and not bwlimit.unlimited else None
        # ``level``: where the zstd level starts (the last run's, if known).
        self.levels = LevelControl() if level is None else LevelControl(start=level)
        self._draining = False

    def drain(self) -> None:
        """Start no new chunk: those being PUT finish and are reported (so a resume need not
        send them again), and an upload with chunks left ends with :class:`UploadStopped`."""
        self._draining = True

    async def inspect(self, path: Path, name: str | None = None) -> LocalFile:
        """Stat and hash ``path`` (off the event loop); refuse a file that changes meanwhile."""
        loop = asyncio.get_running_loop()
        # One trip to a thread for all three steps: for a folder of small files the trips, not
        # the hashing, would cost the most.
        after, digest = await loop.run_in_executor(self.executor, _stat_and_hash, path)
        return LocalFile(path, name or path.name, after.st_size, after.st_mtime_ns, digest)

    async def upload(
        self,
        file: LocalFile,
        *,
        engine: str | None = None,
        resume: str | None = None,
        request_id: str | None = None,
        listener: UploadListener | None = None,
        dedup: bool = True,
    ) -> Sent:
        """Send ``file``; with ``resume``, continue that upload from the chunks already stored.

        ``request_id`` names the upload to create (default: a new one). A caller that journals
        it before the call and passes the same one after a crash gets the upload the lost call
        made, not a second one: the server answers a request id it knows with its upload.
        ``dedup``: a file analysed before may be answered with that analysis, nothing sent.
        """
        listener = listener or UploadListener()
        request_id = request_id or new_request_id()
        if resume is None and chunk_count(file.size, self.settings.chunk_size) == 1:
            return await self._send_alone(file, engine, request_id, listener, dedup)
        info = await self._start(file, engine, resume, request_id, dedup)
        await listener.on_upload(info)
        # A resent request id, or a resumed upload, may name one that finished meanwhile; a
        # created one that is done already was analysed before (dedup).
        if info.state in TERMINAL_STATES:
            listener.on_bytes(file.size)
            return Sent(info, 0, deduplicated=info.state == JobState.DONE and info.id != resume)
        stored = set(info.chunks_stored)
        missing = [seq for seq in range(info.chunk_count) if seq not in stored]
        listener.on_bytes(sum(raw_chunk_size(seq, file.size, info.chunk_size) for seq in stored))
        if not missing:
            return Sent(info, 0)
        return await self._send(file, info, missing, listener)

    async def _start(
        self, file: LocalFile, engine: str | None, resume: str | None, request_id: str, dedup: bool
    ) -> UploadInfo:
        if resume is not None:
            try:
                info = await self.session.call(
                    "GET", UPLOAD.format(upload_id=resume), returns=UploadInfo
                )
            except ServerError as error:
                if error.status_code != 404:
                    raise
            else:
                if info.size == file.size and info.sha256 == file.sha256:
                    return info
        return (await self._create(file, engine, request_id, dedup)).upload

    async def _create(
        self,
        file: LocalFile,
        engine: str | None,
        request_id: str,
        dedup: bool,
        chunks: Sequence[ChunkSpec] = (),
    ) -> UploadCreated:
        body = UploadCreate(
            name=file.name,
            size=file.size,
            sha256=file.sha256,
            engine=engine,
            chunk_size=self.settings.chunk_size,
            # The session resends this very body after a lost answer: one upload, not two.
            request_id=request_id,
            chunks=list(chunks),
            dedup=dedup,
        )
        return await self.session.call("POST", UPLOADS, body, returns=UploadCreated)

    async def _send_alone(
        self,
        file: LocalFile,
        engine: str | None,
        request_id: str,
        listener: UploadListener,
        dedup: bool,
    ) -> Sent:
        """A file of one chunk: encoded before its upload is created, so that the answer brings
        the chunk's URL — one round trip fewer, of the three that are most of a small file's
        cost."""
        loop = asyncio.get_running_loop()
        chunk_size = self.settings.chunk_size
        async with self._slots:
            buffer = self._buffer(chunk_size)
            try:
                chunk = await loop.run_in_executor(
                    self.executor, _read_and_encode, file, chunk_size, buffer, self.levels.level
                )
                spec = ChunkSpec(seq=0, size=chunk.stored_size, sha256=chunk.sha256)
                created = await self._create(file, engine, request_id, dedup, [spec])
                info = created.upload
                await listener.on_upload(info)
                if info.state != JobState.PENDING:
                    # Its one chunk is stored: a resent request id named an upload that has it,
                    # or the file was analysed before (done: dedup).
                    listener.on_bytes(file.size)
                    return Sent(info, 0, deduplicated=info.state == JobState.DONE)
                book = ChunkUrlBook(self.session, info.id)
                # A server that signs nothing in the create (an older one) is asked as for any
                # other chunk.
                url = created.chunk_urls[0] if created.chunk_urls else await book.take(chunk)
                await self._put(book, _Ready(chunk, url))
                answer = await self._report(info.id, chunk)
            finally:
                self._buffers.append(buffer)  # stored, or given up: its bytes are not needed
        listener.on_bytes(chunk.raw_size)
        await listener.on_chunk(answer)
        await self._check_unchanged(file)
        stored = msgspec.structs.replace(info, chunks_stored=[0], state=answer.state)
        return Sent(stored, chunk.stored_size)

    async def _send(
        self,
        file: LocalFile,
        info: UploadInfo,
        missing: list[int],
        listener: UploadListener,
    ) -> Sent:
        loop = asyncio.get_running_loop()
        book = ChunkUrlBook(self.session, info.id)
        queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        senders = min(self._parallel_puts, len(missing))
        latest = ChunkStored(
            upload_id=info.id,
            seq=-1,  # none reported yet
            stored=len(info.chunks_stored),
            chunk_count=info.chunk_count,
            state=info.state,
        )
        sent = 0
        done = 0  # chunks of ``missing`` stored
        held = 0  # buffer slots this file holds: given back whatever happens

        async def encode_and_sign(encoding: asyncio.Future[EncodedChunk]) -> _Ready:
            chunk = await encoding
            return _Ready(chunk, await book.take(chunk))

        async def read_and_compress(handle: BufferedReader, group: asyncio.TaskGroup) -> None:
            nonlocal held
            for index, seq in enumerate(missing):
                if self._draining:
                    break
                await self._slots.acquire()
                held += 1
                buffer = self._buffer(info.chunk_size)
                raw = await loop.run_in_executor(
                    self.executor, read_chunk_into, handle, seq, info.chunk_size, buffer
                )
                if len(raw) != raw_chunk_size(seq, file.size, info.chunk_size):
                    raise _changed(file)
                # One chunk per core fills the pipeline: the first PUT waits on them alone.
                filling = index < self._workers
                level = self.levels.filling_level if filling else self.levels.level
                encoding = loop.run_in_executor(self.executor, encode_chunk, seq, raw, level)
                task = group.create_task(encode_and_sign(encoding))
                queue.put_nowait(_Pending(encoding, task, buffer))
            for _ in range(senders):
                queue.put_nowait(None)

        async def send() -> None:
            nonlocal held, latest, sent, done
            filling = True  # a file's first chunk is waited for however fast the CPU is
            while (pending := await queue.get()) is not None:
                encoded_first = pending.encoding.done()
                ready = await pending.ready
                if self._draining:
                    break
                # A chunk stored raw says nothing of what a level costs: it was hardly encoded.
                if not filling and ready.chunk.codec == "zstd":
                    if encoded_first:
                        self.levels.link_waits()
                    else:
                        self.levels.cpu_waits()
                filling = False
                await self._put(book, ready)
                sent += ready.chunk.stored_size
                answer = await self._report(info.id, ready.chunk)
                done += 1
                self._buffers.append(pending.buffer)  # stored: its bytes are no longer needed
                held -= 1
                self._slots.release()
                # Reports may come back out of order: keep the answer that knows the most.
                if answer.stored > latest.stored:
                    latest = answer
                listener.on_bytes(ready.chunk.raw_size)
                await listener.on_chunk(answer)

        handle = await loop.run_in_executor(self.executor, _open, file)
        try:
            async with asyncio.TaskGroup() as group:
                reader = group.create_task(read_and_compress(handle, group))
                await asyncio.wait([group.create_task(send()) for _ in range(senders)])
                if self._draining:
                    # The senders stopped short: chunks still being read or signed are not sent.
                    reader.cancel()
                    while not queue.empty():
                        if (left := queue.get_nowait()) is not None:
                            left.ready.cancel()
        except BaseExceptionGroup as errors:
            raise first_error(errors) from None
        finally:
            for _ in range(held):
                self._slots.release()
            handle.close()  # a read-only handle: closing it does not wait on the disk
        if done < len(missing):
            raise UploadStopped(
                f"The upload of {file.path} stopped with {latest.stored} of {info.chunk_count} "
                "chunks stored; it resumes from there."
            )
        await self._check_unchanged(file)
        # Every chunk is stored: each was before, or its report was answered.
        stored = list(range(info.chunk_count))
        return Sent(msgspec.structs.replace(info, chunks_stored=stored, state=latest.state), sent)

    async def _check_unchanged(self, file: LocalFile) -> None:
        """FileChanged if ``file`` is no longer the version that was hashed and sent."""
        loop = asyncio.get_running_loop()
        after = await loop.run_in_executor(self.executor, _stat_regular, file.path)
        if (after.st_size, after.st_mtime_ns) != (file.size, file.mtime_ns):
            raise _changed(file)

    def _buffer(self, size: int) -> bytearray:
        """A free read buffer of at least ``size`` bytes (a slot is held for it)."""
        while self._buffers:
            buffer = self._buffers.pop()
            if len(buffer) >= size:
                return buffer
        return bytearray(size)

    async def put_chunk(
        self, upload_id: str, chunk: EncodedChunk, url: ChunkUrl, *, puts: asyncio.Semaphore
    ) -> None:
        """PUT one encoded chunk of ``upload_id`` to its presigned ``url`` (asked for again if it
        expired meanwhile), within ``puts`` in flight and the uploader's rate limit."""
        await self._put(ChunkUrlBook(self.session, upload_id), _Ready(chunk, url), puts)

    async def put_pack(self, pack: PackUrl, data: bytes, *, puts: asyncio.Semaphore) -> None:
        """PUT a pack of small files' chunks to its presigned URL, within ``puts`` in flight and
        the uploader's rate limit. A refusal is the caller's to handle: a pack's URL is not
        renewed (its files can each be sent alone instead)."""
        async with puts:
            if self._pacer is not None:
                await self._pacer.take(len(data))
            await put_bytes(self.blobs, pack.url, data, pack.headers)
        self.bytes_sent += len(data)

    async def _put(
        self, book: ChunkUrlBook, ready: _Ready, puts: asyncio.Semaphore | None = None
    ) -> None:
        chunk, url = ready
        async with puts or self._puts:
            if self._pacer is not None:
                await self._pacer.take(chunk.stored_size)
            try:
                await put_bytes(self.blobs, url.url, chunk.data, url.headers)
            except ServerError as error:
                # 403: the URL expired while the chunk waited (a slow link, a long resume).
                if error.status_code != 403:
                    raise
                url = await book.renew(chunk)
                await put_bytes(self.blobs, url.url, chunk.data, url.headers)
        self.bytes_sent += chunk.stored_size

    async def _report(self, upload_id: str, chunk: EncodedChunk) -> ChunkStored:
        report = ChunkReport(
            seq=chunk.seq,
            raw_size=chunk.raw_size,
            stored_size=chunk.stored_size,
            codec="zstd" if chunk.codec == "zstd" else "raw",
            sha256=chunk.sha256,
        )
        return await self.session.call(
            "POST", CHUNKS.format(upload_id=upload_id), report, returns=ChunkStored
        )


class _Pacer:
    """Spaces PUTs out so that the average upload rate stays under the rate the schedule has in
    force (bytes per second); none while it says ``off``.

    ``clock`` is the local wall clock the schedule is read by; the spacing itself is measured on
    the event loop's monotonic clock, which a wall clock set back or forward does not move.
    """

    def __init__(
        self, schedule: BandwidthSchedule, *, clock: Callable[[], datetime] = datetime.now
    ) -> None:
        self._schedule = schedule
        self._clock = clock
        self._next = 0.0  # loop time from which the next PUT may start
        self._rate: float | None = None
        # The wall-clock span the cached rate holds for: asking the schedule once per boundary
        # keeps a PUT's cost to one clock read.
        self._span: tuple[datetime, datetime] | None = None

    def delay(self, size: int, now: float) -> float:
        """Seconds the PUT of ``size`` bytes waits, asked at loop time ``now``."""
        rate = self._rate_now()
        if rate is None:
            # No debt carries over into the next limited span: it starts at its own rate.
            self._next = now
            return 0.0
        start = max(now, self._next)
        self._next = start + size / rate
        return start - now

    async def take(self, size: int) -> None:
        wait = self.delay(size, asyncio.get_running_loop().time())
        if wait > 0:
            await asyncio.sleep(wait)

    def _rate_now(self) -> float | None:
        wall = self._clock()
        # Before the span: the clock was set back (a DST change, a correction): ask again.
        if self._span is None or not self._span[0] <= wall < self._span[1]:
            self._rate = self._schedule.rate_at(wall)
            self._span = (wall, self._schedule.next_change(wall))
        return self._rate


class _Pending(NamedTuple):
    """A chunk handed to the encoder, the task that makes it ready to PUT, and the buffer it was
    read into (a raw chunk's stored bytes are a view of it)."""

    encoding: asyncio.Future[EncodedChunk]
    ready: asyncio.Task[_Ready]
    buffer: bytearray


class _Ready(NamedTuple):
    """An encoded chunk with the URL signed for its bytes."""

    chunk: EncodedChunk
    url: ChunkUrl


def _open(file: LocalFile) -> BufferedReader:
    try:
        return file.path.open("rb")
    except OSError as error:
        raise _unreadable(file.path, error) from error


def _unreadable(path: Path, error: OSError) -> InputError:
    return InputError(f"{path} cannot be read: {error.strerror}.")


def encode_small(file: LocalFile, level: int) -> EncodedChunk:
    """A small file read whole and encoded as its one chunk: FileChanged unless the bytes read
    are the version that was hashed (so what is sent is what the upload names)."""
    with _open(file) as handle:
        try:
            raw = handle.read(file.size + 1)
        except OSError as error:
            raise _unreadable(file.path, error) from error
    if len(raw) != file.size or hashlib.sha256(raw).hexdigest() != file.sha256:
        raise _changed(file)
    return encode_chunk(0, raw, level)


def _read_and_encode(
    file: LocalFile, chunk_size: int, buffer: bytearray, level: int
) -> EncodedChunk:
    """The one chunk of a small file, read into ``buffer`` and encoded."""
    with _open(file) as handle:
        try:
            raw = read_chunk_into(handle, 0, chunk_size, buffer)
        except OSError as error:
            raise _unreadable(file.path, error) from error
    if len(raw) != file.size:
        raise _changed(file)
    return encode_chunk(0, raw, level)


def _stat_and_hash(path: Path) -> tuple[os.stat_result, str]:
    """The stat and SHA-256 of the regular file ``path``; FileChanged if it changed meanwhile."""
    before = _stat_regular(path)
    try:
        digest = file_sha256(path)
    except OSError as error:
        raise _unreadable(path, error) from error
    after = _stat_regular(path)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise FileChanged(f"{path} changed while it was being read.")
    return after, digest


def _stat_regular(path: Path) -> os.stat_result:
    try:
        stat = path.stat()
    except FileNotFoundError as error:
        raise InputError(f"{path} does not exist.") from error
    except OSError as error:
        raise _unreadable(path, error) from error
    if not S_ISREG(stat.st_mode):
        raise InputError(f"{path} is not a regular file.")
    return stat
