"""The files the chaos test feeds the watcher, and what the reference engine must say of each.

Sizes cluster where chunking has edges (empty, one byte, a chunk less or more one byte, whole
chunks) and spread up to several chunks; contents are noise (stored raw: zstd cannot shrink it),
text (compressed, counted in lines) and zeros (compressed, not text: NUL bytes). Everything comes
from the seeded RNG, so a replay writes the same bytes under the same names.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from fap.engine.reference import analyze
from fap.engine.sdk import FileMeta

__all__ = ("CHUNK", "ChaosFile", "expected_result", "make_corpus")

# The smallest chunk the server accepts: "several chunks" stays cheap to write and to analyse.
CHUNK = 64 * 1024
_MAX_CHUNKS = 5
_EDGES = (0, 1, 100, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17, _MAX_CHUNKS * CHUNK)
_WORDS = ("alpha", "beta", "gamma", "delta", "chaos", "kill", "résumé", "日本", "42", "\t")


@dataclass(frozen=True)
class ChaosFile:
    """One file of the corpus: its name relative to the watched directory, and its bytes."""

    name: str
    data: bytes

    def drop(self, inbox: Path) -> Path:
        """Put the file in the watched tree whole: written under a hidden name (which the watcher
        ignores), then renamed, so the watcher never sees it half-written."""
        target = inbox / self.name
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(self.data)
        partial.replace(target)
        return target


def make_corpus(rng: random.Random, count: int, prefix: str) -> list[ChaosFile]:
    """``count`` files under the folder ``prefix``: every chunk edge once, then random sizes."""
    files = []
    for n in range(count):
        size = _EDGES[n] if n < len(_EDGES) else rng.randint(0, _MAX_CHUNKS * CHUNK + 1)
        kind = rng.choice(("noise", "text", "zeros"))
        data = _content(rng, kind, size)
        # Nested folders and non-ASCII names travel as upload names and result paths too.
        folder = f"{prefix}/deep" if n % 3 == 0 else prefix
        suffix = "txt" if kind == "text" else "bin"
        files.append(ChaosFile(f"{folder}/{kind} {n:03d} ü.{suffix}", data))
    return files


def _content(rng: random.Random, kind: str, size: int) -> bytes:
    if kind == "noise":
        return rng.randbytes(size)
    if kind == "zeros":
        return bytes(size)
    text = bytearray()
    while len(text) < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 12)))
        text += line.encode() + b"\n"
    # Cut at a size in bytes: the last character may be split, so the file may not be UTF-8 —
    # one more case for the engine's looks_like_text, computed the same way on both sides.
    return bytes(text[:size])


def expected_result(path: Path, name: str) -> dict[str, object]:
    """What the reference engine (``size@1``) computes for the file, computed here in-process."""
    data = path.read_bytes()
    meta = FileMeta(upload_id="", name=name, size=len(data), sha256="")
    with path.open("rb") as stream:
        return analyze(stream, meta)
