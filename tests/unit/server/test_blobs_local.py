"""The local blob store: signed, expiring URLs for an exact size and checksum; a refused PUT
stores nothing. (What every BlobStore must do is in tests/integration/test_s3_blob_contract.py.)"""

from __future__ import annotations

import asyncio
import hashlib
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from tests.unit.server.harness import Server, error_body, running_server

from fap.server.blobs import LocalBlobStore, StoredBlob, chunk_key, result_key
from fap.server.errors import BadRequest, Conflict, Sealed

KEY = "uploads/0123456789abcdef0123456789abcdef/chunks/00000007"
TEN = b"0123456789"
TEN_SHA = hashlib.sha256(TEN).hexdigest()


def blobs_of(server: Server) -> LocalBlobStore:
    assert isinstance(server.services.blobs, LocalBlobStore)
    return server.services.blobs


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def stored_files(blobs: LocalBlobStore) -> list[Path]:
    return [path for path in blobs.root.rglob("*") if path.is_file()]


async def test_keys_are_laid_out_as_documented() -> None:
    assert chunk_key("abc", 7) == "uploads/abc/chunks/00000007"
    assert result_key("abc") == "uploads/abc/result.age"


async def test_a_presigned_put_is_served_here_and_names_its_size_and_checksum(
    server: Server,
) -> None:
    blobs = blobs_of(server)
    put = await blobs.presign_put(KEY, 10, 60, sha256=TEN_SHA)
    assert put.url.startswith("http://127.0.0.1:8700/blobs/uploads/")
    assert dict(parse_qsl(urlsplit(put.url).query)).keys() == {"exp", "size", "sha256", "sig"}
    assert put.headers == {"Content-Length": "10"}
    assert (await server.http.put(put.url, content=TEN)).status_code == 200
    assert (await server.http.get(await blobs.presign_get(KEY, 60))).content == TEN


@pytest.mark.parametrize(
    "tamper",
    [
        {"sig": "0" * 64},
        {"size": "11"},
        {"sha256": hashlib.sha256(b"01234567890").hexdigest()},
        {"exp": "9999999999"},
    ],
)
async def test_a_tampered_url_is_403_and_stores_nothing(
    server: Server, tamper: dict[str, str]
) -> None:
    blobs = blobs_of(server)
    url = with_query((await blobs.presign_put(KEY, 10, 60, sha256=TEN_SHA)).url, **tamper)
    response = await server.http.put(url, content=b"01234567890"[: int(tamper.get("size", 10))])
    assert response.status_code == 403
    assert "altered" in error_body(response).detail
    assert await blobs.size(KEY) is None


async def test_a_url_for_another_key_or_method_is_403(server: Server) -> None:
    blobs = blobs_of(server)
    put = (await blobs.presign_put(KEY, 10, 60)).url
    other_key = put.replace("00000007", "00000008")
    assert (await server.http.put(other_key, content=TEN)).status_code == 403
    (await server.http.put(put, content=TEN)).raise_for_status()
    assert (await server.http.get(put)).status_code == 403  # a PUT URL does not read


async def test_an_expired_url_is_403(server: Server) -> None:
    blobs = blobs_of(server)
    url = (await blobs.presign_put(KEY, 10, 60)).url
    server.clock.advance(61)
    response = await server.http.put(url, content=TEN)
    assert response.status_code == 403
    assert "expired" in error_body(response).detail
    assert await blobs.size(KEY) is None


async def test_an_unsigned_url_is_400(server: Server) -> None:
    response = await server.http.put(f"/blobs/{KEY}", content=b"x")
    assert response.status_code == 400
    error_body(response)
    # Signed or not is the first question; values are read only from a query found signed.
    garbled = await server.http.put(f"/blobs/{KEY}?exp=soon&size=1&sig=00", content=b"x")
    assert garbled.status_code == 403
    error_body(garbled)


def respelled(url: str, name: str, spelling: Callable[[str], str]) -> str:
    """``url`` with the value of ``name`` written another way, the query otherwise as it was."""
    parts = urlsplit(url)
    fields = [field.split("=", 1) for field in parts.query.split("&")]
    query = "&".join(f"{k}={spelling(v) if k == name else v}" for k, v in fields)
    return urlunsplit(parts._replace(query=query))


SPELLINGS: dict[str, Callable[[str], str]] = {
    "plus": lambda value: "+" + value,
    "space": lambda value: "%20" + value,
    "zero": lambda value: "0" + value,
    "trailing-space": lambda value: value + "%20",
    "underscore": lambda value: value[:1] + "_" + value[1:],
}


@pytest.mark.parametrize("method", ["GET", "PUT"])
@pytest.mark.parametrize("name", ["exp", "size"])
@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=SPELLINGS.keys())
async def test_a_value_spelled_otherwise_than_signed_is_403(
    server: Server, method: str, name: str, spelling: Callable[[str], str]
) -> None:
    """int() would read each of these as the signed number: the signature covers the bytes."""
    blobs = blobs_of(server)
    await blobs.receive(KEY, one(TEN), 10)
    if method == "GET":
        if name == "size":
            return  # a GET is signed for no size
        url = await blobs.presign_get(KEY, 60)
    else:
        url = (await blobs.presign_put(KEY, 10, 60, sha256=TEN_SHA)).url
    response = await server.http.request(method, respelled(url, name, spelling), content=TEN)
    assert response.status_code == 403, response.text
    assert "altered" in error_body(response).detail
    assert (await server.http.request(method, url, content=TEN)).status_code == 200


async def test_a_parameter_added_or_repeated_after_signing_is_403(server: Server) -> None:
    blobs = blobs_of(server)
    url = (await blobs.presign_put(KEY, 10, 60, sha256=TEN_SHA)).url
    query = urlsplit(url).query
    signed, _, signature = query.rpartition("&sig=")
    for forged in (
        f"{signed}&exp=1&sig={signature}",
        f"{signed}&sig={signature}&exp=1",
        f"{signed}&sig={signature}&sig={signature}",
        f"sig={signature}&{signed}",
        f"{signed}&sig={signature.upper()}",
    ):
        response = await server.http.put(url.split("?")[0] + "?" + forged, content=TEN)
        assert response.status_code in (400, 403), (forged, response.text)
        error_body(response)
    assert await blobs.size(KEY) is None


async def test_a_signed_url_for_a_directory_is_404_to_read_and_409_to_write(
    server: Server,
) -> None:
    """The server signs keys of objects only; a signature is still no reason for a 500."""
    blobs = blobs_of(server)
    await blobs.receive(KEY, one(TEN), 10)
    directory = KEY.rpartition("/")[0]
    read = await server.http.get(await blobs.presign_get(directory, 60))
    assert read.status_code == 404
    error_body(read)
    assert await blobs.size(directory) is None
    assert await blobs.describe(directory) is None
    write = await server.http.put((await blobs.presign_put(directory, 10, 60)).url, content=TEN)
    assert write.status_code == 409
    error_body(write)
    under_a_file = await server.http.put(
        (await blobs.presign_put(KEY + "/x", 10, 60)).url, content=TEN
    )
    assert under_a_file.status_code == 409
    error_body(under_a_file)
    assert sorted(stored_files(blobs)) == [blobs.path(KEY)]


async def test_a_sealed_object_is_never_replaced(server: Server) -> None:
    blobs = blobs_of(server)
    put = await blobs.presign_put(KEY, 10, 60, sha256=TEN_SHA)
    assert (await server.http.put(put.url, content=TEN)).status_code == 200
    await blobs.seal(KEY)
    again = await server.http.put(put.url, content=TEN)  # even the very same bytes
    assert again.status_code == 409
    assert "sealed" in error_body(again).detail
    other = b"9876543210"
    unbound = await blobs.presign_put(KEY, 10, 60)
    assert (await server.http.put(unbound.url, content=other)).status_code == 409
    assert (await server.http.get(await blobs.presign_get(KEY, 60))).content == TEN
    assert stored_files(blobs) == [blobs.path(KEY)]


async def test_describe_reads_the_size_and_sha256_of_what_is_stored(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs", tmp_path / "secret", "http://x")
    await blobs.open()
    assert await blobs.describe(KEY) is None
    await blobs.receive(KEY, one(TEN), 10)
    assert await blobs.describe(KEY) == StoredBlob(size=10, sha256=TEN_SHA)


@pytest.mark.parametrize("body", [b"12345", b"123"], ids=["larger", "smaller"])
async def test_a_content_length_other_than_signed_is_refused_before_reading(
    server: Server, body: bytes
) -> None:
    blobs = blobs_of(server)
    response = await server.http.put((await blobs.presign_put(KEY, 4, 60)).url, content=body)
    assert response.status_code == 400
    assert "nothing was stored" in error_body(response).detail
    assert stored_files(blobs) == []


@pytest.mark.parametrize("pieces", [10, 4], ids=["larger", "smaller"])
async def test_a_streamed_body_of_another_size_is_refused_and_leaves_nothing(
    server: Server, pieces: int
) -> None:
    blobs = blobs_of(server)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(pieces):
            yield b"x" * 1000

    # No Content-Length: the bytes are counted as they come.
    response = await server.http.put((await blobs.presign_put(KEY, 5000, 60)).url, content=body())
    assert response.status_code == 400
    assert "nothing was stored" in error_body(response).detail
    assert stored_files(blobs) == []


async def test_bytes_that_do_not_match_the_signed_sha256_are_refused(server: Server) -> None:
    blobs = blobs_of(server)
    put = await blobs.presign_put(KEY, 10, 60, sha256=TEN_SHA)
    response = await server.http.put(put.url, content=b"0123456788", headers=put.headers)
    assert response.status_code == 400
    assert "SHA-256" in error_body(response).detail
    assert stored_files(blobs) == []


async def test_receive_writes_nothing_visible_until_complete(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs", tmp_path / "secret", "http://x")
    await blobs.open()

    async def pieces() -> AsyncIterator[bytes]:
        yield b"a" * 700_000
        assert await blobs.size(KEY) is None  # half-way: not there yet
        yield b"b" * 700_000

    assert await blobs.receive(KEY, pieces(), 1_400_000) == 1_400_000
    assert await blobs.size(KEY) == 1_400_000

    async def too_much() -> AsyncIterator[bytes]:
        yield b"c" * 10

    with pytest.raises(BadRequest):
        await blobs.receive(KEY, too_much(), 5)
    with pytest.raises(BadRequest):
        await blobs.receive(KEY, too_much(), 10, sha256=TEN_SHA)
    assert await blobs.size(KEY) == 1_400_000  # the earlier object is untouched
    assert stored_files(blobs) == [blobs.path(KEY)]


async def test_a_missing_blob_is_404(server: Server) -> None:
    response = await server.http.get(await blobs_of(server).presign_get(KEY, 60))
    assert response.status_code == 404
    error_body(response)


@pytest.mark.parametrize(
    "key", ["../escape", "uploads/../../etc/passwd", "/abs", "a//b", ".hidden"]
)
async def test_a_key_that_could_escape_is_refused(tmp_path: Path, key: str) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs", tmp_path / "secret", "http://x")
    await blobs.open()
    with pytest.raises(BadRequest):
        blobs.path(key)
    with pytest.raises(BadRequest):
        await blobs.presign_put(key, 1, 60)


async def test_a_sealed_object_refuses_what_would_replace_it_with_sealed(tmp_path: Path) -> None:
    """Sealed is the contract's error for it: a Conflict, whatever answers the PUT."""
    blobs = LocalBlobStore(tmp_path / "blobs", tmp_path / "secret", "http://x")
    await blobs.open()
    await blobs.receive(KEY, one(TEN), 10)
    await blobs.seal(KEY)
    with pytest.raises(Sealed, match="sealed") as refused:
        await blobs.receive(KEY, one(b"9876543210"), 10)
    assert isinstance(refused.value, Conflict)
    assert blobs.path(KEY).read_bytes() == TEN
    assert stored_files(blobs) == [blobs.path(KEY)]


async def test_delete_prefix_removes_an_uploads_objects(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs", tmp_path / "secret", "http://x")
    await blobs.open()

    for key in (chunk_key("a", 0), chunk_key("a", 1), result_key("a"), chunk_key("b", 0)):
        await blobs.receive(key, one(b"x"), 1)
    await blobs.delete_prefix("uploads/a/")
    assert [await blobs.size(chunk_key("a", 0)), await blobs.size(result_key("a"))] == [None, None]
    assert await blobs.size(chunk_key("b", 0)) == 1


async def test_deleting_one_prefix_from_many_replicas_at_once_is_no_error(
    tmp_path: Path,
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs", tmp_path / "secret", "http://x")
    await blobs.open()

    async def one(data: bytes) -> AsyncIterator[bytes]:
        yield data

    for round_ in range(20):
        upload = f"u{round_}"
        for seq in range(20):
            await blobs.receive(chunk_key(upload, seq), one(b"x"), 1)
        # Each call runs in a thread of its own: they race over the same files and directories.
        await asyncio.gather(*(blobs.delete_prefix(f"uploads/{upload}/") for _ in range(6)))
        assert await blobs.size(chunk_key(upload, 0)) is None
    assert stored_files(blobs) == []


async def test_the_signing_secret_is_private_and_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_server(data) as first:
        url = (await blobs_of(first).presign_put(KEY, 3, 3600)).url
    secret = data / "blob-signing.key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    async with running_server(data) as second:
        assert (await second.http.put(url, content=b"abc")).status_code == 200
