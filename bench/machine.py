"""What the numbers were measured on: the report is meaningless without it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import fap

__all__ = ("describe_machine",)

_REPO = Path(__file__).resolve().parents[1]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=_REPO, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def describe_machine() -> dict[str, object]:
    # A run measures the working tree, which may differ from the commit: say so.
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "src"))
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "fap_version": fap.__version__,
        "git_commit": _git("rev-parse", "--short", "HEAD") or "unknown",
        "src_modified": dirty,
        # Others' work on the machine is the main source of noise: the report shows it.
        "load_start": round(os.getloadavg()[0], 2),
    }
