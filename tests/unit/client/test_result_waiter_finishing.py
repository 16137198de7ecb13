"""Uploads that one long-poll says finished are taken care of side by side (each result is a
download, a decryption and a write), and one whose server went out of reach stays pending."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from fap.api import ApiSession, JobState, UploadInfo, UploadList
from fap.client.results import FINISHED_AT_ONCE, ResultWaiter
from fap.errors import ServerUnreachable

IDS = [f"6618f0aa{n:024x}" for n in range(FINISHED_AT_ONCE + 4)]


def done(upload_id: str) -> UploadInfo:
    return UploadInfo(
        id=upload_id,
        name="f.txt",
        size=1,
        sha256="0" * 64,
        engine="size@1",
        chunk_size=65536,
        chunk_count=1,
        chunks_stored=[0],
        state=JobState.DONE,
        attempts=1,
        error=None,
        created_at=0.0,
        finished_at=1.0,
    )


class AllDone:
    """A session whose long-poll answers every upload it names as done."""

    async def call(self, method: str, path: str, body: Any, **kwargs: Any) -> UploadList:
        return UploadList(uploads=[done(upload_id) for upload_id in body.ids])


async def test_finished_uploads_are_received_side_by_side_up_to_a_bound() -> None:
    waiter = ResultWaiter(cast(ApiSession, AllDone()))
    running = 0
    most = 0
    all_started = asyncio.Event()
    started: set[str] = set()

    async def receive(info: UploadInfo) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        started.add(info.id)
        if len(started) >= FINISHED_AT_ONCE:
            all_started.set()
        await asyncio.wait_for(all_started.wait(), 5)  # one at a time would never get here
        running -= 1

    for upload_id in IDS:
        waiter.add(upload_id, receive)
    waiter.close()
    await asyncio.wait_for(waiter.run(), 10)
    assert started == set(IDS)
    assert most == FINISHED_AT_ONCE


async def test_an_upload_whose_result_could_not_be_fetched_stays_pending() -> None:
    waiter = ResultWaiter(cast(ApiSession, AllDone()))
    received: list[str] = []

    async def receive(info: UploadInfo) -> None:
        if info.id == IDS[0]:
            raise ServerUnreachable("the server did not answer")
        received.append(info.id)

    for upload_id in IDS[:3]:
        waiter.add(upload_id, receive)
    with pytest.raises(ServerUnreachable):
        await asyncio.wait_for(waiter.run(), 10)
    assert sorted(received) == sorted(IDS[1:3])  # the others were received all the same
    assert len(waiter) == 1  # and the one that failed is asked for again by the next run
