"""What a chunk must be to be signed for or recorded, and the signing of its presigned PUT: shared
by the routes that create an upload (with its first chunks) and that ask for chunk URLs."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from fap.api import MAX_CHUNK_URLS, ChunkSpec, ChunkUrl
from fap.server.blobs import chunk_key
from fap.server.errors import BadRequest, Conflict
from fap.server.routes.validation import check_sha256
from fap.server.routes.views import Chunked, expected_raw_size
from fap.server.services import Services
from fap.server.store import Upload

__all__ = ("check_seq", "check_specs", "check_stored_size", "sign_chunk_puts")


async def sign_chunk_puts(
    services: Services,
    upload: Upload,
    asked: Sequence[ChunkSpec],
    *,
    stored: Collection[int] | None = None,
) -> list[ChunkUrl]:
    """Presigned PUTs for encoded chunks of ``upload``, each signed for its exact size and
    SHA-256; BadRequest for a chunk that cannot be, Conflict for one already stored. A caller
    that read the ``stored`` chunks already (a request sent again may find some) gets no URL
    for those, and no refusal."""
    specs = check_specs(upload, asked)
    if stored is not None:
        specs = [spec for spec in specs if spec.seq not in stored]
    else:
        known = set((await services.store.uploads.stored_seqs([upload.id])).get(upload.id, []))
        if already := [spec.seq for spec in specs if spec.seq in known]:
            raise Conflict(f"Chunk {already[0]} of upload {upload.id} is already stored.")
    ttl = services.settings.url_ttl_seconds
    urls = []
    for spec in specs:
        key = chunk_key(upload.id, spec.seq)
        signed = await services.blobs.presign_put(key, spec.size, ttl, sha256=spec.sha256)
        urls.append(
            ChunkUrl(seq=spec.seq, url=signed.url, size=spec.size, headers=dict(signed.headers))
        )
    return urls


def check_specs(file: Chunked, asked: Sequence[ChunkSpec]) -> list[ChunkSpec]:
    """The chunks asked for, each one checked: BadRequest names the first that cannot be."""
    if len(asked) > MAX_CHUNK_URLS:
        raise BadRequest(f"Ask for at most {MAX_CHUNK_URLS} chunk URLs at once.")
    seqs = [spec.seq for spec in asked]
    if len(set(seqs)) != len(seqs):
        repeated = next(seq for seq in seqs if seqs.count(seq) > 1)
        raise BadRequest(f"Chunk {repeated} is asked for more than once.")
    return [_checked(file, spec) for spec in asked]


def check_seq(file: Chunked, seq: int) -> None:
    named = f"Upload {file.id}" if file.id else "The file"
    if not 0 <= seq < file.chunk_count:
        if file.chunk_count == 0:
            raise BadRequest(f"{named} is an empty file; it has no chunks.")
        raise BadRequest(
            f"{named} has chunks 0 to {file.chunk_count - 1}; there is no chunk {seq}."
        )


def check_stored_size(file: Chunked, seq: int, size: int) -> None:
    if not 0 <= size <= expected_raw_size(file, seq):
        raise BadRequest(
            f"Chunk {seq} cannot be stored in {size} bytes: a stored chunk is never larger than "
            "its raw bytes."
        )


def _checked(file: Chunked, spec: ChunkSpec) -> ChunkSpec:
    check_seq(file, spec.seq)
    check_stored_size(file, spec.seq, spec.size)
    sha256 = check_sha256(spec.sha256, f"sha256 of chunk {spec.seq}")
    return ChunkSpec(seq=spec.seq, size=spec.size, sha256=sha256)
