"""A presigned GET of a byte range (one chunk out of a pack) gives exactly those bytes, whether the
store answers the range (206) or ignores it and sends the whole object (200); an answer of any other
number of bytes is an error, never bytes handed on."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.unit.server.harness import Server, running_server

from fap.errors import ServerError
from fap.transfer import get_bytes

KEY = "uploads/0123456789abcdef0123456789abcdef/packs/00000000"
PACK = os.urandom(3000)
URL = "http://store.example/bucket/pack?X-Amz-Signature=abc"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path / "data") as running:
        yield running


def store_answering(status: int, body: bytes, asked: list[str | None]) -> httpx.AsyncClient:
    """A client of a store that answers every GET with ``status`` and ``body``, whatever its
    Range; the Range headers it got go to ``asked``."""

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("Range"))
        return httpx.Response(status, content=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def test_a_range_from_the_local_store_is_exactly_its_bytes(server: Server) -> None:
    blobs = server.services.blobs
    await blobs.put(KEY, PACK, hashlib.sha256(PACK).hexdigest())
    url = await blobs.presign_get(KEY, 60)
    assert await get_bytes(server.http, url, byte_range=(1000, 234)) == PACK[1000:1234]
    assert await get_bytes(server.http, url, byte_range=(2990, 10)) == PACK[2990:]
    assert await get_bytes(server.http, url) == PACK


async def test_a_range_past_the_end_of_the_local_object_is_an_error(server: Server) -> None:
    blobs = server.services.blobs
    await blobs.put(KEY, PACK, hashlib.sha256(PACK).hexdigest())
    url = await blobs.presign_get(KEY, 60)
    with pytest.raises(ServerError, match="with 10 bytes, not 20") as short:
        await get_bytes(server.http, url, byte_range=(2990, 20))  # a 206 of what there is
    assert short.value.status_code == 206
    with pytest.raises(ServerError, match="status 416") as past:
        await get_bytes(server.http, url, byte_range=(3000, 1))
    assert past.value.status_code == 416


async def test_a_store_that_ignores_range_has_the_range_cut_out_of_its_whole_object() -> None:
    asked: list[str | None] = []
    async with store_answering(200, PACK, asked) as http:
        assert await get_bytes(http, URL, byte_range=(100, 50)) == PACK[100:150]
    assert asked == ["bytes=100-149"]


@pytest.mark.parametrize(
    ("status", "body"),
    [(206, PACK[100:149]), (206, PACK[100:151]), (200, PACK[:120])],
    ids=["short-206", "long-206", "short-200"],
)
async def test_an_answer_of_another_number_of_bytes_is_an_error(status: int, body: bytes) -> None:
    async with store_answering(status, body, []) as http:
        with pytest.raises(ServerError, match="not 50"):
            await get_bytes(http, URL, byte_range=(100, 50))


async def test_another_success_than_206_or_200_is_an_error() -> None:
    async with store_answering(204, b"", []) as http:
        with pytest.raises(ServerError, match="status 204"):
            await get_bytes(http, URL, byte_range=(0, 1))


async def test_a_get_without_a_range_sends_no_range_header() -> None:
    asked: list[str | None] = []
    async with store_answering(200, PACK, asked) as http:
        assert await get_bytes(http, URL) == PACK
    assert asked == [None]


@pytest.mark.parametrize("byte_range", [(0, 0), (-1, 5)])
async def test_a_range_of_no_bytes_is_refused_before_any_request(
    byte_range: tuple[int, int],
) -> None:
    asked: list[str | None] = []
    async with store_answering(200, PACK, asked) as http:
        with pytest.raises(ValueError, match="byte range"):
            await get_bytes(http, URL, byte_range=byte_range)
    assert asked == []
