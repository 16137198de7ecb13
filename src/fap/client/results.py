"""Getting results back: long-poll for finished uploads, download, decrypt, write atomically."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from fap.api import (
    TERMINAL_STATES,
    UPLOAD_RESULT,
    UPLOADS_WAIT,
    ApiSession,
    ResultUrl,
    UploadInfo,
    UploadList,
    UploadWait,
)
from fap.crypto import DeviceIdentity, open_sealed
from fap.errors import IntegrityError, ServerUnreachable
from fap.transfer import get_bytes

__all__ = ("ResultWaiter", "download_sealed", "failure_reason", "open_result", "write_atomic")

OnFinished = Callable[[UploadInfo], Awaitable[None]]

# A server that answers a long-poll at once with nothing finished must not make the client spin.
_MIN_POLL_INTERVAL = 1.0


def failure_reason(info: UploadInfo) -> str:
    """The sentence a user sees for an upload whose analysis failed."""
    reason = (info.error or "no reason given").rstrip(".")
    return f"The analysis failed: {reason}."


async def download_sealed(session: ApiSession, blobs: httpx.AsyncClient, upload_id: str) -> bytes:
    """The sealed (age) result of a finished upload, as stored: only its owner can open it."""
    where = await session.call("GET", UPLOAD_RESULT.format(upload_id=upload_id), returns=ResultUrl)
    sealed = await get_bytes(blobs, where.url)
    if len(sealed) != where.size:
        raise IntegrityError(
            f"The result of upload {upload_id} arrived with {len(sealed)} bytes "
            f"where {where.size} were announced."
        )
    return sealed


async def open_result(
    session: ApiSession, blobs: httpx.AsyncClient, upload_id: str, identity: DeviceIdentity
) -> bytes:
    """The decrypted result (the engine's JSON) of a finished upload."""
    sealed = await download_sealed(session, blobs, upload_id)
    # Decryption is CPU work on possibly large results: off the event loop.
    return await asyncio.to_thread(open_sealed, sealed, identity)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the whole new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
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
    """Long-polls ``POST /v1/uploads/wait`` for the uploads it was given, one request for all.

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
            for info in finished:
                on_finished = self._pending.pop(info.id)
                try:
                    await on_finished(info)
                except ServerUnreachable:
                    self._pending[info.id] = on_finished
                    raise
            if not finished and loop.time() - started < _MIN_POLL_INTERVAL:
                await asyncio.sleep(_MIN_POLL_INTERVAL)

    async def _poll(self, ids: list[str]) -> UploadList | None:
        body = UploadWait(ids=ids, timeout=self._poll_timeout)
        poll = asyncio.ensure_future(
            self._session.call("POST", UPLOADS_WAIT, body, returns=UploadList)
        )
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({poll, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (poll, changed):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        if poll.cancelled():
            return None
        return poll.result()
