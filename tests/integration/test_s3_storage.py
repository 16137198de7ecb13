"""``fap serve --storage s3://…`` on a real S3 server (SeaweedFS).

Chunks go from the client straight to the bucket through URLs the server signs for their exact
size and SHA-256; the S3 server itself refuses every PUT that is not exactly that — tampered,
expired, larger, smaller, unsigned, corrupted — and stores nothing. Clients and processors hold no
storage credentials, yet a whole upload comes back analysed with its blobs in the bucket.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import msgspec
import pytest
from tests.e2e.conftest import Pipeline, server_log_tail
from tests.support.processes import ServerProcess, fap_argv, free_port
from tests.support.seaweedfs import S3Storage, SeaweedFS
from tests.support.uploads import chunk_url, report_chunk

from fap.api import DEVICES, UPLOADS, ChunkUrl, UploadCreate, UploadCreated
from fap.crypto import DeviceIdentity
from fap.transfer import EncodedChunk, encode_chunk

KiB = 1024
CHUNK = 64 * KiB


@pytest.fixture(scope="module")
def bucket(seaweedfs: SeaweedFS) -> Iterator[S3Storage]:
    """One bucket for this module's server: each test works in uploads of its own."""
    storage = seaweedfs.new_bucket()
    yield storage
    seaweedfs.drop_bucket(storage)


@pytest.fixture(scope="module")
def s3_server(
    bucket: S3Storage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """``fap serve --storage s3://…`` shared by the module: a start costs seconds, and the
    refusals below are many."""
    tmp = tmp_path_factory.mktemp("s3-server")
    port = free_port()
    data = tmp / "data"
    server = ServerProcess(
        argv=fap_argv(
            "serve", "--port", str(port), "--data-dir", str(data), "--storage", bucket.url
        ),
        log_path=tmp / "server.log",
        env=bucket.env,
        port=port,
        data_dir=data,
    )
    try:
        yield server.start().wait_ready()
    finally:
        server.stop()


def upload_keys(storage: S3Storage, upload_id: str) -> list[str]:
    """What the bucket holds for one upload."""
    prefix = storage.key(f"uploads/{upload_id}/")
    return [key for key in storage.stored_keys() if key.startswith(prefix)]


@dataclass
class Client:
    """The test plays the desktop client through the public API, with no storage credentials."""

    api: httpx.Client
    blobs: httpx.Client

    def create(self, data: bytes) -> UploadCreated:
        create = UploadCreate(
            name="data.bin",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            chunk_size=CHUNK,
        )
        answer = self.api.post(UPLOADS, content=msgspec.json.encode(create))
        assert answer.status_code == 201, answer.text
        return msgspec.json.decode(answer.content, type=UploadCreated)

    def signed(self, data: bytes) -> tuple[UploadCreated, EncodedChunk, ChunkUrl]:
        """A new upload of ``data`` and the URL of its first chunk, not yet sent."""
        created = self.create(data)
        chunk = encode_chunk(0, data[:CHUNK])
        return created, chunk, chunk_url(self.api, created.upload.id, chunk)


@pytest.fixture
def client_of() -> Iterator[Callable[[ServerProcess], Client]]:
    opened: list[httpx.Client] = []

    def open_client(server: ServerProcess) -> Client:
        auth = {"Authorization": f"Bearer {server.owner_token}"}
        api = httpx.Client(base_url=server.url, headers=auth, timeout=30)
        blobs = httpx.Client(timeout=30)
        opened.extend([api, blobs])
        device = {"name": "test", "recipient": DeviceIdentity.generate().recipient}
        assert api.post(DEVICES, json=device).status_code < 300
        return Client(api, blobs)

    yield open_client
    for http in opened:
        http.close()


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=urlencode({**dict(parse_qsl(parts.query)), **changes})))


def test_chunks_go_to_the_bucket_through_urls_signed_for_their_bytes(
    s3_server: ServerProcess, bucket: S3Storage, client_of: Callable[[ServerProcess], Client]
) -> None:
    client = client_of(s3_server)
    data = os.urandom(CHUNK)  # one chunk: the job it queues is whole
    created, chunk, url = client.signed(data)

    assert url.url.startswith(f"{bucket.endpoint}/{bucket.bucket}/{bucket.prefix}/")
    query = dict(parse_qsl(urlsplit(url.url).query))
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert set(query["X-Amz-SignedHeaders"].split(";")) >= {
        "content-length",
        "x-amz-checksum-sha256",
    }
    assert bucket.access_key in query["X-Amz-Credential"]  # the server's key, not a secret
    assert url.headers == {
        "Content-Length": str(chunk.stored_size),
        "x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(chunk.sha256)).decode(),
    }
    put = client.blobs.put(url.url, content=chunk.data, headers=url.headers)
    assert put.status_code == 200, put.text
    assert report_chunk(client.api, created.upload.id, chunk).json()["state"] == "queued"

    key = bucket.key(f"uploads/{created.upload.id}/chunks/00000000")
    stored = bucket.client().get_object(Bucket=bucket.bucket, Key=key)
    assert stored["Body"].read() == chunk.data
    # The blobs are in the bucket, none in the data dir, and the server serves no blob route.
    assert not (s3_server.data_dir / "blobs").exists()
    assert httpx.get(f"{s3_server.url}/blobs/{key}").status_code == 404


def _flip_first_byte(data: bytes) -> bytes:
    return bytes([data[0] ^ 0xFF]) + data[1:]


# Each way a PUT can stray from what was signed: (url, body, headers) from the good ones.
REFUSALS: dict[str, tuple[Callable[..., tuple[str, bytes, dict[str, str]]], int, str]] = {
    "a tampered signature": (
        lambda url, body, headers: (
            with_query(url, **{"X-Amz-Signature": "0" * 64}),
            body,
            headers,
        ),
        403,
        "SignatureDoesNotMatch",
    ),
    "a URL moved to another key": (
        lambda url, body, headers: (url.replace("/00000000?", "/00000001?"), body, headers),
        403,
        "SignatureDoesNotMatch",
    ),
    "a lengthened expiry": (
        lambda url, body, headers: (with_query(url, **{"X-Amz-Expires": "604800"}), body, headers),
        403,
        "SignatureDoesNotMatch",
    ),
    "a body larger than signed": (
        lambda url, body, headers: (url, body + b"!", _without_length(headers)),
        403,
        "SignatureDoesNotMatch",
    ),
    "a body smaller than signed": (
        lambda url, body, headers: (url, body[:-1], _without_length(headers)),
        403,
        "SignatureDoesNotMatch",
    ),
    "no checksum header": (
        lambda url, body, headers: (url, body, {}),
        403,
        "SignatureDoesNotMatch",
    ),
    "an unsigned request": (
        lambda url, body, headers: (url.split("?")[0], body, headers),
        403,
        "AccessDenied",
    ),
    "a corrupted body under a valid URL": (
        lambda url, body, headers: (url, _flip_first_byte(body), headers),
        400,
        "BadDigest",
    ),
}


def _without_length(headers: dict[str, str]) -> dict[str, str]:
    # The client declares the length it really sends, as any HTTP client would.
    return {name: value for name, value in headers.items() if name != "Content-Length"}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_the_s3_server_refuses_a_put_that_strays_from_its_signature(
    s3_server: ServerProcess,
    bucket: S3Storage,
    client_of: Callable[[ServerProcess], Client],
    case: str,
) -> None:
    stray, status, code = REFUSALS[case]
    client = client_of(s3_server)
    created, chunk, url = client.signed(os.urandom(CHUNK))

    target, body, headers = stray(url.url, chunk.data, dict(url.headers))
    response = client.blobs.put(target, content=body, headers=headers)

    assert response.status_code == status, response.text
    assert f"<Code>{code}</Code>" in response.text
    assert upload_keys(bucket, created.upload.id) == []  # nothing stored, at that key or another
    refused = report_chunk(client.api, created.upload.id, chunk)
    assert refused.status_code == 400
    assert "not stored" in refused.json()["detail"]


def test_an_expired_url_is_refused_and_stores_nothing(
    start_server: Callable[..., ServerProcess],
    bucket: S3Storage,
    client_of: Callable[[ServerProcess], Client],
    tmp_path: Path,
) -> None:
    home = tmp_path / "server-home"
    home.mkdir()
    (home / "config.toml").write_text("[server]\nurl_ttl_seconds = 1\n")
    server = start_server("--storage", bucket.url, env={**bucket.env, "FAP_HOME": str(home)})
    client = client_of(server)
    created, chunk, url = client.signed(os.urandom(1000))
    query = dict(parse_qsl(urlsplit(url.url).query))
    assert query["X-Amz-Expires"] == "1"
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    # Expiry is a matter of time alone: wait it out (a second or two), then try.
    time.sleep(max(0.0, signed_at.timestamp() + 1 + 1.1 - time.time()))

    response = client.blobs.put(url.url, content=chunk.data, headers=url.headers)

    assert response.status_code == 403
    assert "expired" in response.text
    assert upload_keys(bucket, created.upload.id) == []


@pytest.mark.parametrize(
    ("other_bucket", "env", "words"),
    [
        ("fap-no-such-bucket", {}, "does not exist; create it first"),
        (None, {"AWS_SECRET_ACCESS_KEY": "not-the-key"}, "refused the server's credentials"),
        (None, {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, "No AWS credentials"),
    ],
)
def test_the_server_says_in_one_line_when_the_bucket_cannot_be_used(
    bucket: S3Storage, tmp_path: Path, other_bucket: str | None, env: dict[str, str], words: str
) -> None:
    url = bucket.url.replace(bucket.bucket, other_bucket) if other_bucket else bucket.url
    environment = {**os.environ, **bucket.env, **env}
    # An empty variable is an unset one to the AWS chain; a home with no profile in it either.
    environment["HOME"] = str(tmp_path)
    done = subprocess.run(
        fap_argv("serve", "--port", "1", "--data-dir", str(tmp_path / "data"), "--storage", url),
        env={name: value for name, value in environment.items() if value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and words in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_a_whole_upload_is_analysed_with_its_blobs_in_the_bucket(
    s3_server: ServerProcess, bucket: S3Storage, tmp_path: Path
) -> None:
    home, signals = tmp_path / "home", tmp_path / "signals"
    home.mkdir()
    signals.mkdir()
    # Small chunks, so that every file but the empty one takes several URLs, PUTs and GETs.
    (home / "config.toml").write_text(f"[client]\nchunk_size = {CHUNK}\n")
    pipeline = Pipeline(server=s3_server, tmp=tmp_path, home=home, signals=signals)
    assert not any(name.startswith("AWS_") for name in pipeline.env)
    files = {
        "text.log": b"2026-11-30 INFO request served status=200\n" * 20_000,
        "random.bin": os.urandom(5 * CHUNK + 17),
        "empty.bin": b"",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    try:
        pipeline.start_worker()
        lines = pipeline.upload(*(str(tmp_path / n) for n in files), "--results", str(home / "r"))
    finally:
        for worker in pipeline.workers:
            worker.stop()

    assert [line["status"] for line in lines] == ["done"] * len(files), server_log_tail(pipeline)
    for line in lines:
        data = files[Path(line["file"]).name]
        result = json.loads(Path(line["result_path"]).read_text())
        assert (result["bytes"], result["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    for line in lines:
        stored = upload_keys(bucket, line["upload_id"])
        chunks = -(-len(files[Path(line["file"]).name]) // CHUNK)
        # Every chunk; the sealed results are small, so the server keeps them in its database.
        assert len(stored) == chunks, stored
        assert not any(key.endswith("/result.age") for key in stored)
    assert not (s3_server.data_dir / "blobs").exists()
