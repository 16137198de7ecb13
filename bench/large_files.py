"""fap with big files: the client's peak memory on a 1 GiB file (it must stay flat in the file's
size), the round trip of a 512 MiB text file on the desktop link (the result should be back
soon after the last byte is stored: processing overlaps the upload), and ``--bwlimit``.
"""

from __future__ import annotations

from pathlib import Path

from bench.budget import Budget
from bench.data import Corpus
from bench.fap_client import fap_upload
from bench.results import Series

__all__ = ("measure_memory", "measure_rate_limit", "measure_round_trip")

_LARGE_TIMEOUT = 300.0


def measure_memory(
    corpus: Corpus, *, kind: str, size: int, env: dict[str, str], budget: Budget, scratch: Path
) -> Series:
    """One ``fap upload --no-wait`` of ``size`` bytes of ``kind``: its peak RSS above all."""
    path = corpus.write(kind, 900, size=size)
    series = Series("memory", "fap upload --no-wait", "loopback", kind, "upload", size)
    try:
        _, sample = fap_upload(
            [path], env=env, budget=budget, wait=False, results=scratch, timeout=_LARGE_TIMEOUT
        )
        series.samples.append(sample)
    finally:
        path.unlink()
    return series


def measure_round_trip(
    corpus: Corpus, *, link: str, size: int, env: dict[str, str], budget: Budget, scratch: Path
) -> Series:
    """One ``fap upload`` of ``size`` bytes of text through to its decrypted result; the same
    run's "uploaded" line gives the upload time it is compared with."""
    path = corpus.write("text", 800, size=size)
    series = Series("latency", "fap upload (round trip)", link, "text", "round-trip", size)
    try:
        _, sample = fap_upload(
            [path], env=env, budget=budget, wait=True, results=scratch, timeout=_LARGE_TIMEOUT
        )
        if sample.ok and "uploaded_at_s" not in sample.extra:
            sample.error = "fap printed no 'uploaded' line: the upload time is unknown"
        series.samples.append(sample)
    finally:
        path.unlink()
    return series


def measure_rate_limit(
    corpus: Corpus,
    *,
    limit: int,
    sizes: tuple[int, int],
    env: dict[str, str],
    budget: Budget,
    scratch: Path,
) -> dict[str, object]:
    """``fap upload --bwlimit LIMIT`` of two sizes of random bytes: the rate is the slope between
    them (extra bytes over extra seconds), so that the fixed cost of a start does not count."""
    walls = []
    for index, size in enumerate(sizes):
        path = corpus.write("random", 700 + index, size=size)
        try:
            _, sample = fap_upload(
                [path],
                env=env,
                budget=budget,
                wait=False,
                results=scratch,
                timeout=_LARGE_TIMEOUT,
                extra=("--bwlimit", str(limit)),
            )
        finally:
            path.unlink()
        if not sample.ok:
            return {"limit_bytes_s": limit, "sizes": list(sizes), "error": sample.error}
        walls.append(sample.wall_s)
    extra_seconds = walls[1] - walls[0]
    observed = (sizes[1] - sizes[0]) / extra_seconds if extra_seconds > 0 else None
    return {
        "limit_bytes_s": limit,
        "sizes": list(sizes),
        "wall_s": walls,
        "observed_bytes_s": None if observed is None else round(observed),
        "ratio": None if observed is None else round(observed / limit, 3),
        "error": None if observed else "the larger upload was not slower: no rate to read",
    }
