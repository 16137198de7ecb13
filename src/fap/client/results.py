"""Getting results back: long-poll for finished uploads, download, decrypt, write atomically."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from fap.api import (
    MAX_WAIT_IDS,
    TERMINAL_STATES,
    UPLOAD_RESULT,
    UPLOADS_WAIT,
    ApiSession,
    ResultUrl,
    UploadInfo,
    UploadList,
    UploadWait,
)
from fap.client.private import make_private_dir
from fap.crypto import DeviceIdentity, open_sealed
from fap.errors import IntegrityError, ServerUnreachable
from fap.transfer import get_bytes

__all__ = ("ResultWaiter", "download_sealed", "failure_reason", "open_result", "write_atomic")

OnFinished = Callable[[UploadInfo], Awaitable[None]]

# Results fetched, opened and written at once, of the uploads one long-poll said finished.
FINISHED_AT_ONCE = 16
# A server that answers a long-poll at once with nothing finished must not make the client spin.
_MIN_POLL_INTERVAL = 1.0


def failure_reason(info: UploadInfo) -> str:
    """The sentence a user sees for an upload whose analysis failed."""
    reason = (info.error or "no reason given").rstrip(".")
    return f"The analysis failed: {reason}."


async def download_sealed(
    session: ApiSession,
    blobs: httpx.AsyncClient,
    upload_id: str,
    where: ResultUrl | None = None,
) -> bytes:
    """The sealed (age) result of a finished upload, as stored: only its owner can open it.
    ``where``: its URL as an answer already brought it (a wait's), or None to ask for it."""
    if where is None or where.upload_id != upload_id:
        where = await session.call(
            "GET", UPLOAD_RESULT.format(upload_id=upload_id), returns=ResultUrl
        )
    if where.sha256 is None:
        # Without it a result swapped in the store would be opened and believed: refuse.
        raise IntegrityError(
            f"The server gave no SHA-256 for the result of upload {upload_id}, so it cannot be "
            "verified; upgrade the server."
        )
    sealed = await get_bytes(blobs, where.url)
    if len(sealed) != where.size:
        raise IntegrityError(
            f"The result of upload {upload_id} arrived with {len(sealed)} bytes "
            f"where {where.size} were announced."
        )
    await _check_digest(upload_id, sealed, where.sha256)
    return sealed


async def _check_digest(upload_id: str, sealed: bytes, sha256: str) -> None:
    """Before decrypting: the result must be the very ciphertext the worker completed the job
    with, not another one sealed to this device and put in its place."""
    digest = await asyncio.to_thread(_sha256, sealed)
    if digest != sha256.lower():
        raise IntegrityError(
            f"The result of upload {upload_id} does not match the SHA-256 the server recorded; "
            "it was changed after the analysis and is not shown."
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def open_result(
    session: ApiSession, blobs: httpx.AsyncClient, info: UploadInfo, identity: DeviceIdentity
) -> bytes:
    """The decrypted result (the engine's JSON) of a finished upload: the sealed bytes the
    answer brought, or those at the URL it brought (or asked for now)."""
    if info.sealed_result is not None:
        sealed = info.sealed_result.sealed
        await _check_digest(info.id, sealed, info.sealed_result.sha256)
    else:
        sealed = await download_sealed(session, blobs, info.id, info.result)
    # Decryption is CPU work on possibly large results: off the event loop.
    return await asyncio.to_thread(open_sealed, sealed, identity)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the whole new one, never half."""
    make_private_dir(path.parent)
    # mkstemp makes the file 0600, which suits a result sealed for its owner alone.
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temp).unlink()
        raise


class ResultWaiter:
    """Long-polls ``POST /v1/uploads/wait`` for the uploads it was given, one request for every
    ``MAX_WAIT_IDS`` of them (the most the server takes at once).

    Each upload's callback runs once it is done or failed. An upload added while a long-poll is
    out restarts the poll, so it is not held up by a request that does not name it.
    """

    def __init__(self, session: ApiSession, *, poll_timeout: float = 20.0) -> None:
        self._session = session
        self._poll_timeout = poll_timeout
        self._pending: dict[str, OnFinished] = {}
        self._changed = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, upload_id: str, on_finished: OnFinished) -> None:
        self._pending[upload_id] = on_finished
        self._changed.set()

    def close(self) -> None:
        """No more uploads will be added: :meth:`run` returns once the pending ones finish."""
        self._closed = True
        self._changed.set()

    async def run(self) -> None:
        """Wait for every pending upload; with :meth:`close` not called, run until cancelled.

        ``ServerUnreachable`` leaves the pending uploads in place, so calling ``run`` again
        carries on where it stopped.
        """
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closed:
                    return
                self._changed.clear()
                await self._changed.wait()
                continue
            self._changed.clear()
            started = loop.time()
            answer = await self._poll(list(self._pending))
            if answer is None:  # the set of uploads changed: poll again with the new set
                continue
            finished = [
                info
                for info in answer.uploads
                if info.state in TERMINAL_STATES and info.id in self._pending
            ]
            await self._finish(finished)
            if not finished and loop.time() - started < _MIN_POLL_INTERVAL:
                await asyncio.sleep(_MIN_POLL_INTERVAL)

    async def _finish(self, finished: list[UploadInfo]) -> None:
        """The callbacks of ``finished``, up to FINISHED_AT_ONCE at a time: a folder of small files
        finishes many at once, and each result is a download and a write of its own. The first
        error is raised once all of them ran; an upload whose callback found the server out of
        reach stays pending."""
        gate = asyncio.Semaphore(FINISHED_AT_ONCE)

        async def finish(info: UploadInfo) -> None:
            async with gate:
                on_finished = self._pending.pop(info.id)
                try:
                    await on_finished(info)
                except ServerUnreachable:
                    self._pending[info.id] = on_finished
                    raise

        ended = await asyncio.gather(*(finish(info) for info in finished), return_exceptions=True)
        for error in ended:
            if isinstance(error, BaseException):
                raise error

    async def _poll(self, ids: list[str]) -> UploadList | None:
        """One long-poll per ``MAX_WAIT_IDS`` uploads, all at once; the first answer ends them.

        None when the set of uploads changed first.
        """
        polls = [
            asyncio.ensure_future(
                self._session.call(
                    "POST",
                    UPLOADS_WAIT,
                    UploadWait(
                        ids=ids[start : start + MAX_WAIT_IDS],
                        timeout=self._poll_timeout,
                        finished_only=True,  # the others' news is no news
                        inline_results=True,  # small results come in the answer
                    ),
                    returns=UploadList,
                )
            )
            for start in range(0, len(ids), MAX_WAIT_IDS)
        ]
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            done, _ = await asyncio.wait({*polls, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            pending = [task for task in (*polls, changed) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                # Waited for, not awaited: a cancel of this very task (a watch that stops) must
                # not be taken for one of theirs and swallowed.
                await asyncio.wait(pending)
        answered = [poll for poll in polls if poll in done]
        if not answered:
            return None
        return UploadList(uploads=[info for poll in answered for info in poll.result().uploads])
