"""``fap upload`` as the benchmark runs it, and what its output says about the run.

``--json`` prints one line per file when it is finished (its upload id, its state, the stored
bytes it sent); the plain ``uploaded FILE as ID`` line on stderr comes the moment a file is
stored, which is how the round trip's upload time is read from the same run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tests.support.processes import fap_argv

from bench.budget import Budget
from bench.measure import Run, run_measured
from bench.results import Sample

__all__ = ("fap_upload", "outcomes")

UPLOADED_LINE = "uploaded "


def outcomes(run: Run) -> list[dict[str, object]]:
    """The JSON lines ``fap upload --json`` printed, one per file."""
    found = []
    for _, line in run.stdout_lines:
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


def fap_upload(
    files: Sequence[Path],
    *,
    env: dict[str, str],
    budget: Budget,
    wait: bool,
    results: Path,
    timeout: float,
    extra: Sequence[str] = (),
) -> tuple[Run, Sample]:
    """One ``fap upload`` of ``files``: upload only (``wait=False``: durable in the store) or the
    round trip (every result back and decrypted). A run is good only if every file made it."""
    argv = fap_argv(
        "upload",
        "--json",
        "--results",
        str(results),
        *(() if wait else ("--no-wait",)),
        *extra,
        *map(str, files),
    )
    run = run_measured(argv, env=env, timeout=budget.timeout(timeout))
    wanted = "done" if wait else "uploaded"
    lines = outcomes(run)
    good = sum(1 for line in lines if line.get("status") == wanted)
    error = None
    if run.ok and good != len(files):
        error = f"{good} of {len(files)} files {wanted}"
    sent = sum(int(str(line.get("bytes_sent") or 0)) for line in lines)
    extra_figures: dict[str, float] = {}
    uploaded_at = run.first_line_at(UPLOADED_LINE)
    if len(files) == 1 and uploaded_at is not None:
        extra_figures["uploaded_at_s"] = uploaded_at
    sample = Sample.of(run, error, **extra_figures)
    sample.stored_bytes = sent or None
    return run, sample
