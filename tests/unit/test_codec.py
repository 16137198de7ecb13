"""The chunk codec: a chunk is a zstd frame at the level asked for, or raw when it will not
shrink — and then, most of the time, without having been compressed whole; every level decodes
alike; the level follows whichever of the link and the CPU is the limit."""

from __future__ import annotations

import os
import random

import pytest

from fap.errors import IntegrityError
from fap.transfer import codec, decode_chunk, encode_chunk
from fap.transfer.adapt import LevelControl
from fap.transfer.codec import MAX_LEVEL, MIN_LEVEL, ZSTD_LEVEL

MiB = 1024 * 1024


def log_text(size: int, seed: int = 1) -> bytes:
    """Log lines with varied fields: compressible, though not trivially."""
    rng = random.Random(seed)
    lines = []
    total = 0
    while total < size:
        line = (
            f"2026-11-30T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z INFO "
            f"req={rng.getrandbits(32):08x} status={rng.choice((200, 201, 404))} "
            f"ms={rng.expovariate(0.05):.1f}\n"
        ).encode()
        lines.append(line)
        total += len(line)
    return b"".join(lines)[:size]


@pytest.fixture
def compressed_at(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every compression the codec does, as (level, bytes given)."""
    calls: list[tuple[int, int]] = []
    real = codec._compressor

    class Counting:
        def __init__(self, level: int) -> None:
            self._level = level

        def compress(self, data: bytes) -> bytes:
            calls.append((self._level, len(data)))
            return real(self._level).compress(data)

    monkeypatch.setattr(codec, "_compressor", Counting)
    return calls


@pytest.mark.parametrize("level", [MIN_LEVEL, ZSTD_LEVEL, MAX_LEVEL])
def test_text_is_a_zstd_frame_at_any_level_and_decodes_to_itself(level: int) -> None:
    raw = log_text(2 * MiB)
    chunk = encode_chunk(7, raw, level)
    assert (chunk.seq, chunk.codec, chunk.raw_size) == (7, "zstd", len(raw))
    assert chunk.stored_size < len(raw) // 2
    assert decode_chunk(chunk.data, codec="zstd", raw_size=len(raw), sha256=chunk.sha256) == raw


def test_a_higher_level_sends_fewer_bytes() -> None:
    raw = log_text(2 * MiB)
    assert encode_chunk(0, raw, MAX_LEVEL).stored_size < encode_chunk(0, raw, MIN_LEVEL).stored_size


def test_random_bytes_are_stored_raw_after_a_sample_alone(
    compressed_at: list[tuple[int, int]],
) -> None:
    raw = os.urandom(4 * MiB)
    chunk = encode_chunk(0, raw, MAX_LEVEL)
    assert (chunk.codec, chunk.data) == ("raw", raw)
    # Only the sample was compressed, at the fastest level; never the chunk at level 9.
    assert compressed_at == [(MIN_LEVEL, 4 * 32 * 1024)]


def test_a_chunk_whose_sample_shrinks_is_compressed_whole_at_its_level(
    compressed_at: list[tuple[int, int]],
) -> None:
    # Random bytes but for a compressible middle: the sample finds it, so the chunk is tried.
    raw = os.urandom(MiB) + log_text(2 * MiB) + os.urandom(MiB)
    chunk = encode_chunk(0, raw, 5)
    assert chunk.codec == "zstd"
    assert compressed_at[-1] == (5, len(raw))


def test_a_small_chunk_is_compressed_without_a_sample(
    compressed_at: list[tuple[int, int]],
) -> None:
    raw = os.urandom(64 * 1024)
    assert encode_chunk(0, raw, 4).codec == "raw"  # tried, and it did not shrink
    assert compressed_at == [(4, len(raw))]


def test_a_damaged_frame_is_an_integrity_error() -> None:
    chunk = encode_chunk(0, log_text(MiB))
    damaged = chunk.data[:100] + bytes([chunk.data[100] ^ 0xFF]) + chunk.data[101:]
    with pytest.raises(IntegrityError, match="does not match its checksum"):
        decode_chunk(damaged, codec="zstd", raw_size=MiB, sha256=chunk.sha256)


def test_the_level_climbs_while_the_link_is_the_limit_and_falls_while_the_cpu_is() -> None:
    levels = LevelControl()
    assert levels.level == ZSTD_LEVEL
    for _ in range(20):
        levels.link_waits()
    assert levels.level == MAX_LEVEL
    for _ in range(3):
        levels.cpu_waits()
    assert levels.level == MAX_LEVEL - 3
    for _ in range(20):
        levels.cpu_waits()
    assert levels.level == MIN_LEVEL


def test_a_level_outside_the_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"zstd level 12 is outside 1\.\.9"):
        LevelControl(start=12)
