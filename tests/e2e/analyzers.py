"""Analyzers that misbehave on purpose, for the end-to-end tests.

Each is run by a real ``fap engine --analyzer tests.e2e.analyzers:NAME``; they coordinate with the
test through files in the directory named by ``FAP_TEST_SIGNALS`` (the test's own tmp dir).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, BinaryIO

from fap.engine.reference import analyze as reference


def _signals() -> Path:
    return Path(os.environ["FAP_TEST_SIGNALS"])


def by_name(stream: BinaryIO, meta: Any) -> Any:
    """Crash the engine for ``crash-*``, raise for ``error-*``, else answer as the reference."""
    if meta.name.startswith("crash-"):
        os._exit(3)
    if meta.name.startswith("error-"):
        raise ValueError("this analyzer refuses files named error-*")
    return reference(stream, meta)


def first_byte_clock(stream: BinaryIO, meta: Any) -> Any:
    """Record when the first bytes arrived (and tell the test), then hash the rest."""
    digest = hashlib.sha256()
    first = stream.read(65536)
    first_byte_at = time.time()
    (_signals() / f"first-byte-{meta.upload_id}").write_text(str(first_byte_at))
    digest.update(first)
    total = len(first)
    while block := stream.read(1 << 20):
        digest.update(block)
        total += len(block)
    return {"bytes": total, "sha256": digest.hexdigest(), "first_byte_at": first_byte_at}


def blocks_forever(stream: BinaryIO, meta: Any) -> Any:
    """Read everything, say so, then never answer: the worker holding this job is killed."""
    while stream.read(1 << 20):
        pass
    (_signals() / f"started-{meta.upload_id}").write_text(str(os.getpid()))
    while True:
        time.sleep(1)


def counted(stream: BinaryIO, meta: Any) -> Any:
    """The reference analysis, and one line per analysis in a shared log, to count deliveries."""
    result = reference(stream, meta)
    with (_signals() / "analyses.log").open("a") as log:
        log.write(f"{meta.upload_id}\n")
    return result


def size_v2(stream: BinaryIO, meta: Any) -> Any:
    """``size@2``, a breaking release of the reference ``size@1``: the same facts in another shape
    (nested, renamed), so a test can tell which version analysed a file."""
    digest = hashlib.sha256()
    total = 0
    while block := stream.read(1 << 20):
        digest.update(block)
        total += len(block)
    return {"engine": "size@2", "size": {"bytes": total}, "digest": {"sha256": digest.hexdigest()}}
