"""A GET of the local blob store may ask for one byte range (RFC 9110): it gets exactly those bytes
with 206, a 416 if none of them is there, and the whole object with 200 for a Range header it does
not serve. Without a Range header a GET is what it always was."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit

import pytest
from tests.unit.server.harness import Server, error_body

from fap.server.blobs import LocalBlobStore
from fap.server.blobs import local as local_module

KEY = "uploads/0123456789abcdef0123456789abcdef/packs/00000001"
TEN = b"0123456789"


def blobs_of(server: Server) -> LocalBlobStore:
    assert isinstance(server.services.blobs, LocalBlobStore)
    return server.services.blobs


async def stored(server: Server, data: bytes = TEN) -> str:
    """A presigned GET of ``data``, stored at KEY."""
    blobs = blobs_of(server)
    await blobs.put(KEY, data, hashlib.sha256(data).hexdigest())
    return await blobs.presign_get(KEY, 60)


async def test_a_get_without_range_is_the_whole_object_as_ever(server: Server) -> None:
    response = await server.http.get(await stored(server))
    assert response.status_code == 200
    assert response.content == TEN
    assert response.headers["Content-Length"] == "10"
    assert "Content-Range" not in response.headers


@pytest.mark.parametrize(
    ("asked", "content_range", "body"),
    [
        ("bytes=2-5", "bytes 2-5/10", b"2345"),
        ("bytes=0-0", "bytes 0-0/10", b"0"),
        ("bytes=7-", "bytes 7-9/10", b"789"),
        ("bytes=8-100", "bytes 8-9/10", b"89"),  # past the end: up to the end
        ("bytes=-3", "bytes 7-9/10", b"789"),
        ("bytes=-50", "bytes 0-9/10", TEN),  # longer than the object: all of it
        ("BYTES=3-3", "bytes 3-3/10", b"3"),  # the unit's name is case-insensitive
        ("bytes=0-" + "9" * 5000, "bytes 0-9/10", TEN),  # past what int() would take
    ],
    ids=lambda value: value[:20] if isinstance(value, str) else None,
)
async def test_a_range_is_206_with_exactly_its_bytes(
    server: Server, asked: str, content_range: str, body: bytes
) -> None:
    response = await server.http.get(await stored(server), headers={"Range": asked})
    assert response.status_code == 206, response.text
    assert response.headers["Content-Range"] == content_range
    assert response.headers["Content-Length"] == str(len(body))
    assert response.content == body


@pytest.mark.parametrize(
    "asked", ["bytes=10-", "bytes=10-20", "bytes=-0", "bytes=" + "9" * 5000 + "-"]
)
async def test_a_range_with_no_byte_in_the_object_is_416_with_its_size(
    server: Server, asked: str
) -> None:
    response = await server.http.get(await stored(server), headers={"Range": asked})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */10"
    assert "no byte" in error_body(response).detail


@pytest.mark.parametrize(
    "asked",
    ["bytes=5-2", "bytes=a-b", "bytes=-", "bytes 0-1", "items=0-1", "bytes=0-1,3-4", "bytes=0-1,"],
)
async def test_a_range_header_not_served_is_ignored_for_the_whole_object(
    server: Server, asked: str
) -> None:
    """Malformed, another unit, or several ranges: RFC 9110 lets a server ignore it (200)."""
    response = await server.http.get(await stored(server), headers={"Range": asked})
    assert response.status_code == 200
    assert response.content == TEN
    assert "Content-Range" not in response.headers


async def test_if_range_cannot_match_so_the_whole_object_is_sent(server: Server) -> None:
    """The store sends no ETag nor date to validate against: no If-Range can hold."""
    headers = {"Range": "bytes=2-5", "If-Range": '"some-etag"'}
    response = await server.http.get(await stored(server), headers=headers)
    assert response.status_code == 200
    assert response.content == TEN


async def test_an_empty_object_has_no_range_but_all_of_its_nothing(server: Server) -> None:
    url = await stored(server, b"")
    assert (await server.http.get(url, headers={"Range": "bytes=0-"})).status_code == 416
    suffix = await server.http.get(url, headers={"Range": "bytes=-5"})
    assert (suffix.status_code, suffix.content) == (200, b"")


async def test_a_range_does_not_open_a_url_signed_for_another_key(server: Server) -> None:
    url = await stored(server)
    parts = urlsplit(url)
    other = urlunsplit(parts._replace(path=parts.path.replace("00000001", "00000002")))
    await blobs_of(server).put(
        KEY.replace("00000001", "00000002"), TEN, hashlib.sha256(TEN).hexdigest()
    )
    response = await server.http.get(other, headers={"Range": "bytes=0-3"})
    assert response.status_code == 403
    assert "altered" in error_body(response).detail


async def test_a_range_of_nothing_stored_is_404(server: Server) -> None:
    url = await blobs_of(server).presign_get(KEY, 60)
    assert (await server.http.get(url, headers={"Range": "bytes=0-3"})).status_code == 404


async def test_the_store_reads_a_part_in_pieces_never_past_it(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = blobs_of(server)
    await stored(server)
    monkeypatch.setattr(local_module, "_READ_PIECE", 4)
    assert [piece async for piece in blobs.read(KEY, 1, 7)] == [b"1234", b"567"]
    assert [piece async for piece in blobs.read(KEY, 8, 5)] == [b"89"]  # the object ends first
    assert [piece async for piece in blobs.read(KEY, 6)] == [b"6789"]
    assert [piece async for piece in blobs.read(KEY, 3, 0)] == []
