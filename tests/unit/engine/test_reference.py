"""The reference analyzer ``size@1``: size, checksum and cheap statistics of the bytes it reads."""

from __future__ import annotations

import hashlib
import io
import math
import os

from fap.engine import FileMeta
from fap.engine.reference import analyze


def _analyze(data: bytes) -> dict[str, object]:
    meta = FileMeta(
        upload_id="u", name="f", size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    return analyze(io.BufferedReader(io.BytesIO(data)), meta)


def test_empty_file() -> None:
    assert _analyze(b"") == {
        "bytes": 0,
        "sha256": hashlib.sha256(b"").hexdigest(),
        "lines": 0,
        "looks_like_text": True,
        "entropy": 0.0,
    }


def test_text_counts_lines_with_or_without_a_final_newline() -> None:
    assert _analyze(b"one\ntwo\n")["lines"] == 2
    assert _analyze(b"one\ntwo")["lines"] == 2
    assert _analyze(b"\n")["lines"] == 1


def test_hello_has_the_numbers_the_protocol_document_shows() -> None:
    result = _analyze(b"hello\n")
    assert result["bytes"] == 6
    assert result["sha256"] == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    assert result["lines"] == 1
    assert result["looks_like_text"] is True
    # h, e, o, \n once each and l twice: -(4 * 1/6 log2 1/6 + 2/6 log2 2/6)
    assert result["entropy"] == round(-(4 / 6 * math.log2(1 / 6) + 2 / 6 * math.log2(2 / 6)), 4)


def test_utf8_text_is_text_even_when_a_character_spans_blocks() -> None:
    # 1 MiB blocks: put a two-byte character across the first block boundary.
    data = b"a" * (1024 * 1024 - 1) + "é".encode() + b"\n"
    result = _analyze(data)
    assert result["looks_like_text"] is True
    assert result["bytes"] == len(data)


def test_binary_is_not_text_and_has_high_entropy() -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    result = _analyze(data)
    assert result["looks_like_text"] is False
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert result["bytes"] == len(data)
    assert 7.9 < float(result["entropy"]) <= 8.0  # type: ignore[arg-type]


def test_a_nul_byte_or_invalid_utf8_is_not_text() -> None:
    assert _analyze(b"abc\0def")["looks_like_text"] is False
    assert _analyze(b"abc\xff")["looks_like_text"] is False
    assert _analyze(b"truncated \xc3")["looks_like_text"] is False


def test_one_repeated_byte_has_zero_entropy() -> None:
    assert _analyze(b"x" * 1000)["entropy"] == 0.0
