"""Chunk codec: each chunk is an independent zstd frame, or stored raw when it does not shrink.

Independent frames let the worker decompress chunk N without chunks 0..N-1, and let several threads
compress at once (zstandard releases the GIL while it works). The level is the uploader's to choose
per chunk (``adapt.py``): the worker decompresses every level alike.

A chunk that a sample shows will not shrink (already compressed, encrypted, random) is stored raw
without being compressed whole: at the higher levels that would cost seconds of CPU per chunk for
nothing.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import zstandard

from fap.errors import IntegrityError

__all__ = (
    "MAX_LEVEL",
    "MIN_LEVEL",
    "ZSTD_LEVEL",
    "EncodedChunk",
    "decode_chunk",
    "encode_chunk",
    "sha256_hex",
)

# Level 3 is zstd's default, and where an upload starts.
ZSTD_LEVEL = 3
# The levels an upload moves between. Past 9 a level costs several times the CPU for a few per
# cent, and its tables take tens of MiB per thread.
MIN_LEVEL = 1
MAX_LEVEL = 9

# The sample that tells whether a chunk is worth compressing: a few slices spread over it, at the
# fastest level; it must shrink by this much.
_SAMPLE_SLICES = 4
_SAMPLE_BYTES = 32 * 1024
_SAMPLE_SHRINKS_TO = 0.97

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    # Compressor objects are not thread-safe: one per thread of the pool and level, made once.
    compressors: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if compressors is None:
        compressors = _local.compressors = {}
    compressor = compressors.get(level)
    if compressor is None:
        compressor = zstandard.ZstdCompressor(level=level, write_content_size=True)
        compressors[level] = compressor
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = zstandard.ZstdDecompressor()
        _local.decompressor = decompressor
    return decompressor


def sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class EncodedChunk:
    seq: int
    raw_size: int
    codec: str  # "zstd" | "raw"
    # The stored bytes; a raw chunk's may be a view of the reader's buffer, which stays the
    # chunk's until it is stored.
    data: bytes | memoryview
    sha256: str  # of ``data``

    @property
    def stored_size(self) -> int:
        return len(self.data)


def encode_chunk(seq: int, raw: bytes | memoryview, level: int = ZSTD_LEVEL) -> EncodedChunk:
    """Compress one chunk at ``level``; incompressible data (already compressed, random) is kept
    raw, most of it without being compressed at all."""
    if _worth_compressing(raw):
        compressed = _compressor(level).compress(raw)
        if len(compressed) < len(raw):
            return EncodedChunk(seq, len(raw), "zstd", compressed, sha256_hex(compressed))
    return EncodedChunk(seq, len(raw), "raw", raw, sha256_hex(raw))


def _worth_compressing(raw: bytes | memoryview) -> bool:
    """Whether slices spread over ``raw`` shrink at the fastest level; a chunk not much larger
    than the sample is simply compressed."""
    if len(raw) <= 2 * _SAMPLE_SLICES * _SAMPLE_BYTES:
        return True
    step = len(raw) // _SAMPLE_SLICES
    sample = b"".join(raw[i * step : i * step + _SAMPLE_BYTES] for i in range(_SAMPLE_SLICES))
    return len(_compressor(MIN_LEVEL).compress(sample)) < _SAMPLE_SHRINKS_TO * len(sample)


def decode_chunk(data: bytes, *, codec: str, raw_size: int, sha256: str) -> bytes:
    """Check the stored bytes against their checksum, then restore the original bytes."""
    if sha256_hex(data) != sha256:
        raise IntegrityError(
            "A chunk does not match its checksum; it was corrupted in transit or storage."
        )
    if codec == "raw":
        raw = data
    elif codec == "zstd":
        try:
            raw = _decompressor().decompress(data, max_output_size=raw_size)
        except zstandard.ZstdError as error:
            raise IntegrityError(f"A chunk could not be decompressed: {error}.") from error
    else:
        raise IntegrityError(f"A chunk uses the unknown codec {codec!r}.")
    if len(raw) != raw_size:
        raise IntegrityError(f"A chunk holds {len(raw)} bytes where {raw_size} were announced.")
    return raw
