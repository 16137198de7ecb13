"""Files of every awkward size and name come back with correct results, readable only as ciphertext."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Pipeline, server_log_tail

MiB = 1024 * 1024
CHUNK = 8 * MiB


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _compressible_text(size: int) -> bytes:
    line = b"2026-11-30T00:00:00Z INFO request served path=/v1/uploads status=200 ms=12\n"
    return (line * (size // len(line) + 1))[:size]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("corpus")
    return [
        _write(folder / "empty.bin", b""),
        _write(folder / "one-byte.bin", b"x"),
        _write(folder / "exactly one chunk.bin", os.urandom(CHUNK)),
        _write(folder / "one chunk plus one.bin", os.urandom(CHUNK + 1)),
        _write(folder / "random-100MiB.bin", os.urandom(100 * MiB)),
        _write(folder / "text-60MiB.log", _compressible_text(60 * MiB)),
        _write(folder / "résumé – Grüße 東京.txt", "naïve façade, 東京\n".encode() * 1000),
    ]


def test_every_file_gets_its_own_correct_result(pipeline: Pipeline, corpus: list[Path]) -> None:
    pipeline.start_worker()
    results = pipeline.tmp / "results"

    lines = pipeline.upload(*map(str, corpus), "--results", str(results))

    assert [line["status"] for line in lines] == ["done"] * len(corpus), server_log_tail(pipeline)
    by_file = {Path(line["file"]).name: line for line in lines}
    for path in corpus:
        line = by_file[path.name]
        result = json.loads(Path(line["result_path"]).read_text())
        assert Path(line["result_path"]) == results / f"{path.name}.result.json"
        assert result["bytes"] == path.stat().st_size
        assert result["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_results_open_with_the_standard_age_tool(pipeline: Pipeline, tmp_path: Path) -> None:
    age = shutil.which("age")
    assert age, "the age tool is installed by `make install` (scripts/install-system-deps.sh)"
    pipeline.start_worker()
    original = _write(tmp_path / "for age.txt", b"sealed for the uploader alone\n")
    [line] = pipeline.upload(str(original), "--results", str(tmp_path / "results"))
    assert line["status"] == "done"

    identity = tmp_path / "identity.txt"
    exported = pipeline.fap("keys", "export")
    assert exported.returncode == 0, exported.stderr
    identity.write_text(exported.stdout)
    sealed = pipeline.fap_bytes("results", "get", line["upload_id"], "--raw")
    assert sealed.returncode == 0
    assert sealed.stdout.startswith(b"age-encryption.org/v1")
    opened = subprocess.run(
        [age, "-d", "-i", str(identity)], input=sealed.stdout, capture_output=True, check=True
    )
    result = json.loads(opened.stdout)
    assert result["sha256"] == hashlib.sha256(original.read_bytes()).hexdigest()


def test_server_keeps_only_ciphertext_results(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.start_worker()
    original = _write(tmp_path / "secret.txt", b"the quarterly numbers\n" * 100)
    [line] = pipeline.upload(str(original), "--results", str(tmp_path / "results"))
    assert line["status"] == "done"
    plaintext = Path(line["result_path"]).read_bytes()
    result = json.loads(plaintext)

    # What an analysis produced (not what the client sent: name, size and hash are upload metadata)
    # must appear nowhere the server keeps anything — database, WAL and blobs alike.
    produced = [
        plaintext.strip(),
        json.dumps(result).encode(),
        json.dumps(result, separators=(",", ":")).encode(),
    ]
    if "entropy" in result:
        produced.append(f'"entropy":{json.dumps(result["entropy"])}'.encode())
    stored = dict(pipeline.stored())
    assert stored
    for where, content in stored.items():
        for needle in produced:
            # Raw, or as a dump shows a bytea column: hex.
            assert needle not in content, f"plaintext result found in {where}"
            assert needle.hex().encode() not in content, f"plaintext result found in {where}"
    # A result this small came with its job's completion: the server keeps it in its database,
    # as age ciphertext, and stores no blob of it.
    assert not [where for where in stored if where.endswith("result.age")]
    header = b"age-encryption.org/v1"
    assert any(header in got or header.hex().encode() in got for got in stored.values())
