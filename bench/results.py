"""What a measurement yields, in the shape the JSON keeps: every run's figures, and the best and
the median of those that succeeded. Failed runs stay in the record with their error; a series
with no successful run has no figures at all (``None``), never a made-up one.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.data import MiB
from bench.measure import Run

__all__ = ("MB", "Sample", "Series", "summarize")

MB = 1_000_000  # throughputs are in MB/s (10^6 bytes), as link rates are counted


@dataclass
class Sample:
    """One run of one tool: the kernel's figures, and what the store holds afterwards."""

    ok: bool
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    error: str | None = None
    stored_bytes: int | None = None  # what landed in the bucket (compressed, for compressors)
    extra: dict[str, float] = field(default_factory=dict)  # e.g. the round trip's upload time

    @classmethod
    def of(cls, run: Run, error: str | None = None, **extra: float) -> Sample:
        return cls(
            ok=run.ok and error is None,
            wall_s=round(run.wall_s, 3),
            cpu_s=round(run.cpu_s, 3),
            peak_rss_mib=round(run.peak_rss_bytes / MiB, 1),
            error=run.error or error,
            extra={key: round(value, 3) for key, value in extra.items()},
        )


@dataclass
class Series:
    """Repeated runs of one tool on one input: a row of the report."""

    section: str  # "transfer", "small-files", "memory", "latency", ...
    tool: str
    link: str
    kind: str  # "text", "random", "small", ...
    mode: str  # "upload" (file on disk -> durable in the store) or "round-trip"
    input_bytes: int
    files: int = 1
    samples: list[Sample] = field(default_factory=list)

    @property
    def good(self) -> list[Sample]:
        return [sample for sample in self.samples if sample.ok]

    def best_wall(self) -> float | None:
        return min((sample.wall_s for sample in self.good), default=None)

    def median_wall(self) -> float | None:
        walls = [sample.wall_s for sample in self.good]
        return statistics.median(walls) if walls else None

    def best_mb_s(self) -> float | None:
        best = self.best_wall()
        return self.input_bytes / MB / best if best else None

    def median_mb_s(self) -> float | None:
        median = self.median_wall()
        return self.input_bytes / MB / median if median else None

    def best_files_s(self) -> float | None:
        best = self.best_wall()
        return self.files / best if best else None

    def median_files_s(self) -> float | None:
        median = self.median_wall()
        return self.files / median if median else None

    def last_error(self) -> str | None:
        errors = [sample.error for sample in self.samples if sample.error]
        return errors[-1] if errors else None

    def to_dict(self) -> dict[str, Any]:
        good = self.good
        return {
            **{key: value for key, value in asdict(self).items() if key != "samples"},
            "samples": [asdict(sample) for sample in self.samples],
            "runs": len(self.samples),
            "failed_runs": len(self.samples) - len(good),
            **summarize(self),
        }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def summarize(series: Series) -> dict[str, Any]:
    """The figures the report and the targets read; None where no run succeeded."""
    good = series.good
    return {
        "best_wall_s": _round(series.best_wall(), 3),
        "median_wall_s": _round(series.median_wall(), 3),
        "best_mb_s": _round(series.best_mb_s()),
        "median_mb_s": _round(series.median_mb_s()),
        "best_files_s": _round(series.best_files_s(), 1) if series.files > 1 else None,
        "median_files_s": _round(series.median_files_s(), 1) if series.files > 1 else None,
        "median_cpu_s": _round(statistics.median([s.cpu_s for s in good]) if good else None),
        "max_peak_rss_mib": max((s.peak_rss_mib for s in good), default=None),
        "error": None if good else series.last_error(),
    }
