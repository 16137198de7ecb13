"""The reference analyzer, ``size@1``: the file's size and checksum, and a few cheap statistics.

    bytes            the number of bytes
    sha256           lowercase hex SHA-256 of the bytes
    lines            lines of text: newline characters, plus one for a last line without one
    looks_like_text  valid UTF-8 without NUL bytes (an empty file counts as text)
    entropy          Shannon entropy of the byte values in bits per byte, 0 (one value) to 8
                     (uniform noise), rounded to 4 places; estimated from a sample, see below

Everything except the entropy runs in C at memory speed. Counting byte values in pure Python runs
at ~40 MB/s, so the histogram sees only the first ``SAMPLE`` bytes of every block read: exact for
files up to that size, a close estimate beyond, and never the engine's bottleneck.
"""

from __future__ import annotations

import codecs
import hashlib
import math
from collections import Counter
from typing import BinaryIO

from fap.engine.sdk import FileMeta

__all__ = ("analyze",)

BLOCK = 1024 * 1024
SAMPLE = 64 * 1024


def analyze(stream: BinaryIO, meta: FileMeta) -> dict[str, object]:
    total = 0
    newlines = 0
    last = b""
    digest = hashlib.sha256()
    histogram: Counter[int] = Counter()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    text = True
    while block := stream.read(BLOCK):
        total += len(block)
        digest.update(block)
        newlines += block.count(b"\n")
        last = block[-1:]
        histogram.update(block[:SAMPLE])
        if text:
            text = b"\0" not in block and _decodes(utf8, block, final=False)
    if text:
        text = _decodes(utf8, b"", final=True)
    lines = newlines + (1 if last not in (b"", b"\n") else 0)
    return {
        "bytes": total,
        "sha256": digest.hexdigest(),
        "lines": lines,
        "looks_like_text": text,
        "entropy": round(_entropy(histogram), 4),
    }


def _decodes(decoder: codecs.IncrementalDecoder, block: bytes, *, final: bool) -> bool:
    try:
        decoder.decode(block, final)
    except UnicodeDecodeError:
        return False
    return True


def _entropy(histogram: Counter[int]) -> float:
    count = sum(histogram.values())
    if not count:
        return 0.0
    entropy = -sum(n / count * math.log2(n / count) for n in histogram.values())
    return max(0.0, entropy)  # -0.0 for a single byte value reads oddly
