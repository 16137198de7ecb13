"""``fap upload``'s work: send a list of files, wait for their results, write them out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import Literal, Protocol

from fap.api import JobState, UploadInfo
from fap.client.results import ResultWaiter, failure_reason, open_result, write_atomic
from fap.client.runtime import Runtime
from fap.client.tasks import first_error
from fap.client.uploader import UploadListener
from fap.errors import InputError, IntegrityError, ServerError

__all__ = (
    "FILES_IN_FLIGHT",
    "BatchReporter",
    "FileOutcome",
    "Status",
    "check_file",
    "result_path",
    "upload_files",
)

# Files sent at once. Chunks of one file already go out in parallel; a few files at once keep
# the link busy through the round trips of many small files. Memory stays bounded by the
# uploader's buffer slots, which all files share.
FILES_IN_FLIGHT = 4

Status = Literal["uploaded", "done", "failed"]


@dataclass
class FileOutcome:
    """What became of one file; ``--json`` prints it as one line."""

    file: str
    upload_id: str | None = None
    status: Status = "failed"
    result_path: str | None = None
    error: str | None = None
    bytes_sent: int = 0  # stored (compressed) bytes this run PUT for the file

    def as_dict(self) -> dict[str, str | int | None]:
        return {
            "file": self.file,
            "upload_id": self.upload_id,
            "status": self.status,
            "result_path": self.result_path,
            "error": self.error,
            "bytes_sent": self.bytes_sent,
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
        return f"{path} is a directory; name the files in it, or use fap watch {path}."
    if not S_ISREG(mode):
        return f"{path} is not a regular file."
    try:
        # Opening is the only true test: permissions, ACLs, mandatory locks all have a say.
        with path.open("rb"):
            pass
    except OSError as error:
        return f"{path} cannot be read: {error.strerror}."
    return None


def result_path(results_dir: Path, name: str) -> Path:
    """Where the result for ``name`` (a file name or a relative path) is written."""
    return results_dir / f"{name}.result.json"


class _Progress(UploadListener):
    def __init__(self, reporter: BatchReporter, file: str) -> None:
        self._reporter = reporter
        self._file = file

    def on_bytes(self, raw_bytes: int) -> None:
        self._reporter.advanced(self._file, raw_bytes)


async def upload_files(
    runtime: Runtime,
    files: list[Path],
    *,
    results_dir: Path,
    engine: str | None = None,
    wait: bool = True,
    reporter: BatchReporter | None = None,
) -> list[FileOutcome]:
    """Upload ``files``, then (with ``wait``) fetch and write each result.

    A file that cannot be read, or that the server refuses, fails alone; a missing token or a
    server that does not answer ends the batch (``AuthError``, ``ServerUnreachable``).
    """
    reporter = reporter or _Silent()
    await runtime.device()  # results are sealed to registered devices: register first
    waiter = ResultWaiter(runtime.session)
    gate = asyncio.Semaphore(FILES_IN_FLIGHT)
    outcomes = [FileOutcome(file=str(path)) for path in files]

    async def send(path: Path, outcome: FileOutcome) -> None:
        async with gate:
            try:
                local = await runtime.uploader.inspect(path)
                reporter.started(outcome.file, local.size)
                sent = await runtime.uploader.upload(
                    local, engine=engine, listener=_Progress(reporter, outcome.file)
                )
            except (InputError, ServerError, IntegrityError) as error:
                outcome.error = str(error)
                reporter.finished(outcome)
                return
        info = sent.info
        outcome.upload_id, outcome.status, outcome.bytes_sent = info.id, "uploaded", sent.bytes_sent
        reporter.uploaded(outcome)
        if not wait:
            reporter.finished(outcome)
            return

        async def receive(info: UploadInfo) -> None:
            await _receive(runtime, info, result_path(results_dir, path.name), outcome)
            reporter.finished(outcome)

        waiter.add(info.id, receive)

    try:
        async with asyncio.TaskGroup() as group:
            waiting = group.create_task(waiter.run())
            async with asyncio.TaskGroup() as senders:
                for path, outcome in zip(files, outcomes, strict=True):
                    senders.create_task(send(path, outcome))
            waiter.close()
            await waiting
    except BaseExceptionGroup as errors:
        raise first_error(errors) from None
    return outcomes


async def _receive(runtime: Runtime, info: UploadInfo, target: Path, outcome: FileOutcome) -> None:
    """Record a finished upload: write its decrypted result, or the reason it failed."""
    if info.state == JobState.FAILED:
        outcome.status = "failed"
        outcome.error = failure_reason(info)
        return
    try:
        plaintext = await open_result(
            runtime.session, runtime.blobs, info.id, await runtime.device()
        )
        await asyncio.to_thread(write_atomic, target, plaintext)
    except (ServerError, IntegrityError) as error:
        outcome.status, outcome.error = "failed", str(error)
    except OSError as error:
        outcome.status = "failed"
        outcome.error = f"The result cannot be written to {target}: {error.strerror}."
    else:
        outcome.status, outcome.result_path = "done", str(target)
