"""Reading an object of the local blob store: in pieces, and never a file left open, however the
request that reads it ends (a GET given up while its file opens included)."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fap.server.blobs import LocalBlobStore
from fap.server.blobs import local as local_module

KEY = "uploads/u1/chunks/00000000"


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def blobs(tmp_path: Path) -> LocalBlobStore:
    store = LocalBlobStore(tmp_path / "blobs", tmp_path / "secret", "http://x")
    await store.open()
    return store


async def test_an_object_is_read_in_bounded_pieces(
    blobs: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_module, "_READ_PIECE", 4)
    await blobs.receive(KEY, one(b"0123456789"), 10)
    assert [piece async for piece in blobs.read(KEY)] == [b"0123", b"4567", b"89"]


async def test_a_read_given_up_while_its_file_opens_leaves_no_file_open(
    blobs: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await blobs.receive(KEY, one(b"0123456789"), 10)
    entered, release = threading.Event(), threading.Event()
    opened: list[object] = []
    real_open = local_module._open_for_reading

    def slow_open(path: Path) -> object:
        entered.set()
        release.wait(10)
        handle = real_open(path)
        opened.append(handle)
        return handle

    monkeypatch.setattr(local_module, "_open_for_reading", slow_open)
    reading = asyncio.ensure_future(anext(blobs.read(KEY)))
    await asyncio.to_thread(entered.wait, 10)
    reading.cancel()  # the client hung up: the request is cancelled while the thread opens
    with pytest.raises(asyncio.CancelledError):
        await reading
    release.set()
    async with asyncio.timeout(10):
        while not opened or not getattr(opened[0], "closed", False):
            await asyncio.sleep(0.01)  # the thread finishes; its file is closed as it returns
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        gc.collect()
