"""The upload engine against an in-process fake server: chunks, URLs in batches, resume."""

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


async def test_urls_beyond_the_first_batch_are_asked_for_as_sending_reaches_them(
    runtime: Runtime, fake: FakeServer, tmp_path: Path
) -> None:
    data = os.urandom(100 * CHUNK + 5)  # 101 chunks: the first answer signs 64
    path = _write(tmp_path / "random.bin", data)
    await runtime.device()

    sent = await runtime.uploader.upload(await runtime.uploader.inspect(path))

    assert fake.file_bytes(sent.info.id) == data
    asked = sorted(seq for batch in fake.url_requests for seq in batch)
    assert asked == list(range(64, 101))
    assert sent.bytes_sent == len(data)  # random data is stored raw


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
    assert sorted(s for batch in fake.url_requests for s in batch) == list(range(stored_before, 10))
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
