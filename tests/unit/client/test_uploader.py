"""The upload engine against an in-process fake server: chunks, URLs signed per encoded chunk
and asked for in batches, resume."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from tests.unit.client.conftest import CHUNK
from tests.unit.client.fake_server import FakeServer

from fap.api import UploadInfo
from fap.client import Runtime, UploadListener
from fap.errors import InputError, ServerError


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


class Recorder(UploadListener):
    def __init__(self) -> None:
        self.created: list[str] = []
        self.stored: list[int] = []
        self.progress = 0

    async def on_upload(self, info: UploadInfo) -> None:
        self.created.append(info.id)

    async def on_chunk(self, info: UploadInfo) -> None:
        self.stored.append(len(info.chunks_stored))

    def on_bytes(self, raw_bytes: int) -> None:
        self.progress += raw_bytes


async def test_a_file_arrives_whole_in_compressed_chunks(
    runtime: Runtime, fake: FakeServer, tmp_path: Path
) -> None:
    data = b"a line of very compressible text\n" * 20_000  # ~660 KiB: 11 chunks
    path = _write(tmp_path / "text.log", data)
    await runtime.device()
    listener = Recorder()

    local = await runtime.uploader.inspect(path)
    sent = await runtime.uploader.upload(local, listener=listener)

    assert local.sha256 == hashlib.sha256(data).hexdigest()
    assert sent.info.chunks_stored == list(range(sent.info.chunk_count)) == list(range(11))
    assert fake.file_bytes(sent.info.id) == data
    assert {r.codec for r in fake.uploads[sent.info.id].reports.values()} == {"zstd"}
    assert sent.bytes_sent == fake.bytes_received < len(data) // 10
    assert listener.created == [sent.info.id]
    assert sorted(listener.stored) == list(range(1, 12))
    assert listener.progress == len(data)


async def test_each_url_is_asked_for_once_its_chunk_is_encoded_with_its_size_and_checksum(
    runtime: Runtime, fake: FakeServer, tmp_path: Path
) -> None:
    data = os.urandom(20 * CHUNK + 5) + b"compressible " * 10_000
    path = _write(tmp_path / "mixed.bin", data)
    await runtime.device()

    sent = await runtime.uploader.upload(await runtime.uploader.inspect(path))

    assert fake.file_bytes(sent.info.id) == data
    specs = sorted((spec for batch in fake.url_requests for spec in batch), key=lambda s: s.seq)
    reports = fake.uploads[sent.info.id].reports
    assert [spec.seq for spec in specs] == list(range(sent.info.chunk_count))
    assert [(spec.size, spec.sha256) for spec in specs] == [
        (reports[spec.seq].stored_size, reports[spec.seq].sha256) for spec in specs
    ]
    assert fake.refused_puts == []  # every PUT carried the headers its URL was signed with


async def test_chunks_encoded_while_a_url_request_is_out_go_in_the_next_one(
    runtime: Runtime, fake: FakeServer, tmp_path: Path
) -> None:
    data = os.urandom(30 * CHUNK)
    path = _write(tmp_path / "random.bin", data)
    await runtime.device()
    fake.url_delay = 0.05  # a slow round trip: the encoders get ahead of it

    sent = await runtime.uploader.upload(await runtime.uploader.inspect(path))

    assert fake.file_bytes(sent.info.id) == data
    sizes = [len(batch) for batch in fake.url_requests]
    assert sum(sizes) == 30
    assert max(sizes) > 1 and len(sizes) < 30


async def test_a_url_that_expired_before_its_put_is_asked_for_again(
    runtime: Runtime, fake: FakeServer, tmp_path: Path
) -> None:
    data = os.urandom(4 * CHUNK)
    path = _write(tmp_path / "random.bin", data)
    await runtime.device()
    fake.expire_first_url_of = {2}

    sent = await runtime.uploader.upload(await runtime.uploader.inspect(path))

    assert fake.file_bytes(sent.info.id) == data
    assert fake.refused_puts == [(2, 403)]
    assert sum(spec.seq == 2 for batch in fake.url_requests for spec in batch) == 2


async def test_an_interrupted_upload_resumes_with_only_the_missing_chunks(
    runtime: Runtime, fake: FakeServer, tmp_path: Path
) -> None:
    data = os.urandom(10 * CHUNK)
    path = _write(tmp_path / "big.bin", data)
    await runtime.device()
    local = await runtime.uploader.inspect(path)
    fake.refuse_puts_from = 4  # the object store falls over after chunk 3
    with pytest.raises(ServerError):
        await runtime.uploader.upload(local)
    [upload_id] = fake.uploads
    stored_before = len(fake.uploads[upload_id].reports)
    assert 0 < stored_before < 10
    fake.refuse_puts_from = None
    fake.url_requests.clear()
    listener = Recorder()

    sent = await runtime.uploader.upload(local, resume=upload_id, listener=listener)

    assert sent.info.id == upload_id
    assert len(fake.uploads) == 1
    assert fake.file_bytes(upload_id) == data
    assert sent.bytes_sent == (10 - stored_before) * CHUNK < len(data)
    asked = sorted(spec.seq for batch in fake.url_requests for spec in batch)
    assert asked == list(range(stored_before, 10))
    assert listener.progress == len(data)  # stored earlier counts, so the bar starts part-way


async def test_resuming_an_upload_the_server_does_not_know_starts_a_new_one(
    runtime: Runtime, fake: FakeServer, tmp_path: Path
) -> None:
    path = _write(tmp_path / "a.txt", b"hello\n")
    await runtime.device()
    sent = await runtime.uploader.upload(await runtime.uploader.inspect(path), resume="up-404")
    assert sent.info.id == "up-1"
    assert fake.file_bytes("up-1") == b"hello\n"


async def test_an_empty_file_has_no_chunks_to_send(
    runtime: Runtime, fake: FakeServer, tmp_path: Path
) -> None:
    path = _write(tmp_path / "empty", b"")
    await runtime.device()
    sent = await runtime.uploader.upload(await runtime.uploader.inspect(path))
    assert (sent.info.chunk_count, sent.bytes_sent) == (0, 0)
    assert not [call for call in fake.calls if call[1].startswith("/blobs/")]


async def test_a_missing_file_or_a_directory_is_an_input_error(
    runtime: Runtime, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="does not exist"):
        await runtime.uploader.inspect(tmp_path / "nope")
    with pytest.raises(InputError, match="not a regular file"):
        await runtime.uploader.inspect(tmp_path)


async def test_memory_stays_bounded_while_the_link_is_slow(
    runtime: Runtime, fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fap.client.uploader as uploader_module

    path = _write(tmp_path / "big.bin", os.urandom(40 * CHUNK))
    await runtime.device()
    fake.put_delay = 0.01
    read = uploader_module.read_chunk
    buffered: list[int] = []

    def counting_read(*args: object) -> bytes:
        chunk: bytes = read(*args)  # type: ignore[arg-type]
        stored = fake.bytes_received // CHUNK
        buffered.append(len(buffered) + 1 - stored)
        return chunk

    monkeypatch.setattr(uploader_module, "read_chunk", counting_read)
    await runtime.uploader.upload(await runtime.uploader.inspect(path))

    workers = os.cpu_count() or 1
    assert max(buffered) <= workers + runtime.settings.parallel_puts
