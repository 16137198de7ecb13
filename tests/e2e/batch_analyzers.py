"""An analyzer for the ``fap upload --fail-fast`` tests, run by a real ``fap engine``.

It coordinates with the test through the directory named by ``FAP_TEST_SIGNALS``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, BinaryIO

from fap.engine.reference import analyze as reference


def fails_or_holds(stream: BinaryIO, meta: Any) -> Any:
    """Raise for ``error-*``; hold every other file until the test writes ``release``, so that
    no other result can come before the failure does."""
    if meta.name.startswith("error-"):
        raise ValueError("this analyzer refuses files named error-*")
    release = Path(os.environ["FAP_TEST_SIGNALS"]) / "release"
    while not release.exists():
        time.sleep(0.1)
    return reference(stream, meta)
