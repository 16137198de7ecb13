"""What a chunk report costs: a fixed, small number of store and blob round trips, however many
chunks the upload has, and an answer whose size does not grow with them (a list of the stored
chunks in every answer made a large upload's reports O(n²) bytes).

A regression guard: a change that makes the route read more shows up here as a count. Measured
before the fix: 10 statements in 6 transactions and 1 blob call, answering the whole list.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from sqlalchemy import event
from tests.unit.server.harness import CHUNK, Server, both_backends, error_body

from fap.api import CHUNKS, UPLOAD, ChunkReport, ChunkStored, UploadCreated, UploadInfo
from fap.transfer import EncodedChunk, encode_chunk

pytestmark = both_backends

# Of these, three authenticate the caller (token, organisation, user: not the route's own). The
# route's: read the upload, then one transaction that records the chunk and counts.
STATEMENTS = 7
TRANSACTIONS = 3
CHUNKS_IN_FILE = 6


@dataclass
class RoundTrips:
    statements: list[str] = field(default_factory=list)
    transactions: int = 0
    blob_calls: list[str] = field(default_factory=list)


@contextmanager
def counted(server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
    """Count the SQL statements, transactions and blob store calls made inside the block."""
    seen = RoundTrips()
    engine = server.services.store.db.engine.sync_engine

    def on_statement(connection: Any, cursor: Any, statement: str, *rest: Any) -> None:
        # SQLite's BEGIN is a statement we send (see database.py); PostgreSQL's is not seen here.
        if not statement.upper().startswith("BEGIN"):
            seen.statements.append(statement)

    def on_begin(connection: Any) -> None:
        seen.transactions += 1

    blobs = server.services.blobs
    with monkeypatch.context() as patch:
        for name in ("size", "presign_put", "presign_get", "delete_prefix"):
            real = getattr(blobs, name)

            async def call(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
                seen.blob_calls.append(_name)
                return await _real(*args, **kw)

            patch.setattr(blobs, name, call)
        event.listen(engine, "before_cursor_execute", on_statement)
        event.listen(engine, "begin", on_begin)
        try:
            yield seen
        finally:
            event.remove(engine, "before_cursor_execute", on_statement)
            event.remove(engine, "begin", on_begin)


def report_of(chunk: EncodedChunk) -> ChunkReport:
    return ChunkReport(
        seq=chunk.seq,
        raw_size=chunk.raw_size,
        stored_size=chunk.stored_size,
        codec="zstd" if chunk.codec == "zstd" else "raw",
        sha256=chunk.sha256,
    )


async def stored_chunks(server: Server) -> tuple[UploadCreated, list[EncodedChunk]]:
    """An upload of several chunks, each PUT to its URL and not reported yet."""
    data = bytes(range(256)) * (CHUNK * CHUNKS_IN_FILE // 256)
    created = await server.create_upload(server.owner, data)
    chunks = []
    for seq in range(CHUNKS_IN_FILE):
        chunk = encode_chunk(seq, data[seq * CHUNK : (seq + 1) * CHUNK])
        url = await server.chunk_url(server.owner, created.upload.id, chunk)
        put = await server.http.put(url.url, content=chunk.data, headers=url.headers)
        assert put.status_code == 200, put.text
        chunks.append(chunk)
    return created, chunks


async def test_each_chunk_report_costs_the_same_few_round_trips_and_answers_a_count(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    created, chunks = await stored_chunks(server)
    path = CHUNKS.format(upload_id=created.upload.id)
    sizes = set()
    for chunk in chunks:
        with counted(server, monkeypatch) as seen:
            response = await server.call("POST", path, server.owner, report_of(chunk))
        assert response.status_code == 200, response.text
        assert len(seen.statements) <= STATEMENTS, seen.statements
        assert seen.transactions <= TRANSACTIONS
        # The blob check stays: it is what proves the bytes a worker will read exist.
        assert seen.blob_calls == ["size"]
        answer = msgspec.json.decode(response.content, type=ChunkStored)
        assert answer == ChunkStored(
            upload_id=created.upload.id,
            seq=chunk.seq,
            stored=chunk.seq + 1,
            chunk_count=CHUNKS_IN_FILE,
            state="queued",
        )
        sizes.add(len(response.content))
    assert len(sizes) == 1  # the answer does not grow with the chunks stored


async def test_a_repeated_report_costs_no_more_and_changes_nothing(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    created, chunks = await stored_chunks(server)
    path = CHUNKS.format(upload_id=created.upload.id)
    first = await server.call("POST", path, server.owner, report_of(chunks[0]))
    with counted(server, monkeypatch) as seen:
        again = await server.call("POST", path, server.owner, report_of(chunks[0]))
    assert again.status_code == 200, again.text
    assert again.content == first.content
    assert len(seen.statements) <= STATEMENTS
    assert seen.transactions <= TRANSACTIONS
    info = await server.ok(
        "GET", UPLOAD.format(upload_id=created.upload.id), server.owner, returns=UploadInfo
    )
    assert info.chunks_stored == [0]


async def test_another_report_of_a_recorded_chunk_is_a_conflict_whatever_its_size(
    server: Server,
) -> None:
    created, chunks = await stored_chunks(server)
    path = CHUNKS.format(upload_id=created.upload.id)
    report = report_of(chunks[0])
    assert (await server.call("POST", path, server.owner, report)).status_code == 200
    other_checksum = msgspec.structs.replace(report, sha256="0" * 64)
    other_size = msgspec.structs.replace(report, stored_size=report.stored_size - 1)
    for other in (other_checksum, other_size):
        refused = await server.call("POST", path, server.owner, other)
        assert refused.status_code == 409, refused.text
        assert "reported before" in error_body(refused).detail
