"""What the tests' analyzers need from the engine sandbox of a real ``fap work``.

A sandboxed engine sees nothing of the worker's files or environment, so a worker that runs the
tests' own analyzers (``tests.e2e.analyzers``, ``tests.engines.analyzers``) shows it their code
read-only and puts it on their PYTHONPATH, as an operator would with an analyzer of theirs; and
the directory where those analyzers leave signals for the test is bound read-write, with
``--engine-device`` (a read-write bind: the one way into the sandbox that is not read-only),
open to all, since a worker that runs as root runs its engines as nobody.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ("engine_flags",)


def engine_flags(
    code: Path, *, writable: Path | None = None, env: Mapping[str, str] | None = None
) -> list[str]:
    """``fap work`` options that let an engine import from ``code`` and write to ``writable``,
    with ``env`` in its environment."""
    flags = ["--engine-mount", str(code), "--engine-env", f"PYTHONPATH={code}"]
    if writable is not None:
        writable.chmod(0o777)
        flags += ["--engine-device", str(writable)]
    for key, value in (env or {}).items():
        flags += ["--engine-env", f"{key}={value}"]
    return flags
