"""The client keeps within every limit the server sets on one request, whatever it is asked for."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid

import pytest
from sqlalchemy import insert
from tests.unit.client.conftest import no_worker
from tests.unit.client.real_app import App
from tests.unit.server.harness import CHUNK

from fap.api import (
    MAX_CHUNK_URLS,
    MAX_LIST_LIMIT,
    MAX_WAIT_IDS,
    UPLOADS,
    UploadCreate,
    UploadCreated,
    UploadInfo,
)
from fap.client import ResultWaiter, list_uploads
from fap.client.chunk_urls import ChunkUrlBook
from fap.errors import InputError
from fap.server.auth import hash_token
from fap.server.store import Upload
from fap.transfer import EncodedChunk


def named(app: App) -> list[int]:
    """The length of the list each request named (upload ids to wait for, chunks to sign)."""
    lengths: list[int] = []
    for sent in app.wire.sent:
        if sent.method == "POST" and sent.body:
            body = json.loads(sent.body)
            if isinstance(body, dict):
                lengths.extend(len(body[field]) for field in ("ids", "chunks") if field in body)
    return lengths


async def _create(app: App, name: str, size: int) -> UploadInfo:
    created = await app.server.ok(
        "POST",
        UPLOADS,
        app.server.owner,
        UploadCreate(
            name=name,
            size=size,
            sha256=hashlib.sha256(name.encode()).hexdigest(),
            chunk_size=CHUNK,
        ),
        returns=UploadCreated,
    )
    return created.upload


async def _pending_in_store(app: App, count: int) -> list[str]:
    """``count`` uploads of the owner waiting for their one chunk, inserted in one transaction
    (through the API, each costs a commit: seconds for a thousand)."""
    services = app.server.services
    owner = await services.store.credentials.resolve(
        hash_token(app.server.owner), app.server.clock()
    )
    assert owner is not None and owner.user is not None
    rows = [
        {
            "id": uuid.uuid4().hex,
            "org_id": owner.org.id,
            "user_id": owner.user.id,
            "name": f"{number:04}.txt",
            "size": 1,
            "sha256": "ab" * 32,
            "engine": "size@1",
            "chunk_size": CHUNK,
            "chunk_count": 1,
            "state": "pending",
            "attempts": 0,
            "lapses": 0,
            "created_at": app.server.clock() + number,
        }
        for number in range(count)
    ]
    async with services.store.db.write() as session:
        await session.execute(insert(Upload), rows)
    return [str(row["id"]) for row in rows]


@no_worker
async def test_waiting_for_more_uploads_than_one_wait_may_name_splits_the_wait(app: App) -> None:
    async with asyncio.timeout(30):
        await app.server.register_device(app.server.owner)
        # A thousand uploads still waiting for their chunks, made in the store (it is quicker),
        # and one of an empty file, queued at once: the only one that can finish.
        many = await _pending_in_store(app, MAX_WAIT_IDS)
        last = await _create(app, "last.txt", 0)
        finished: asyncio.Queue[UploadInfo] = asyncio.Queue()

        async with app.runtime() as runtime:
            waiter = ResultWaiter(runtime.session, poll_timeout=5.0)
            for upload_id in [*many, last.id]:
                waiter.add(upload_id, finished.put)
            waiting = asyncio.create_task(waiter.run())
            # Only the upload past the first thousand finishes.
            lease = await app.server.lease()
            assert lease is not None and lease.job_id == last.id
            await app.finish(lease)
            got = asyncio.create_task(finished.get())
            await asyncio.wait({waiting, got}, return_when=asyncio.FIRST_COMPLETED)
            if waiting.done():
                waiting.result()  # the waiter gave up: raise why
            done = got.result()
            waiting.cancel()

    assert (done.id, done.state) == (last.id, "done")
    waits = named(app)
    assert waits and max(waits) <= MAX_WAIT_IDS
    assert sum(waits[:2]) == MAX_WAIT_IDS + 1  # the first round named each once


@no_worker
async def test_more_chunks_encoded_at_once_than_one_request_may_sign_go_in_several(
    app: App,
) -> None:
    chunks = MAX_CHUNK_URLS + 10
    data = b"stored bytes"
    encoded = [
        EncodedChunk(
            seq=seq,
            raw_size=CHUNK,
            codec="zstd",
            data=data,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        for seq in range(chunks)
    ]
    async with asyncio.timeout(30):
        await app.server.register_device(app.server.owner)
        upload = await _create(app, "large.bin", chunks * CHUNK)
        async with app.runtime() as runtime:
            book = ChunkUrlBook(runtime.session, upload.id)
            # The first asks alone; all the others are encoded while it is out.
            urls = await asyncio.gather(*(book.take(chunk) for chunk in encoded))

    assert [url.seq for url in urls] == list(range(chunks))
    asked = named(app)
    assert sum(asked) == chunks
    assert max(asked) == MAX_CHUNK_URLS  # the server's most, and no more


@no_worker
async def test_a_list_longer_than_the_server_answers_is_refused_in_words(app: App) -> None:
    async with app.runtime() as runtime:
        assert await list_uploads(runtime.session, limit=MAX_LIST_LIMIT) == []
        with pytest.raises(InputError, match=f"between 1 and {MAX_LIST_LIMIT}"):
            await list_uploads(runtime.session, limit=MAX_LIST_LIMIT + 1)
