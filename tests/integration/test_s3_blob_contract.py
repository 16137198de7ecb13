"""What every BlobStore does, run against each one: the local store (served by the real app) and
S3 (a real SeaweedFS). A presigned PUT stores exactly the bytes it was signed for — their size and
SHA-256 — or nothing; a presigned GET reads them back; sizes and deletes work by key and prefix.
Its errors are the contract's too (fap.server.blobs.base): a bad key or checksum is BadRequest, a
store closed or out of reach is BlobStoreUnavailable, nothing stored is None, not an error."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from aiobotocore.session import get_session
from tests.support.seaweedfs import S3Storage, SeaweedFS
from tests.unit.server.harness import running_server

from fap.server.blobs import (
    BlobStore,
    S3Location,
    StoredBlob,
    chunk_key,
    parse_storage_url,
    result_key,
    upload_prefix,
)
from fap.server.blobs.s3 import S3BlobStore
from fap.server.errors import BadRequest, BlobStoreUnavailable
from fap.transfer import get_bytes

UPLOAD = "0123456789abcdef0123456789abcdef"
KEY = chunk_key(UPLOAD, 3)


@dataclass
class Backend:
    store: BlobStore
    http: httpx.AsyncClient  # reaches the store's presigned URLs as a client would


@pytest.fixture(params=["local", "s3"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "local":
        async with running_server(tmp_path / "data") as server:
            yield Backend(server.services.blobs, server.http)
        return
    storage: S3Storage = request.getfixturevalue("s3_storage")
    session = get_session()
    session.set_credentials(storage.access_key, storage.secret_key)
    location = parse_storage_url(storage.url)
    assert isinstance(location, S3Location)
    store = S3BlobStore(location, session=session)
    await store.open()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            yield Backend(store, http)
    finally:
        await store.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_a_presigned_put_stores_and_a_presigned_get_reads(backend: Backend) -> None:
    data = os.urandom(100_000)
    put = await backend.store.presign_put(KEY, len(data), 60, sha256=sha256(data))
    assert put.headers["Content-Length"] == str(len(data))
    stored = await backend.http.put(put.url, content=data, headers=put.headers)
    assert stored.status_code == 200, stored.text
    assert await backend.store.size(KEY) == len(data)
    read = await backend.http.get(await backend.store.presign_get(KEY, 60))
    assert read.status_code == 200
    assert read.content == data


async def test_describe_tells_the_size_and_sha256_of_what_a_checksummed_put_stored(
    backend: Backend,
) -> None:
    """What completion checks a result against: the store's own account of the bytes."""
    sealed = b"age-encryption.org/v1 sealed" * 10
    assert await backend.store.describe(result_key(UPLOAD)) is None
    put = await backend.store.presign_put(
        result_key(UPLOAD), len(sealed), 60, sha256=sha256(sealed)
    )
    assert (await backend.http.put(put.url, content=sealed, headers=put.headers)).status_code == 200
    stored = await backend.store.describe(result_key(UPLOAD))
    assert stored is not None and stored.size == len(sealed)
    assert stored.sha256 == sha256(sealed)
    await backend.store.seal(result_key(UPLOAD))  # harmless where the store cannot enforce it
    read = await backend.http.get(await backend.store.presign_get(result_key(UPLOAD), 60))
    assert read.content == sealed


async def test_the_servers_own_put_stores_bytes_described_and_read_as_a_presigned_put_would(
    backend: Backend,
) -> None:
    """How a small result that came with its completion is stored: checked, and described later
    with its digest (completion is checked against it when the same completion comes again)."""
    sealed = b"age-encryption.org/v1 inline" * 10
    await backend.store.put(result_key(UPLOAD), sealed, sha256(sealed))
    assert await backend.store.describe(result_key(UPLOAD)) == StoredBlob(
        len(sealed), sha256(sealed)
    )
    read = await backend.http.get(await backend.store.presign_get(result_key(UPLOAD), 60))
    assert read.content == sealed


async def test_the_servers_own_put_of_bytes_that_do_not_match_their_digest_stores_nothing(
    backend: Backend,
) -> None:
    with pytest.raises((BadRequest, BlobStoreUnavailable)):
        await backend.store.put(result_key(UPLOAD), b"these bytes", sha256(b"other bytes"))
    assert await backend.store.size(result_key(UPLOAD)) is None


async def test_a_put_without_a_checksum_is_bound_to_its_size_alone(backend: Backend) -> None:
    sealed = b"age-encryption.org/v1 ..." * 10
    put = await backend.store.presign_put(result_key(UPLOAD), len(sealed), 60)
    assert (await backend.http.put(put.url, content=sealed, headers=put.headers)).status_code == 200
    assert await backend.store.size(result_key(UPLOAD)) == len(sealed)


@pytest.mark.parametrize("sent", [b"0123456789!", b"012345678"], ids=["larger", "smaller"])
async def test_a_put_of_another_size_than_signed_is_refused_and_stores_nothing(
    backend: Backend, sent: bytes
) -> None:
    put = await backend.store.presign_put(KEY, 10, 60)
    # The body's own Content-Length: what an honest client of another size declares.
    response = await backend.http.put(put.url, content=sent)
    assert 400 <= response.status_code < 500
    assert await backend.store.size(KEY) is None


async def test_a_corrupted_body_under_a_valid_url_is_refused_and_stores_nothing(
    backend: Backend,
) -> None:
    data = os.urandom(50_000)
    put = await backend.store.presign_put(KEY, len(data), 60, sha256=sha256(data))
    corrupted = bytes([data[0] ^ 1]) + data[1:]
    response = await backend.http.put(put.url, content=corrupted, headers=put.headers)
    assert response.status_code == 400
    assert await backend.store.size(KEY) is None


async def test_a_url_altered_to_another_key_is_refused(backend: Backend) -> None:
    put = await backend.store.presign_put(KEY, 3, 60)
    parts = urlsplit(put.url)
    other = urlunsplit(parts._replace(path=parts.path.replace("00000003", "00000004")))
    response = await backend.http.put(other, content=b"abc", headers=put.headers)
    assert response.status_code == 403
    assert await backend.store.size(chunk_key(UPLOAD, 4)) is None


async def test_nothing_stored_has_no_size_and_reads_404(backend: Backend) -> None:
    assert await backend.store.size(KEY) is None
    assert await backend.store.describe(KEY) is None
    response = await backend.http.get(await backend.store.presign_get(KEY, 60))
    assert response.status_code == 404


async def test_delete_prefix_removes_one_uploads_objects_only(backend: Backend) -> None:
    other = "fedcba9876543210fedcba9876543210"
    keys = [chunk_key(UPLOAD, 0), chunk_key(UPLOAD, 1), result_key(UPLOAD), chunk_key(other, 0)]
    for key in keys:
        put = await backend.store.presign_put(key, 1, 60, sha256=sha256(b"x"))
        assert (await backend.http.put(put.url, content=b"x", headers=put.headers)).is_success
    await backend.store.delete_prefix(f"uploads/{UPLOAD}/")
    assert [await backend.store.size(key) for key in keys] == [None, None, None, 1]
    await backend.store.delete_prefix("uploads/nothing-here/")  # nothing to delete is fine


# A key that could climb out of a directory, or is not of the layout at all.
BAD_KEYS = ["../escape", "uploads/../../etc/passwd", "/abs", "a//b", ".hidden", "x" * 513]


@pytest.mark.parametrize("key", BAD_KEYS, ids=lambda key: key[:24])
async def test_a_key_outside_the_layout_is_bad_request_from_every_method(
    backend: Backend, key: str
) -> None:
    store = backend.store
    with pytest.raises(BadRequest, match="not a valid blob key"):
        await store.presign_put(key, 1, 60)
    with pytest.raises(BadRequest):
        await store.presign_get(key, 60)
    with pytest.raises(BadRequest):
        await store.size(key)
    with pytest.raises(BadRequest):
        await store.describe(key)
    with pytest.raises(BadRequest):
        await store.seal(key)
    with pytest.raises(BadRequest):
        await store.delete_prefix(key + "/")


@pytest.mark.parametrize(
    "checksum",
    [sha256(b"x").upper(), sha256(b"x")[:63], "z" * 64, ""],
    ids=["upper-case", "short", "not-hex", "empty"],
)
async def test_a_checksum_that_is_not_a_lower_case_sha256_is_bad_request(
    backend: Backend, checksum: str
) -> None:
    with pytest.raises(BadRequest, match="SHA-256"):
        await backend.store.presign_put(KEY, 1, 60, sha256=checksum)
    assert await backend.store.size(KEY) is None


async def test_a_closed_store_is_unavailable(backend: Backend) -> None:
    """A request still in flight while the server stops gets a 503 to retry, never a 500."""
    store = backend.store
    await store.close()
    with pytest.raises(BlobStoreUnavailable, match="not open"):
        await store.presign_put(KEY, 1, 60)
    with pytest.raises(BlobStoreUnavailable, match="not open"):
        await store.presign_get(KEY, 60)
    if isinstance(store, S3BlobStore):  # the local store reads its own disk, open or not
        with pytest.raises(BlobStoreUnavailable, match="not open"):
            await store.size(KEY)
        with pytest.raises(BlobStoreUnavailable, match="not open"):
            await store.delete_prefix(upload_prefix(UPLOAD))


async def test_an_object_store_out_of_reach_is_unavailable_until_it_is_back(
    seaweedfs: SeaweedFS, s3_storage: S3Storage
) -> None:
    """S3 only: the local store is this server's own disk, never out of its reach. Presigning is
    arithmetic, done without the store; everything that asks the store raises, and the same store
    works again once the object store is back."""
    session = get_session()
    session.set_credentials(s3_storage.access_key, s3_storage.secret_key)
    location = parse_storage_url(s3_storage.url)
    assert isinstance(location, S3Location)
    store = S3BlobStore(location, session=session)
    await store.open()
    try:
        seaweedfs.stop()
        try:
            with pytest.raises(BlobStoreUnavailable, match="failed"):
                await store.size(KEY)
            with pytest.raises(BlobStoreUnavailable, match="failed"):
                await store.describe(KEY)
            with pytest.raises(BlobStoreUnavailable, match="failed"):
                await store.delete_prefix(upload_prefix(UPLOAD))
            assert (await store.presign_put(KEY, 1, 60)).url
        finally:
            seaweedfs.start().wait_ready()
        assert await store.size(KEY) is None
    finally:
        await store.close()


async def test_a_presigned_get_of_a_byte_range_reads_exactly_those_bytes(
    backend: Backend,
) -> None:
    """How a processor reads one chunk out of a pack: the store answers the range itself, with
    206 (the local store's handling of every Range form is tests/unit/server/test_blob_ranges.py's)."""
    statuses: list[int] = []

    async def record(response: httpx.Response) -> None:
        statuses.append(response.status_code)

    backend.http.event_hooks["response"].append(record)
    pack = os.urandom(100_000)
    await backend.store.put(KEY, pack, sha256(pack))
    url = await backend.store.presign_get(KEY, 60)
    http = backend.http
    assert await get_bytes(http, url, byte_range=(12_345, 4_321)) == pack[12_345:16_666]
    assert await get_bytes(http, url, byte_range=(len(pack) - 7, 7)) == pack[-7:]
    assert statuses == [206, 206]
