"""Moving file bytes: chunking, the zstd codec, checksums, presigned PUT/GET."""

from fap.transfer.chunking import (
    chunk_count,
    file_sha256,
    read_chunk,
    read_chunk_into,
    read_chunks,
)
from fap.transfer.codec import EncodedChunk, decode_chunk, encode_chunk, sha256_hex
from fap.transfer.presigned import Retries, get_bytes, put_bytes

__all__ = (
    "EncodedChunk",
    "Retries",
    "chunk_count",
    "decode_chunk",
    "encode_chunk",
    "file_sha256",
    "get_bytes",
    "put_bytes",
    "read_chunk",
    "read_chunk_into",
    "read_chunks",
    "sha256_hex",
)
