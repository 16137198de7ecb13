"""Test analyzers, loaded by real ``fap engine`` processes with ``--analyzer tests.engines.analyzers:NAME``.

Markers (files under ``$FAP_TEST_MARKERS``) let a test see what happens inside the engine process.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import BinaryIO

from fap.engine import FileMeta

MARKERS_ENV = "FAP_TEST_MARKERS"


def _marker(meta: FileMeta, what: str) -> Path:
    return Path(os.environ[MARKERS_ENV]) / f"{meta.upload_id}.{what}"


def echo(stream: BinaryIO, meta: FileMeta) -> dict[str, object]:
    """What the engine was told and what it read, in small reads."""
    digest = hashlib.sha256()
    total = 0
    while block := stream.read(10_000):
        digest.update(block)
        total += len(block)
    return {
        "upload_id": meta.upload_id,
        "name": meta.name,
        "size": meta.size,
        "announced_sha256": meta.sha256,
        "read": total,
        "sha256": digest.hexdigest(),
    }


def environment(stream: BinaryIO, meta: FileMeta) -> dict[str, object]:
    """Which of the worker's variables the engine can see."""
    stream.read()
    return {name: name in os.environ for name in ("FAP_TOKEN", "FAP_ENGINE_SOCKET", MARKERS_ENV)}


def head_only(stream: BinaryIO, meta: FileMeta) -> dict[str, object]:
    """Reads four bytes and answers: an analyzer need not read everything."""
    return {"head": stream.read(4).hex()}


def fail(stream: BinaryIO, meta: FileMeta) -> object:
    stream.read(1)
    raise ValueError("this analyzer always fails\nand says more on a second line")


def not_json(stream: BinaryIO, meta: FileMeta) -> object:
    stream.read()
    return {"tags": {"a", "b"}}


def crash(stream: BinaryIO, meta: FileMeta) -> object:
    """Dies halfway through the file, as a segfault or an OOM kill would."""
    stream.read(max(1, meta.size // 2))
    os._exit(3)


def hang(stream: BinaryIO, meta: FileMeta) -> object:
    stream.read()
    _marker(meta, "hanging").touch()
    while True:
        time.sleep(1)


def record_first_byte(stream: BinaryIO, meta: FileMeta) -> dict[str, object]:
    """Notes when the first byte arrived, then reads the rest: shows streaming overlaps upload."""
    first = stream.read(1)
    _marker(meta, "first-byte").write_text(str(time.time()))
    rest = len(stream.read())
    return {"bytes": len(first) + rest}


def wait_for_release(stream: BinaryIO, meta: FileMeta) -> dict[str, object]:
    """Reads everything, then waits until the test creates the ``release`` marker."""
    total = len(stream.read())
    _marker(meta, "read").touch()
    while not _marker(meta, "release").exists():
        time.sleep(0.02)
    return {"bytes": total}


def by_name(stream: BinaryIO, meta: FileMeta) -> object:
    """Crashes on ``crash.*``, else waits for release like :func:`wait_for_release`."""
    if meta.name.startswith("crash."):
        return crash(stream, meta)
    return wait_for_release(stream, meta)
