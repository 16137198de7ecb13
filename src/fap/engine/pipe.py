"""The request body on its way from the event loop to the analyzer's thread.

At most ``limit`` bytes wait in between. When the analyzer reads slower than the worker sends, the
event loop stops taking request messages, uvicorn stops reading the socket, and the worker's sends
block: backpressure all the way back, and never the whole file in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ("BodyAborted", "BodyPipe", "BodyStream")


class BodyAborted(OSError):
    """The body will not arrive whole (the worker went away, or it broke the protocol)."""


class BodyPipe:
    def __init__(self, limit: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._limit = limit
        # One condition guards everything below; the reader waits on it for data, while the
        # writer (on the event loop, which must never block) waits on an asyncio.Event instead.
        self._cond = threading.Condition()
        self._blocks: deque[memoryview] = deque()
        self._buffered = 0
        self._eof = False
        self._aborted: str | None = None
        self._discarding = False
        self._writer_waiting = False
        self._space = asyncio.Event()

    # The event loop's side.

    async def write(self, data: bytes) -> None:
        """Hand ``data`` to the reader; wait while ``limit`` bytes are already waiting."""
        if not data:
            return
        while True:
            with self._cond:
                if self._discarding or self._aborted is not None:
                    return
                if self._buffered < self._limit:
                    self._blocks.append(memoryview(data))
                    self._buffered += len(data)
                    self._cond.notify()
                    return
                # Cleared under the lock, so a reader's wake-up cannot slip in before it.
                self._space.clear()
                self._writer_waiting = True
            await self._space.wait()

    def close(self) -> None:
        """The body is complete: the reader sees end-of-file once it has read what waits."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def abort(self, reason: str) -> None:
        """The body will not be complete: the reader's next read raises BodyAborted."""
        with self._cond:
            self._aborted = reason
            self._blocks.clear()
            self._buffered = 0
            self._cond.notify_all()
        self._space.set()

    def discard(self) -> None:
        """The reader is gone (the analyzer returned early): later writes are dropped."""
        with self._cond:
            self._discarding = True
            self._blocks.clear()
            self._buffered = 0
        self._space.set()

    # The analyzer thread's side.

    def readinto(self, buffer: memoryview) -> int:
        wake_writer = False
        with self._cond:
            while not self._blocks and not self._eof and self._aborted is None:
                self._cond.wait()
            if self._aborted is not None:
                raise BodyAborted(self._aborted)
            if not self._blocks:
                return 0
            block = self._blocks[0]
            count = min(len(buffer), len(block))
            buffer[:count] = block[:count]
            if count == len(block):
                self._blocks.popleft()
            else:
                self._blocks[0] = block[count:]
            self._buffered -= count
            if self._writer_waiting and self._buffered < self._limit:
                self._writer_waiting = False
                wake_writer = True
        if wake_writer:
            # The loop may be gone if the engine is shutting down; nobody waits then.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._space.set)
        return count


class BodyStream(io.RawIOBase):
    """A read-only raw stream over a BodyPipe; wrap it in io.BufferedReader for ``read(n)``."""

    def __init__(self, pipe: BodyPipe) -> None:
        super().__init__()
        self._pipe = pipe

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        return self._pipe.readinto(memoryview(buffer).cast("B"))
