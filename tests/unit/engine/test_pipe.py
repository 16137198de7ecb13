"""The body pipe: bytes flow from the event loop to a reading thread, with bounded buffering."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest

from fap.engine.pipe import BodyAborted, BodyPipe, BodyStream


async def test_a_thread_reads_what_the_loop_writes_then_end_of_file() -> None:
    pipe = BodyPipe(limit=16)
    reader = io.BufferedReader(BodyStream(pipe), 8)
    got = asyncio.get_running_loop().run_in_executor(None, reader.read)
    for part in (b"hello ", b"streaming ", b"world"):
        await pipe.write(part)
    pipe.close()
    assert await got == b"hello streaming world"


async def test_the_writer_waits_while_the_limit_is_reached() -> None:
    pipe = BodyPipe(limit=10)
    await pipe.write(b"0123456789")  # the pipe is now full
    blocked = asyncio.create_task(pipe.write(b"more"))
    await asyncio.sleep(0.05)
    assert not blocked.done()

    buffer = bytearray(4)
    count = await asyncio.to_thread(pipe.readinto, memoryview(buffer))
    assert (count, bytes(buffer)) == (4, b"0123")
    await asyncio.wait_for(blocked, 5)


async def test_abort_makes_the_reader_raise() -> None:
    pipe = BodyPipe(limit=10)
    started = threading.Event()

    def read() -> bytes:
        started.set()
        return io.BufferedReader(BodyStream(pipe)).read()

    reading = asyncio.get_running_loop().run_in_executor(None, read)
    await asyncio.to_thread(started.wait)
    pipe.abort("the worker went away")
    with pytest.raises(BodyAborted, match="the worker went away"):
        await reading


async def test_after_discard_writes_neither_wait_nor_keep_anything() -> None:
    pipe = BodyPipe(limit=4)
    await pipe.write(b"full")
    pipe.discard()
    await asyncio.wait_for(pipe.write(b"x" * 1000), 1)
