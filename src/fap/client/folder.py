"""``fap watch``'s work: keep a directory's files uploaded and their results written out.

Files come from a start-up scan and from change events; each is taken once it settles, checked
against the journal (a version already sent is not sent again; an upload cut short resumes), sent
by the uploader, and its result is written to ``RESULTS_DIR/<relative path>.result.json``.
A small file sent fresh goes in a batch (:mod:`fap.client.small_files`: one request makes the
uploads of many, one more reports their chunks); it waits for its batch without holding one of
the ``FILES_IN_FLIGHT`` senders, so the files that settle while batches are out fill the next.
A server that is away is waited for, with backoff, however long it takes (``once``: until the
session's retry budget runs out); nothing is lost, since the journal holds every step.

A watch stopped with :meth:`FolderSync.stop` (SIGTERM) takes no new file, lets the chunks being
PUT land and be journalled (for at most ``STOP_GRACE_SECONDS``), and returns: the next run
resumes each upload from its stored chunks. Batches out by then finish too; the small files
still waiting for a batch are not asked for, and the next run sends them with the request ids
journalled for them. A file that ``fap retry`` set back to pending is noticed by a running watch
through the journal, and sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from fap.api import ChunkStored, JobState, UploadInfo
from fap.backoff import Backoff
from fap.client.batch import FILES_IN_FLIGHT, FileOutcome, Status, result_path
from fap.client.journal import Journal
from fap.client.results import ResultWaiter, failure_reason, open_result, write_atomic
from fap.client.rules import ignore_reason
from fap.client.runtime import Runtime
from fap.client.small_files import FILES_TO_FILL, SmallFiles
from fap.client.tasks import first_error
from fap.client.uploader import (
    FileChanged,
    LocalFile,
    UploadListener,
    UploadStopped,
    new_request_id,
    raw_chunk_size,
)
from fap.client.watcher import Settler, scan, watch_changes
from fap.errors import (
    ConflictError,
    FapError,
    InputError,
    IntegrityError,
    ServerError,
    ServerUnreachable,
)

__all__ = (
    "CALL_BUDGET_SECONDS",
    "STOP_GRACE_SECONDS",
    "FolderReporter",
    "FolderSummary",
    "FolderSync",
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Change events can be missed (an inotify queue overflow); a periodic rescan catches those files.
RESCAN_SECONDS = 300.0
EARLY_RESCAN_SECONDS = 2.0
# A watch that runs on waits for a server that is away; each request gives up sooner than a
# one-off command would, so the user hears about it, and the watch retries on its own schedule.
CALL_BUDGET_SECONDS = 10.0
# Waits between attempts at a file or at the results while the server is away: 2, 4, … 30 s,
# jittered, since every watcher of a server that restarted lost it at the same moment.
SERVER_AWAY = Backoff(first=2.0, cap=30.0)
# How long a stopped watch lets the chunks being PUT land before it cancels them: a service
# manager's stop (systemd's 90 s, launchd's 20 s) is far off, and SIGTERM-to-exit stays under
# 10 s with the second or two that closing the connections and the journal takes.
STOP_GRACE_SECONDS = 8.0
# How often a running watch looks in the journal for files ``fap retry`` set back to pending
# (and then only if another process changed the journal).
RETRY_CHECK_SECONDS = 1.0


class FolderReporter(Protocol):
    """How a watch tells the command line what happens."""

    def started(self, file: str, size: int) -> None:
        """``file`` (as ``FileOutcome.file`` names it) is about to be sent: ``size`` bytes."""

    def advanced(self, file: str, raw_bytes: int) -> None:
        """``raw_bytes`` more of ``file`` are stored (on a resume: those stored before)."""

    def uploaded(self, outcome: FileOutcome) -> None:
        """Every chunk of the file is stored; its result is awaited."""

    def finished(self, outcome: FileOutcome, *, earlier: bool) -> None:
        """The file is done or failed (``earlier``: in a previous run, as the journal says)."""

    def retrying(self, message: str) -> None:
        """A passing problem (the server is away); the work is kept and retried."""


class _Silent:
    def started(self, file: str, size: int) -> None:
        pass

    def advanced(self, file: str, raw_bytes: int) -> None:
        pass

    def uploaded(self, outcome: FileOutcome) -> None:
        pass

    def finished(self, outcome: FileOutcome, *, earlier: bool) -> None:
        pass

    def retrying(self, message: str) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _Send:
    """A settled file to send, its request id journalled: what its upload is asked for with."""

    key: str
    local: LocalFile
    request_id: str
    resume: str | None  # the upload to carry on, if one was begun
    batched: bool  # sent fresh, and small: in a batch


@dataclass
class FolderSummary:
    """The last word on each file a ``once`` run handled, by its path relative to the directory."""

    outcomes: dict[str, FileOutcome] = field(default_factory=dict)

    @property
    def failed(self) -> list[FileOutcome]:
        return [outcome for outcome in self.outcomes.values() if outcome.status != "done"]


class _JournalListener(UploadListener):
    """Writes an upload's id before its first byte, and each stored chunk: what a resume needs
    (and the raw bytes they hold, for ``fap watch --status``)."""

    def __init__(
        self,
        journal: Journal,
        key: str,
        size: int,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self._journal = journal
        self._key = key
        self._size = size
        self._progress = progress
        self._chunk_size = 1
        self._stored: set[int] = set()

    async def on_upload(self, info: UploadInfo) -> None:
        self._chunk_size = info.chunk_size
        self._stored = set(info.chunks_stored)
        await self._journal.record_upload(
            self._key, info.id, info.chunk_count, len(info.chunks_stored), self._bytes()
        )

    async def on_chunk(self, stored: ChunkStored) -> None:
        self._stored.add(stored.seq)
        if stored.stored == stored.chunk_count:
            # The last one: the upload is journalled uploaded next, in one write for both (cut
            # off before it, a restart finds every chunk stored and sends none again).
            return
        await self._journal.record_progress(self._key, stored.stored, self._bytes())

    def _bytes(self) -> int:
        return sum(raw_chunk_size(seq, self._size, self._chunk_size) for seq in self._stored)

    def on_bytes(self, raw_bytes: int) -> None:
        if self._progress is not None:
            self._progress(raw_bytes)


class FolderSync:
    def __init__(
        self,
        runtime: Runtime,
        journal: Journal,
        root: Path,
        results_dir: Path,
        *,
        engine: str | None = None,
        reporter: FolderReporter | None = None,
        dedup: bool = True,
    ) -> None:
        self.runtime = runtime
        self.journal = journal
        self.shown_root = root  # as the user named it, for the lines they read
        self.root = root.resolve()
        self.results_dir = results_dir.resolve()
        self.engine = engine
        self.dedup = dedup  # a file analysed before may be answered with that analysis
        self.reporter: FolderReporter = reporter or _Silent()
        self._once = False
        self._exclude = (self.results_dir,)
        self._settler = Settler(runtime.settings.settle_seconds)
        self._waiter = ResultWaiter(runtime.session)
        self._candidates: set[Path] = set()  # waiting to settle
        self._queue: asyncio.Queue[Path | None] = asyncio.Queue()  # None: a sender stops
        self._active: set[Path] = set()  # queued or being sent
        self._again: set[Path] = set()  # changed while being sent: look again afterwards
        self._retry_at: dict[Path, float] = {}
        self._attempts: dict[Path, int] = {}
        self._sent: dict[str, int] = {}  # bytes PUT this run, by journal key
        self._deduplicated: set[str] = set()  # keys answered with an earlier analysis this run
        self._summary = FolderSummary()
        self._queue_marks: list[tuple[str, int, int]] = []  # queued, to journal as such
        self._retried: dict[str, float] = {}  # pending rows taken up, by key: their updated_at
        self._told: FapError | None = None  # the passing problem the reporter heard last
        self._stopping = False
        self._stop_by = 0.0  # loop time the chunks in flight have until, once stopping
        self._small = SmallFiles(runtime.uploader, engine=engine, dedup=dedup)
        # Small files handed to their batches and not yet answered: enough to keep every batch
        # full, few enough that a folder of a million files is not a million tasks at once.
        self._to_batch = asyncio.Semaphore(FILES_TO_FILL)
        self._batched: set[asyncio.Task[None]] = set()  # each waits for one file's batch
        self._group: asyncio.TaskGroup | None = None

    async def run(self, *, once: bool = False) -> FolderSummary:
        """Watch until cancelled; with ``once``, handle what is there, wait for results, return."""
        if not await asyncio.to_thread(self.root.is_dir):
            raise InputError(f"{self.shown_root} is not a directory.")
        self._once = once
        for record in await self.journal.under(str(self.root), "uploaded"):
            self._expect(record.path, record.upload_id)
        for record in await self.journal.under(str(self.root), "pending"):
            # Queued by a run that stopped, and gone since: no longer anything to send.
            if record.sha256 is None and not await asyncio.to_thread(Path(record.path).exists):
                await self.journal.forget_queued(record.path)
        await self.journal.changed_elsewhere()  # the baseline: what a retry changes is news
        await self.journal.watch_started(str(self.root), os.getpid())
        stop = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                if not once:
                    group.create_task(self._follow(stop))
                self._candidates.update(await self._scan())
                batching = group.create_task(self._small.run())
                senders = [group.create_task(self._send_loop()) for _ in range(FILES_IN_FLIGHT)]
                results = group.create_task(self._results_loop())
                await self._settle_loop()
                if self._stopping:
                    stop.set()  # the event watcher ends, so the task group can
                    results.cancel()  # a result not fetched now is fetched by the next run
                    await self._drain(senders, batching)
                else:
                    for sender in senders:
                        sender.cancel()
                    batching.cancel()  # every file is answered: no batch is left to make
                    self._waiter.close()
                    await results
        except BaseExceptionGroup as errors:
            raise first_error(errors) from None
        finally:
            stop.set()
            with contextlib.suppress(FapError):  # the journal says why in its own error
                await self.journal.watch_stopped(str(self.root), os.getpid())
        return self._summary

    def stop(self) -> None:
        """Take no new file; let the chunks being PUT land (for ``STOP_GRACE_SECONDS`` at most),
        then :meth:`run` returns. The journal holds every stored chunk: the next run resumes."""
        if self._stopping:
            return
        self._stopping = True
        self._stop_by = asyncio.get_running_loop().time() + STOP_GRACE_SECONDS
        self.runtime.uploader.drain()
        self._small.close()  # the batches out finish; the files waiting for one are not sent

    async def _drain(self, senders: list[asyncio.Task[None]], batching: asyncio.Task[None]) -> None:
        # Files queued but not begun stay journalled as queued: the next run's scan finds them.
        while not self._queue.empty():
            self._queue.get_nowait()
        for _ in senders:
            self._queue.put_nowait(None)
        loop = asyncio.get_running_loop()
        _, late = await asyncio.wait(senders, timeout=max(0.0, self._stop_by - loop.time()))
        for sender in late:
            sender.cancel()
        # The senders hand no more files to batches: the batches out have what grace is left.
        _, late_batches = await asyncio.wait(
            {*self._batched, batching}, timeout=max(0.0, self._stop_by - loop.time())
        )
        for task in late_batches:
            task.cancel()
        if cut_off := len(late) + len(late_batches - {batching}):
            # Past the grace: a chunk cut off now was not reported, and is sent again next run.
            log.warning("stopping: %d files still being sent are cut off; they resume", cut_off)

    # -- finding files ---------------------------------------------------------------------

    async def _scan(self) -> list[Path]:
        return await asyncio.to_thread(scan, self.root, exclude=self._exclude)

    async def _follow(self, stop: asyncio.Event) -> None:
        try:
            async for paths in watch_changes(self.root, exclude=self._exclude, stop=stop):
                self._candidates.update(paths)
        except (OSError, RuntimeError) as error:  # the directory went away, no inotify left
            raise InputError(f"Watching {self.shown_root} failed: {error}.") from error

    async def _settle_loop(self) -> None:
        """Move settled files to the senders; with ``once``, return when all work is handed on."""
        loop = asyncio.get_running_loop()
        interval = max(0.05, min(0.5, self.runtime.settings.settle_seconds / 4))
        # The first rescan comes soon: a file created between the start-up scan and the moment
        # the event watcher was ready raised no event.
        next_scan = loop.time() + EARLY_RESCAN_SECONDS
        next_retry_check = loop.time() + RETRY_CHECK_SECONDS
        while True:
            if self._stopping:
                return
            now = loop.time()
            for path in [p for p, due in self._retry_at.items() if due <= now]:
                del self._retry_at[path]
                self._candidates.add(path)
            if self._candidates:
                looks = await asyncio.to_thread(self._look, list(self._candidates))
                for path, version in looks:
                    if version is not None and not self._settler.is_stable(path, *version):
                        continue
                    self._candidates.discard(path)
                    self._settler.forget(path)
                    if version is not None:
                        self._enqueue(path, *version)
                await self._journal_queued()
            if self._once and not (self._candidates or self._retry_at or self._active):
                return
            if not self._once and now >= next_scan:
                next_scan = now + RESCAN_SECONDS
                self._candidates.update(await self._scan())
            if not self._once and now >= next_retry_check:
                next_retry_check = now + RETRY_CHECK_SECONDS
                await self._take_retried()
            await asyncio.sleep(interval)

    async def _journal_queued(self) -> None:
        marks, self._queue_marks = self._queue_marks, []
        await self.journal.record_queued(marks)

    async def _take_retried(self) -> None:
        """Files another process (``fap retry``) set back to pending become candidates."""
        if not await self.journal.changed_elsewhere():
            return
        for record in await self.journal.under(str(self.root), "pending"):
            # Once per change of the row: a pending file that cannot be sent is not looked at
            # again and again.
            if self._retried.get(record.path) == record.updated_at:
                continue
            self._retried[record.path] = record.updated_at
            path = Path(record.path)
            if path not in self._active and path not in self._retry_at:
                self._candidates.add(path)

    def _look(self, paths: list[Path]) -> list[tuple[Path, tuple[int, int] | None]]:
        """Each path's (size, mtime), or None for one to leave alone. Blocking: in a thread."""
        looks: list[tuple[Path, tuple[int, int] | None]] = []
        for path in paths:
            if reason := ignore_reason(path, self.root, exclude=self._exclude):
                log.debug("ignoring %s: %s", path, reason)
                looks.append((path, None))
                continue
            try:
                stat = path.stat()
            except OSError:
                looks.append((path, None))
            else:
                looks.append((path, (stat.st_size, stat.st_mtime_ns)))
        return looks

    def _enqueue(self, path: Path, size: int, mtime_ns: int) -> None:
        if path in self._active:
            self._again.add(path)
            return
        self._active.add(path)
        self._queue.put_nowait(path)
        self._queue_marks.append((str(path), size, mtime_ns))

    def _say_retrying(self, error: FapError) -> None:
        # The files of one batch fail with the one error: it is said once, not once a file.
        if error is not self._told:
            self._told = error
            self.reporter.retrying(str(error))

    def _retry(self, path: Path) -> None:
        attempt = self._attempts.get(path, 0) + 1
        self._attempts[path] = attempt
        loop = asyncio.get_running_loop()
        self._retry_at[path] = loop.time() + SERVER_AWAY.delay(attempt)

    # -- sending ---------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while (path := await self._queue.get()) is not None:
            handed_on = False
            try:
                send = await self._attempt(path, self._sync(path))
                if send is not None and send.batched:
                    handed_on = await self._hand_on(path, send)
                elif send is not None:
                    await self._attempt(path, self._upload(send))
            finally:
                if not handed_on:
                    self._let_go(path)

    async def _hand_on(self, path: Path, send: _Send) -> bool:
        """Give a small file to a task of its own that waits for its batch, so that this sender
        takes the next file meanwhile (False: stopping, it is not sent)."""
        assert self._group is not None, "senders run in the watch's task group"
        await self._to_batch.acquire()
        if self._stopping:  # it may have waited a while for a place
            self._to_batch.release()
            return False
        task = self._group.create_task(self._send_batched(path, send))
        self._batched.add(task)
        task.add_done_callback(self._batched.discard)
        return True

    async def _send_batched(self, path: Path, send: _Send) -> None:
        try:
            await self._attempt(path, self._upload(send))
        finally:
            self._to_batch.release()
            self._let_go(path)

    def _let_go(self, path: Path) -> None:
        self._active.discard(path)
        if path in self._again:
            self._again.discard(path)
            self._candidates.add(path)

    async def _attempt(self, path: Path, work: Awaitable[T]) -> T | None:
        """What ``work`` on ``path`` comes to; None if it failed (journalled, told, and retried
        if it may pass)."""
        key = str(path)
        try:
            done = await work
        except ServerUnreachable as error:
            if self._once:
                raise
            await self.journal.record_error(key, str(error))  # what a reader of it sees
            self._say_retrying(error)
            self._retry(path)
        except FileChanged:
            self._candidates.add(path)  # settle again, then send the new version
        except UploadStopped:
            pass  # stopping: its stored chunks are journalled, the next run sends the rest
        except (InputError, OSError) as error:
            if not await asyncio.to_thread(path.exists):
                await self.journal.forget_queued(key)
                return None
            await self.journal.record_error(key, str(error))
            if path not in self._attempts:  # say it once, not at every retry
                self._finish(key, upload_id=None, error=str(error))
            if not self._once:
                self._retry(path)  # it may become readable
        except ServerError as error:
            # A refusal (too large, not allowed) will not change; a 5xx or a lost race may.
            transient = isinstance(error, ConflictError) or error.status_code >= 500
            if transient and not self._once:
                await self.journal.record_error(key, str(error))
                self._say_retrying(error)
                self._retry(path)
                return None
            await self.journal.record_failed(key, str(error))
            self._finish(key, upload_id=None, error=str(error))
        else:
            if done is None:  # the file is where it should be: its next trouble starts afresh
                self._attempts.pop(path, None)
            return done
        return None

    async def _sync(self, path: Path) -> _Send | None:
        """Bring one settled file up to date: skip it (None), or say how it is to be sent."""
        if self._stopping:
            # Taken from the queue between stop() and the drain: left unread, so that it stays
            # journalled as queued (reading it would record its hash, as if it were begun).
            return None
        key = str(path)
        name = self._name(key)
        try:
            stat = await asyncio.to_thread(path.stat)
        except OSError as error:
            raise InputError(f"{path} cannot be read: {error.strerror}.") from error
        record = await self.journal.get(key)
        local: LocalFile | None = None
        # A row without a hash is a queued file, never read: read it now.
        if (
            record is None
            or record.sha256 is None
            or not record.same_version(stat.st_size, stat.st_mtime_ns)
        ):
            local = await self.runtime.uploader.inspect(path, name)
            if record is not None and record.sha256 == local.sha256:
                # Touched, not changed: the upload that carries this content still counts.
                await self.journal.touch(key, local.size, local.mtime_ns)
                record = dataclasses.replace(record, size=local.size, mtime_ns=local.mtime_ns)
            else:
                # With the request id its upload is to be asked for: one write, not two.
                record = await self.journal.record_version(
                    key, local.size, local.mtime_ns, local.sha256, request_id=new_request_id()
                )
        elif record.sha256 is not None:
            local = LocalFile(path, name, record.size, record.mtime_ns, record.sha256)
        if record.finished:
            if self._once:  # what an earlier run did still counts for this one
                reason = None if record.state == "done" else record.error or "The analysis failed."
                self._finish(key, record.upload_id, reason, result=record.result_path, earlier=True)
            return None
        if record.state == "uploaded":
            self._expect(key, record.upload_id)
            return None
        if local is None:
            local = await self.runtime.uploader.inspect(path, name)
        if self._stopping:
            return None  # not begun: the next run sends it
        await self.runtime.device()  # results are sealed to registered devices: register first
        request_id = record.request_id
        if request_id is None:
            # Journalled before the upload is asked for: killed before its answer is recorded,
            # the next run asks with the same id and the server answers with the same upload.
            request_id = new_request_id()
            await self.journal.record_request(key, request_id)
        resume = record.upload_id if record.state == "uploading" else None
        batched = resume is None and self._small.takes(local)
        return _Send(key, local, request_id, resume, batched)

    async def _upload(self, send: _Send) -> None:
        """Send one file (in a batch, or alone), journal it uploaded, then await its result."""
        key, local = send.key, send.local
        shown = str(self.shown_root / local.name)
        listener = _JournalListener(
            self.journal, key, local.size, lambda raw: self.reporter.advanced(shown, raw)
        )
        # Nothing is awaited from here until a small file is in its batch's queue: a file told
        # as started is in a batch.
        self.reporter.started(shown, local.size)
        try:
            if send.batched:
                sent = await self._small.upload(
                    local, request_id=send.request_id, listener=listener
                )
            else:
                sent = await self.runtime.uploader.upload(
                    local,
                    engine=self.engine,
                    resume=send.resume,
                    request_id=send.request_id,
                    listener=listener,
                    dedup=self.dedup,
                )
        except ConflictError:
            current = await self.journal.get(key)
            if current is not None and current.state == "pending":
                # Refused before the upload was journalled, so by the create: its request id
                # was spent on another name, engine or chunk size (a restart with other
                # settings). The next attempt asks with a new one.
                await self.journal.record_request(key, new_request_id())
            raise
        self._sent[key] = self._sent.get(key, 0) + sent.bytes_sent
        if sent.deduplicated:
            self._deduplicated.add(key)
        else:
            self._deduplicated.discard(key)
        await self.journal.record_uploaded(key)
        self.reporter.uploaded(self._outcome(key, sent.info.id, "uploaded"))
        self._expect(key, sent.info.id)

    # -- results ---------------------------------------------------------------------------

    def _expect(self, key: str, upload_id: str | None) -> None:
        assert upload_id is not None, "an uploaded file has an upload id"

        async def receive(info: UploadInfo) -> None:
            current = await self.journal.get(key)
            if current is None or current.upload_id != upload_id:
                return  # a newer version of the file has taken its place
            await self._receive(key, info)

        self._waiter.add(upload_id, receive)

    async def _receive(self, key: str, info: UploadInfo) -> None:
        if info.state == JobState.FAILED:
            error = failure_reason(info)
            await self.journal.record_failed(key, error)
            self._finish(key, info.id, error)
            return
        target = result_path(self.results_dir, self._name(key))
        try:
            identity = await self.runtime.device()
            plaintext = await open_result(self.runtime.session, self.runtime.blobs, info, identity)
            await asyncio.to_thread(write_atomic, target, plaintext)
        except ServerUnreachable:
            raise  # the waiter keeps the upload and asks again
        except (ServerError, IntegrityError) as error:
            await self.journal.record_failed(key, str(error))
            self._finish(key, info.id, str(error))
        except OSError as error:
            message = f"The result cannot be written to {target}: {error.strerror}."
            await self.journal.record_error(key, message)
            self._finish(key, info.id, message)
        else:
            await self.journal.record_done(key, str(target))
            self._finish(key, info.id, None, result=str(target))

    async def _results_loop(self) -> None:
        failures = 0
        while True:
            try:
                await self._waiter.run()
            except ServerUnreachable as error:
                if self._once:
                    raise
                self.reporter.retrying(str(error))
                failures += 1
                await asyncio.sleep(SERVER_AWAY.delay(failures))
            else:
                return

    # -- telling -----------------------------------------------------------------------------

    def _outcome(self, key: str, upload_id: str | None, status: Status) -> FileOutcome:
        return FileOutcome(
            file=str(self.shown_root / self._name(key)),
            upload_id=upload_id,
            status=status,
            bytes_sent=self._sent.get(key, 0),
            deduplicated=key in self._deduplicated,
        )

    def _finish(
        self,
        key: str,
        upload_id: str | None,
        error: str | None,
        *,
        result: str | None = None,
        earlier: bool = False,
    ) -> None:
        outcome = self._outcome(key, upload_id, "failed" if error else "done")
        outcome.error, outcome.result_path = error, result
        self._summary.outcomes[self._name(key)] = outcome
        self.reporter.finished(outcome, earlier=earlier)

    def _name(self, key: str) -> str:
        """A file's path relative to the watched directory: its upload name and result path."""
        path = Path(key)
        with contextlib.suppress(ValueError):
            return path.relative_to(self.root).as_posix()
        return path.name
