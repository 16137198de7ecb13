"""Cutting a file into fixed-size chunks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from io import BufferedReader
from pathlib import Path
from typing import BinaryIO

__all__ = ("chunk_count", "file_sha256", "read_chunk", "read_chunk_into", "read_chunks")

_HASH_BLOCK = 1024 * 1024


def chunk_count(size: int, chunk_size: int) -> int:
    """How many chunks a file of ``size`` bytes has: an empty file has none."""
    return -(-size // chunk_size)


def read_chunk(handle: BinaryIO, seq: int, chunk_size: int) -> bytes:
    handle.seek(seq * chunk_size)
    return handle.read(chunk_size)


def read_chunk_into(
    handle: BufferedReader, seq: int, chunk_size: int, buffer: bytearray
) -> memoryview:
    """Read chunk ``seq`` into ``buffer`` (``chunk_size`` long at least), answer the bytes read:
    a buffer used again and again, where a new ``bytes`` per chunk would leave the allocator
    holding freed chunks' memory, or paying to map it afresh each time."""
    handle.seek(seq * chunk_size)
    view = memoryview(buffer)[:chunk_size]
    got = 0
    while got < chunk_size and (read := handle.readinto(view[got:])):
        got += read
    return view[:got]


def read_chunks(handle: BinaryIO, chunk_size: int, seqs: list[int]) -> Iterator[tuple[int, bytes]]:
    for seq in seqs:
        yield seq, read_chunk(handle, seq, chunk_size)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()
