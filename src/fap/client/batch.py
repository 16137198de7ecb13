"""``fap upload``'s work: send a list of files, wait for their results, write them out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import Literal, Protocol

from fap.api import JobState, UploadInfo
from fap.client.results import ResultWaiter, failure_reason, open_result, write_atomic
from fap.client.rules import ignore_reason
from fap.client.runtime import Runtime
from fap.client.small_files import SmallFiles
from fap.client.tasks import first_error
from fap.client.uploader import Sent, UploadListener
from fap.client.watcher import scan
from fap.errors import InputError, IntegrityError, ServerError

__all__ = (
    "FILES_IN_FLIGHT",
    "NOT_AWAITED",
    "NOT_SENT",
    "BatchFile",
    "BatchReporter",
    "FileOutcome",
    "Status",
    "check_file",
    "files_in",
    "result_path",
    "upload_files",
)

# Files sent at once. Chunks of one file already go out in parallel; a few files at once keep
# the link busy through the round trips of many small files. Memory stays bounded by the
# uploader's buffer slots, which all files share.
FILES_IN_FLIGHT = 4

Status = Literal["uploaded", "done", "failed"]

# What ``fail_fast`` makes of the files the first failure stopped.
NOT_SENT = "Not sent: stopped at the first failure (--fail-fast)."
NOT_AWAITED = (
    "Uploaded, but its result was not awaited: stopped at the first failure (--fail-fast)."
)


@dataclass(frozen=True, slots=True)
class BatchFile:
    """A file to send, and the name its upload and its result carry."""

    path: Path
    name: str  # its file name, or its path relative to the directory it was found in


@dataclass
class FileOutcome:
    """What became of one file; ``--json`` prints it as one line."""

    file: str
    upload_id: str | None = None
    status: Status = "failed"
    result_path: str | None = None
    error: str | None = None
    bytes_sent: int = 0  # stored (compressed) bytes this run PUT for the file
    deduplicated: bool = False  # answered with an earlier analysis of the file: nothing sent

    def as_dict(self) -> dict[str, str | int | None]:
        return {
            "file": self.file,
            "upload_id": self.upload_id,
            "status": self.status,
            "result_path": self.result_path,
            "error": self.error,
            "bytes_sent": self.bytes_sent,
            "deduplicated": self.deduplicated,
        }


class BatchReporter(Protocol):
    """How a batch tells the command line what happens."""

    def started(self, file: str, size: int) -> None:
        """``file`` is hashed and about to be sent."""

    def advanced(self, file: str, raw_bytes: int) -> None:
        """``raw_bytes`` more of ``file`` are stored."""

    def uploaded(self, outcome: FileOutcome) -> None:
        """Every chunk of the file is stored; the result is still to come."""

    def finished(self, outcome: FileOutcome) -> None:
        """The file is done, failed, or (without waiting) uploaded: its last word."""


class _Silent:
    def started(self, file: str, size: int) -> None:
        pass

    def advanced(self, file: str, raw_bytes: int) -> None:
        pass

    def uploaded(self, outcome: FileOutcome) -> None:
        pass

    def finished(self, outcome: FileOutcome) -> None:
        pass


def check_file(path: Path) -> str | None:
    """Why ``path`` cannot be uploaded (one sentence), or None when it can be read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return f"{path} does not exist."
    except OSError as error:
        return f"{path} cannot be read: {error.strerror}."
    if S_ISDIR(mode):
        return (
            f"{path} is a directory; add --recursive to upload the files in it, or use "
            f"fap watch {path}."
        )
    if not S_ISREG(mode):
        return f"{path} is not a regular file."
    try:
        # Opening is the only true test: permissions, ACLs, mandatory locks all have a say.
        with path.open("rb"):
            pass
    except OSError as error:
        return f"{path} cannot be read: {error.strerror}."
    return None


def files_in(directory: Path, *, exclude: Sequence[Path] = ()) -> list[BatchFile]:
    """The files below ``directory`` that ``fap watch`` would take, each named by its path
    relative to it (blocking: run it in a thread). ``exclude``: resolved paths left out."""
    root = directory.resolve()
    found: list[BatchFile] = []
    for path in scan(root, exclude=exclude):
        # As the watcher: no hidden or temporary names, no links out of the tree, no FIFOs.
        if ignore_reason(path, root, exclude=exclude) is None:
            relative = path.relative_to(root)
            found.append(BatchFile(directory / relative, relative.as_posix()))
    return found


def result_path(results_dir: Path, name: str) -> Path:
    """Where the result for ``name`` (a file name or a relative path) is written."""
    return results_dir / f"{name}.result.json"


class _Progress(UploadListener):
    def __init__(self, reporter: BatchReporter, file: str) -> None:
        self._reporter = reporter
        self._file = file

    def on_bytes(self, raw_bytes: int) -> None:
        self._reporter.advanced(self._file, raw_bytes)


class _Stopped(Exception):
    """The first failure, under ``fail_fast``: ends every task of the batch."""


async def upload_files(
    runtime: Runtime,
    files: Sequence[BatchFile | Path],
    *,
    results_dir: Path,
    engine: str | None = None,
    wait: bool = True,
    reporter: BatchReporter | None = None,
    fail_fast: bool = False,
    dedup: bool = True,
) -> list[FileOutcome]:
    """Upload ``files``, then (with ``wait``) fetch and write each result.

    A bare path is named by its file name. A file that cannot be read, or that the server
    refuses, fails alone — unless ``fail_fast``: then no file starts after the first failure,
    those in flight are cancelled, and every file without its last word fails as ``NOT_SENT``
    (or ``NOT_AWAITED``, once uploaded). A missing token or a server that does not answer ends
    the batch (``AuthError``, ``ServerUnreachable``). ``dedup``: a file analysed before may be
    answered with that analysis, nothing sent (its outcome says ``deduplicated``).
    """
    reporter = reporter or _Silent()
    batch = [file if isinstance(file, BatchFile) else BatchFile(file, file.name) for file in files]
    # Results are sealed to registered devices: no upload is created before this one is. The
    # registration's round trip overlaps the hashing of the first files.
    registered = asyncio.Event()

    async def register() -> None:
        await runtime.device()
        registered.set()

    waiter = ResultWaiter(runtime.session)
    gate = asyncio.Semaphore(FILES_IN_FLIGHT)
    small = SmallFiles(runtime.uploader, engine=engine, dedup=dedup)
    outcomes = [FileOutcome(file=str(file.path)) for file in batch]
    unfinished = set(range(len(batch)))
    failed = asyncio.Event()

    def finish(index: int) -> None:
        unfinished.discard(index)
        reporter.finished(outcomes[index])
        if fail_fast and outcomes[index].status == "failed":
            failed.set()

    async def stop_at_first_failure() -> None:
        await failed.wait()
        raise _Stopped

    async def upload(file: BatchFile, outcome: FileOutcome) -> Sent | None:
        """``file`` sent; None when the batch stopped at a failure before its turn."""
        async with gate:
            if failed.is_set():
                return None  # stopping: the stop's message is this file's last word
            local = await runtime.uploader.inspect(file.path, file.name)
            await registered.wait()
            reporter.started(outcome.file, local.size)
            listener = _Progress(reporter, outcome.file)
            if not small.takes(local):
                return await runtime.uploader.upload(
                    local, engine=engine, listener=listener, dedup=dedup
                )
        # A small file waits for its batch without holding a place among the files in flight:
        # the more of them wait, the fuller the next batch.
        return await small.upload(local, listener=listener)

    async def send(index: int, file: BatchFile) -> None:
        outcome = outcomes[index]
        try:
            sent = await upload(file, outcome)
        except (InputError, ServerError, IntegrityError) as error:
            outcome.error = str(error)
            finish(index)
            return
        if sent is None:
            return
        info = sent.info
        outcome.upload_id, outcome.status, outcome.bytes_sent = info.id, "uploaded", sent.bytes_sent
        outcome.deduplicated = sent.deduplicated
        reporter.uploaded(outcome)
        if not wait:
            finish(index)
            return

        async def receive(info: UploadInfo) -> None:
            await _receive(runtime, info, result_path(results_dir, file.name), outcome)
            finish(index)

        waiter.add(info.id, receive)

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(register())  # a failure ends the batch, as no upload can be sealed
            stopper = group.create_task(stop_at_first_failure()) if fail_fast else None
            waiting = group.create_task(waiter.run())
            batching = group.create_task(small.run())
            async with asyncio.TaskGroup() as senders:
                for index, file in enumerate(batch):
                    senders.create_task(send(index, file))
            batching.cancel()  # every file is sent: no batch is left to make
            waiter.close()
            await waiting
            if stopper is not None:
                stopper.cancel()
    except BaseExceptionGroup as errors:
        _, others = errors.split(_Stopped)
        if others is not None:
            raise first_error(others) from None
        for index in sorted(unfinished):
            outcome = outcomes[index]
            outcome.status = "failed"
            outcome.error = NOT_SENT if outcome.upload_id is None else NOT_AWAITED
            reporter.finished(outcome)
    return outcomes


async def _receive(runtime: Runtime, info: UploadInfo, target: Path, outcome: FileOutcome) -> None:
    """Record a finished upload: write its decrypted result, or the reason it failed."""
    if info.state == JobState.FAILED:
        outcome.status = "failed"
        outcome.error = failure_reason(info)
        return
    try:
        plaintext = await open_result(runtime.session, runtime.blobs, info, await runtime.device())
        await asyncio.to_thread(write_atomic, target, plaintext)
    except (ServerError, IntegrityError) as error:
        outcome.status, outcome.error = "failed", str(error)
    except OSError as error:
        outcome.status = "failed"
        outcome.error = f"The result cannot be written to {target}: {error.strerror}."
    else:
        outcome.status, outcome.result_path = "done", str(target)
