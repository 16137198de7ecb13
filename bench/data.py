"""The benchmark's data, made from seeds so that every run sends the same bytes.

- ``text``: CSV-style request logs — timestamps, client addresses, paths with ids, statuses,
  sizes, durations, users, all drawn from a seeded PRNG — which zstd -3 shrinks about 4x (a
  constant line repeated would shrink 10x or more and flatter every compressor);
- ``random``: incompressible bytes from a seeded PRNG;
- a folder of small files (1-64 KiB, text);
- large files (512 MiB text, 1 GiB of each kind) for the latency and peak-memory figures.

Every run of every tool gets a *variant* of its own: the base bytes passed through a byte
permutation picked by the variant's number (digits among digits and letters among letters for
text, all 256 values for random). A permutation keeps a file exactly as compressible — zstd sees
the same matches and the same symbol frequencies under other names — yet changes every chunk, so
that no run is answered from what an earlier run stored (fap answers content it has already
analysed from the existing result). Making a variant costs a ``bytes.translate``, not a new PRNG
pass, which is what keeps the data within the time budget.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from pathlib import Path

import zstandard

__all__ = (
    "Corpus",
    "MiB",
    "compression_ratio",
    "random_bytes",
    "text_bytes",
)

MiB = 1024 * 1024
SEED = 20261201
_WRITE_BLOCK = 8 * MiB
_SMALL_MIN = 1024
_SMALL_MAX = 64 * 1024

_LEVELS = ("INFO",) * 6 + ("WARN", "DEBUG", "ERROR")
_METHODS = ("GET", "GET", "GET", "POST", "PUT")
_PATHS = (
    "/v1/uploads",
    "/v1/uploads/{}/chunks",
    "/v1/status",
    "/v1/jobs/lease",
    "/v1/results/{}",
    "/healthz",
    "/v1/orgs/{}/members",
)
_STATUSES = (200, 200, 200, 200, 201, 204, 304, 404, 500)


def text_bytes(size: int, seed: int = SEED) -> bytes:
    """``size`` bytes of request-log CSV; every field varies, from pools of realistic size."""
    rng = random.Random(seed)
    users = [f"user{rng.randrange(10**6):06d}@example.org" for _ in range(300)]
    hosts = [
        f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(200)
    ]
    pick, below, uniform = rng.choice, rng.randrange, rng.random
    lines: list[bytes] = [b"ts_ms,level,client,method,path,status,bytes,ms,user\n"]
    written = len(lines[0])
    clock = 1_780_000_000_000
    while written < size:
        clock += below(40)
        line = (
            f"{clock},{pick(_LEVELS)},{pick(hosts)},{pick(_METHODS)},"
            f"{pick(_PATHS).format(below(100_000))},{pick(_STATUSES)},{below(4096)},"
            f"{uniform() * 250:.1f},{pick(users)}\n"
        ).encode()
        lines.append(line)
        written += len(line)
    return b"".join(lines)[:size]


def random_bytes(size: int, seed: int = SEED) -> bytes:
    return random.Random(seed).randbytes(size)


def compression_ratio(data: bytes, level: int = 3) -> float:
    """What ``zstd -level`` makes of ``data``: input bytes per output byte."""
    return len(data) / len(zstandard.ZstdCompressor(level=level).compress(data))


def _text_table(variant: int) -> bytes:
    rng = random.Random(SEED * 1000 + variant)
    table = bytearray(range(256))
    for alphabet in (string.digits, string.ascii_lowercase, string.ascii_uppercase):
        shuffled = list(alphabet)
        rng.shuffle(shuffled)
        for plain, renamed in zip(alphabet, shuffled, strict=True):
            table[ord(plain)] = ord(renamed)
    return bytes(table)


def _random_table(variant: int) -> bytes:
    values = list(range(256))
    random.Random(SEED * 1000 + variant).shuffle(values)
    return bytes(values)


@dataclass
class Corpus:
    """The base bytes of each kind, and the files made from them under ``directory``."""

    directory: Path
    text: bytes
    random: bytes

    @classmethod
    def make(cls, directory: Path, text_size: int, random_size: int) -> Corpus:
        directory.mkdir(parents=True, exist_ok=True)
        return cls(directory, text_bytes(text_size), random_bytes(random_size, SEED + 1))

    def base(self, kind: str) -> bytes:
        return self.text if kind == "text" else self.random

    def variant(self, kind: str, number: int) -> bytes:
        table = _text_table(number) if kind == "text" else _random_table(number)
        return self.base(kind).translate(table)

    def write(self, kind: str, number: int, size: int | None = None) -> Path:
        """Variant ``number`` of ``kind`` as a file of ``size`` bytes (default: the base's size);
        a larger size is made of further variants end to end, each distinct."""
        base_size = len(self.base(kind))
        size = base_size if size is None else size
        path = self.directory / f"{kind}-{number}.{'csv' if kind == 'text' else 'bin'}"
        with path.open("wb") as out:
            left, part = size, 0
            while left > 0:
                block = self.variant(kind, number * 1000 + part)[:left]
                out.write(block)
                left -= len(block)
                part += 1
        return path

    def write_small_files(self, number: int, count: int) -> Path:
        """``count`` files of 1-64 KiB (sizes from the seed), cut from a text variant."""
        folder = self.directory / f"small-{number}"
        folder.mkdir(parents=True, exist_ok=True)
        sizes = random.Random(SEED + 2)
        wraps = 0
        text = self.variant("text", 500_000 + number * 100)
        offset = 0
        for index in range(count):
            size = sizes.randrange(_SMALL_MIN, _SMALL_MAX + 1)
            if offset + size > len(text):
                # Past the end: another variant, so that no two files hold the same bytes.
                wraps += 1
                text, offset = self.variant("text", 500_000 + number * 100 + wraps), 0
            (folder / f"part-{index:05d}.csv").write_bytes(text[offset : offset + size])
            offset += size
        return folder
