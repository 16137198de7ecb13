"""The upload engine against the real server app: chunks, URLs signed per encoded chunk and asked
for in batches, resume."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from pathlib import Path

import pytest
from tests.unit.client.conftest import no_worker
from tests.unit.client.real_app import CHUNK_URLS_STEP, App, chunk_put
from tests.unit.server.harness import CHUNK

import fap.client.uploader as uploader_module
import fap.server.routes.uploads as upload_routes
from fap.api import BLOBS, CHUNKS, UPLOAD, UPLOADS, ChunkStored, ChunkUrl, UploadInfo
from fap.client import Runtime, UploadListener
from fap.client.chunk_urls import ChunkUrlBook
from fap.errors import InputError, ServerError
from fap.transfer import EncodedChunk, encode_chunk, read_chunk_into
from fap.transfer.codec import MAX_LEVEL, MIN_LEVEL, ZSTD_LEVEL

# Each test here looks at what the client sent and stored; no job needs to finish.
pytestmark = no_worker


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

    async def on_chunk(self, stored: ChunkStored) -> None:
        self.stored.append(stored.stored)

    def on_bytes(self, raw_bytes: int) -> None:
        self.progress += raw_bytes


async def test_a_file_arrives_whole_in_compressed_chunks(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    data = b"a line of very compressible text\n" * 20_000  # ~660 KiB: 11 chunks
    path = _write(tmp_path / "text.log", data)
    await runtime.device()
    listener = Recorder()

    local = await runtime.uploader.inspect(path)
    sent = await runtime.uploader.upload(local, listener=listener)

    assert local.sha256 == hashlib.sha256(data).hexdigest()
    assert sent.info.chunks_stored == list(range(sent.info.chunk_count)) == list(range(11))
    assert await app.file_bytes(sent.info.id) == data
    assert {chunk.codec for chunk in await app.chunks(sent.info.id)} == {"zstd"}
    assert sent.bytes_sent == app.bytes_stored() < len(data) // 10
    assert listener.created == [sent.info.id]
    assert sorted(listener.stored) == list(range(1, 12))
    assert listener.progress == len(data)
    [info] = await app.uploads()
    assert (info.chunks_stored, info.state) == (list(range(11)), "queued")


async def test_each_url_is_asked_for_once_its_chunk_is_encoded_with_its_size_and_checksum(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    data = os.urandom(20 * CHUNK + 5) + b"compressible " * 10_000
    path = _write(tmp_path / "mixed.bin", data)
    await runtime.device()

    sent = await runtime.uploader.upload(await runtime.uploader.inspect(path))

    assert await app.file_bytes(sent.info.id) == data
    specs = sorted((spec for batch in app.url_requests() for spec in batch), key=lambda s: s.seq)
    chunks = await app.chunks(sent.info.id)
    assert [spec.seq for spec in specs] == list(range(sent.info.chunk_count))
    assert [(spec.size, spec.sha256) for spec in specs] == [
        (chunk.stored_size, chunk.sha256) for chunk in chunks
    ]
    assert {chunk.codec for chunk in chunks} == {"raw", "zstd"}
    # Every PUT carried the headers its URL was signed with: the store took each at once.
    assert [put.status for put in app.puts()] == [200] * sent.info.chunk_count


async def test_chunks_encoded_while_a_url_request_is_out_go_in_the_next_one(
    runtime: Runtime, app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(30 * CHUNK)
    path = _write(tmp_path / "random.bin", data)
    await runtime.device()
    # A slow round trip: the first request for URLs waits at the wire until two more chunks,
    # encoded meanwhile, have asked for theirs.
    slow = app.wire.hold(lambda request: request.url.path.endswith(CHUNK_URLS_STEP))
    asked = count_asking(monkeypatch)

    async def release_once_others_ask() -> None:
        await app.wire.until(lambda: len(asked) >= 3, "two more chunks to ask", poll=0.01)
        slow.release()

    releasing = asyncio.create_task(release_once_others_ask())
    sent = await runtime.uploader.upload(await runtime.uploader.inspect(path))
    await releasing

    assert await app.file_bytes(sent.info.id) == data
    sizes = [len(batch) for batch in app.url_requests()]
    assert sum(sizes) == 30
    assert sizes[0] == 1  # the first chunk asks alone
    assert sizes[1] >= 2  # those encoded while it was out, together
    assert len(sizes) < 30


def count_asking(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The chunks that asked for their URL, in order (each asks once it is encoded)."""
    asked: list[int] = []

    class CountingBook(ChunkUrlBook):
        async def take(self, chunk: EncodedChunk) -> ChunkUrl:
            asked.append(chunk.seq)
            return await super().take(chunk)

    monkeypatch.setattr(uploader_module, "ChunkUrlBook", CountingBook)
    return asked


async def test_a_url_that_expired_before_its_put_is_asked_for_again(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    data = os.urandom(4 * CHUNK)
    path = _write(tmp_path / "random.bin", data)
    await runtime.device()
    # Chunk 2's PUT waits at the wire until its URL has expired, the other chunks are stored.
    late = app.wire.hold(chunk_put(2))

    async def expire_while_held() -> None:
        await app.wire.until(
            lambda: late.waiting == 1 and app.reports_answered() == 3, "the other chunks"
        )
        app.server.clock.advance(app.server.settings.url_ttl_seconds + 1)
        late.release()

    expiring = asyncio.create_task(expire_while_held())
    sent = await runtime.uploader.upload(await runtime.uploader.inspect(path))
    await expiring

    assert await app.file_bytes(sent.info.id) == data
    assert [put.status for put in app.puts(2)] == [403, 200]
    assert [put.status for put in app.puts()].count(403) == 1
    assert sum(spec.seq == 2 for batch in app.url_requests() for spec in batch) == 2


async def test_an_interrupted_upload_resumes_with_only_the_missing_chunks(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    data = os.urandom(10 * CHUNK)
    path = _write(tmp_path / "big.bin", data)
    await runtime.device()
    local = await runtime.uploader.inspect(path)
    # The object store falls over after chunk 3.
    falls_over = app.wire.refuse(
        chunk_put(at_least=4), times=None, status=400, detail="Refused by the test."
    )
    with pytest.raises(ServerError):
        await runtime.uploader.upload(local)
    await app.wire.drained()
    [before] = await app.uploads()
    stored = set(before.chunks_stored)
    # Chunk 4 goes once a sender is done with one of 0-2; those in flight land or were refused.
    assert 2 <= len(stored) <= 4 and max(stored) < 4
    falls_over.end()
    asked_before = len(app.url_requests())
    listener = Recorder()

    sent = await runtime.uploader.upload(local, resume=before.id, listener=listener)

    assert sent.info.id == before.id
    assert [upload.id for upload in await app.uploads()] == [before.id]
    assert await app.file_bytes(before.id) == data
    assert sent.bytes_sent == (10 - len(stored)) * CHUNK < len(data)
    asked = sorted(spec.seq for batch in app.url_requests()[asked_before:] for spec in batch)
    assert asked == sorted(set(range(10)) - stored)
    assert listener.progress == len(data)  # stored earlier counts, so the bar starts part-way


async def test_resuming_an_upload_the_server_does_not_know_starts_a_new_one(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    path = _write(tmp_path / "a.txt", b"hello\n")
    await runtime.device()
    unknown = "0" * 32
    sent = await runtime.uploader.upload(await runtime.uploader.inspect(path), resume=unknown)
    asked = [s.status for s in app.wire.sent if s.path == UPLOAD.format(upload_id=unknown)]
    assert asked == [404]
    assert [upload.id for upload in await app.uploads()] == [sent.info.id]
    assert sent.info.id != unknown
    assert await app.file_bytes(sent.info.id) == b"hello\n"


async def test_an_empty_file_has_no_chunks_to_send(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    path = _write(tmp_path / "empty", b"")
    await runtime.device()
    sent = await runtime.uploader.upload(await runtime.uploader.inspect(path))
    assert (sent.info.chunk_count, sent.bytes_sent) == (0, 0)
    assert not [s for s in app.wire.sent if s.path.startswith(BLOBS)]
    assert app.url_requests() == []
    [info] = await app.uploads()
    assert info.state == "queued"  # nothing to wait for: it can be analysed at once


async def test_a_missing_file_or_a_directory_is_an_input_error(
    runtime: Runtime, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="does not exist"):
        await runtime.uploader.inspect(tmp_path / "nope")
    with pytest.raises(InputError, match="not a regular file"):
        await runtime.uploader.inspect(tmp_path)


async def test_memory_stays_bounded_while_the_link_is_stalled(
    runtime: Runtime, app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "big.bin", os.urandom(40 * CHUNK))
    await runtime.device()
    bound = (os.cpu_count() or 1) + runtime.settings.parallel_puts
    reads: list[int] = []  # at each read (in the pool): the chunks read and not yet stored
    encodes: list[int] = []

    def counting_read(*args: object) -> memoryview:
        reads.append(len(reads) + 1 - len([put for put in app.puts() if put.status == 200]))
        return read_chunk_into(*args)  # type: ignore[arg-type]

    def counting_encode(seq: int, raw: memoryview, level: int) -> EncodedChunk:
        encodes.append(seq)
        return encode_chunk(seq, raw, level)

    monkeypatch.setattr(uploader_module, "read_chunk_into", counting_read)
    monkeypatch.setattr(uploader_module, "encode_chunk", counting_encode)
    # The link stalls: no PUT goes through until the test says so.
    stalled = app.wire.hold(chunk_put(), every=True)
    uploading = asyncio.create_task(runtime.uploader.upload(await runtime.uploader.inspect(path)))

    await app.wire.until(
        lambda: len(encodes) >= bound and stalled.waiting == runtime.settings.parallel_puts,
        "the reader to fill every buffer slot",
        poll=0.01,
    )
    # Were the reader not bounded, it would hand the next read to the pool right after the last
    # encode; the pool runs its work in order, so once a task queued after that has run, such a
    # read has started, and been counted.
    await asyncio.get_running_loop().run_in_executor(runtime.uploader.executor, lambda: None)
    assert len(reads) == bound, "the reader went on while nothing was stored"
    stalled.release()
    await uploading

    assert len(reads) == 40
    assert max(reads) <= bound


async def test_on_a_slow_link_the_level_climbs_and_later_chunks_are_smaller(
    app: App, tmp_path: Path
) -> None:
    # Text at ~200 KB/s: each chunk waits ~30 ms for the link, and takes ~2 ms to encode.
    data = log_lines(40 * CHUNK)
    path = _write(tmp_path / "app.log", data)
    async with app.runtime(bwlimit=200_000) as runtime:
        await runtime.device()
        sent = await runtime.uploader.upload(await runtime.uploader.inspect(path))
        assert runtime.uploader.levels.level >= MAX_LEVEL - 1

    assert await app.file_bytes(sent.info.id) == data
    sizes = [chunk.stored_size for chunk in await app.chunks(sent.info.id)]
    assert sum(sizes[-10:]) < sum(sizes[:3]) * 10 / 3


async def test_when_compressing_is_the_limit_the_level_falls_to_the_fastest(
    runtime: Runtime, app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = log_lines(12 * CHUNK)
    path = _write(tmp_path / "app.log", data)
    await runtime.device()

    def slow_encode(seq: int, raw: memoryview, level: int) -> EncodedChunk:
        time.sleep(0.25)  # a slow CPU: the link, in-process, waits for every chunk
        return encode_chunk(seq, raw, level)

    monkeypatch.setattr(uploader_module, "encode_chunk", slow_encode)
    sent = await runtime.uploader.upload(await runtime.uploader.inspect(path))

    assert runtime.uploader.levels.level == MIN_LEVEL
    assert await app.file_bytes(sent.info.id) == data


async def test_a_files_first_chunks_are_encoded_fast_whatever_level_was_learned(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Until one chunk is encoded the link has nothing to send: one chunk per core, those that
    # fill the pipeline, is kept to zstd's default level; the rest follow the learned one.
    path = _write(tmp_path / "app.log", log_lines(12 * CHUNK))
    (app.settings.home / "zstd-level").write_text(f"{MAX_LEVEL}\n")
    levels: dict[int, int] = {}

    def recording_encode(seq: int, raw: memoryview, level: int) -> EncodedChunk:
        levels[seq] = level
        return encode_chunk(seq, raw, level)

    monkeypatch.setattr(uploader_module, "encode_chunk", recording_encode)
    async with app.runtime() as runtime:
        await runtime.device()
        runtime.uploader.levels.cpu_waits = lambda: None  # type: ignore[method-assign]
        runtime.uploader.levels.link_waits = lambda: None  # type: ignore[method-assign]
        await runtime.uploader.upload(await runtime.uploader.inspect(path))

    cores = os.cpu_count() or 1
    assert [levels[seq] for seq in range(cores)] == [ZSTD_LEVEL] * cores
    assert [levels[seq] for seq in range(cores, 12)] == [MAX_LEVEL] * (12 - cores)


def log_lines(size: int) -> bytes:
    rng = random.Random(size)
    lines = (
        f"{n:08d} INFO user=u{rng.randrange(900)} ms={rng.expovariate(0.1):.1f}\n".encode()
        for n in range(size // 20)
    )
    return b"".join(lines)[:size]


async def test_chunks_read_into_reused_buffers_arrive_whole(app: App, tmp_path: Path) -> None:
    # Random chunks are stored raw, as views of the buffer they were read into; paced PUTs keep
    # chunks waiting, read and encoded, while others are read: a buffer given to the next chunk
    # before its own chunk was stored would send that chunk corrupted, and be refused.
    files = {
        name: _write(tmp_path / name, data)
        for name, data in (
            ("a.bin", os.urandom(30 * CHUNK + 5)),
            ("b.log", log_lines(12 * CHUNK)),
            ("c.bin", os.urandom(30 * CHUNK)),
        )
    }
    async with app.runtime(bwlimit=4_000_000) as runtime:
        await runtime.device()

        async def send(path: Path) -> str:
            sent = await runtime.uploader.upload(await runtime.uploader.inspect(path))
            return sent.info.id

        async with asyncio.TaskGroup() as group:
            ids = {name: group.create_task(send(path)) for name, path in files.items()}

    for name, path in files.items():
        assert await app.file_bytes(ids[name].result()) == path.read_bytes(), name


async def test_a_file_of_one_chunk_costs_three_requests_create_put_report(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    # Encoded before its upload is made, its one chunk's URL comes with the create's answer.
    data = log_lines(CHUNK // 2)
    path = _write(tmp_path / "small.log", data)
    await runtime.device()
    before = len(app.wire.sent)
    listener = Recorder()

    sent = await runtime.uploader.upload(await runtime.uploader.inspect(path), listener=listener)

    asked = [(request.method, request.path) for request in app.wire.sent[before:]]
    upload_id = sent.info.id
    assert asked == [
        ("POST", UPLOADS),
        ("PUT", f"{BLOBS}/uploads/{upload_id}/chunks/00000000"),
        ("POST", CHUNKS.format(upload_id=upload_id)),
    ]
    assert await app.file_bytes(upload_id) == data
    assert (sent.info.chunks_stored, sent.info.state, sent.bytes_sent) == (
        [0],
        "queued",
        app.bytes_stored(),
    )
    assert (listener.created, listener.stored, listener.progress) == ([upload_id], [1], len(data))


async def test_a_small_file_sent_again_under_its_request_id_is_not_sent_twice(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    path = _write(tmp_path / "small.log", log_lines(CHUNK // 4))
    await runtime.device()
    local = await runtime.uploader.inspect(path)
    first = await runtime.uploader.upload(local, request_id="journalled-1")
    puts = len(app.puts())

    again = await runtime.uploader.upload(local, request_id="journalled-1")

    assert again.info.id == first.info.id
    assert (again.bytes_sent, len(app.puts())) == (0, puts)
    assert [info.id for info in await app.uploads()] == [first.info.id]


async def test_a_server_that_signs_nothing_in_the_create_is_asked_as_for_any_chunk(
    runtime: Runtime, app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An older server ignores the chunks a create names: the chunk is not taken for stored.
    async def signs_nothing(*args: object, **kwargs: object) -> list[ChunkUrl]:
        return []

    monkeypatch.setattr(upload_routes, "sign_chunk_puts", signs_nothing)
    data = log_lines(CHUNK // 2)
    path = _write(tmp_path / "small.log", data)
    await runtime.device()

    sent = await runtime.uploader.upload(await runtime.uploader.inspect(path))

    assert await app.file_bytes(sent.info.id) == data
    assert [[spec.seq for spec in batch] for batch in app.url_requests()] == [[0]]


async def test_the_next_run_starts_at_the_level_the_last_one_ended_at(app: App) -> None:
    home = app.settings.home
    async with app.runtime() as runtime:
        assert runtime.uploader.levels.level == ZSTD_LEVEL
        for _ in range(4):
            runtime.uploader.levels.link_waits()
    assert (home / "zstd-level").read_text() == f"{ZSTD_LEVEL + 4}\n"
    assert oct((home / "zstd-level").stat().st_mode & 0o777) == "0o600"
    async with app.runtime() as runtime:
        assert runtime.uploader.levels.level == ZSTD_LEVEL + 4

    for damaged in ("", "fast", "0", "42", "-3"):
        (home / "zstd-level").write_text(damaged)
        async with app.runtime() as runtime:
            assert runtime.uploader.levels.level == ZSTD_LEVEL, damaged


async def test_chunks_stored_raw_leave_the_level_where_it_was(app: App, tmp_path: Path) -> None:
    # Random bytes are hardly encoded (a sample says they will not shrink): however fast that
    # is, it says nothing of what compressing costs, so the level does not climb for them.
    path = _write(tmp_path / "random.bin", os.urandom(40 * CHUNK))
    async with app.runtime(bwlimit=2_000_000) as runtime:
        await runtime.device()
        await runtime.uploader.upload(await runtime.uploader.inspect(path))
        assert runtime.uploader.levels.level == ZSTD_LEVEL
