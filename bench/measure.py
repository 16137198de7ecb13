"""One measured run of a command: wall time, CPU seconds and peak memory of its whole tree.

The figures come from the kernel, not from sampling: ``os.wait4`` answers the child's resource
usage including every descendant it waited for (a shell pipeline's stages, a tool's helpers), so
``ru_utime + ru_stime`` is the CPU the command cost and ``ru_maxrss`` the resident peak of its
largest process (the kernel keeps a maximum, not a sum). The wait happens in a tiny helper
(rusage_child.py says why), which also times the command from its spawn to its exit.

A command that fails, or outlives its timeout, is a failed run with the last line it wrote on
stderr: the benchmark reports it as such and never puts a number in its place.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ("Run", "run_measured")

# Lines kept of each stream: every line of a 5,000-file upload (fap's JSON line per file is how
# its outcome is counted), bounded so that a chatty tool cannot fill memory.
_KEPT_LINES = 20_000
_HELPER = Path(__file__).with_name("rusage_child.py")


@dataclass
class Run:
    """What one execution of a command cost, and whether it did its job."""

    ok: bool
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    error: str | None = None
    # (seconds since start, line) of stderr, for tools whose progress lines mark events.
    stderr_lines: list[tuple[float, str]] = field(default_factory=list)
    stdout_lines: list[tuple[float, str]] = field(default_factory=list)

    def first_line_at(self, prefix: str) -> float | None:
        """Seconds after the start at which a stderr line starting with ``prefix`` came."""
        for at, line in self.stderr_lines:
            if line.startswith(prefix):
                return at
        return None


def _drain(stream: IO[bytes], started: float, into: list[tuple[float, str]]) -> None:
    # Each line is stamped when it is read: the pipe is read as fast as the tool writes, so the
    # stamp is when the tool said it (within a scheduler tick).
    for raw in stream:
        line = raw.decode(errors="replace").rstrip()
        if line:
            into.append((time.perf_counter() - started, line))
            if len(into) > _KEPT_LINES:
                del into[: _KEPT_LINES // 2]


def _last_line(lines: list[tuple[float, str]]) -> str:
    return lines[-1][1][:300] if lines else "no output"


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    cwd: Path | None = None,
) -> Run:
    """Run ``argv`` to its end (or its timeout) and answer what it cost.

    The command runs in a session of its own, so that a timeout kills its whole tree.
    """
    report_read, report_write = os.pipe()
    started = time.perf_counter()
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(_HELPER), str(report_write), *argv],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=(report_write,),
        )
    except OSError as error:
        os.close(report_read)
        return Run(ok=False, wall_s=0.0, cpu_s=0.0, peak_rss_bytes=0, error=str(error))
    finally:
        os.close(report_write)
    assert process.stdout is not None and process.stderr is not None
    stderr: list[tuple[float, str]] = []
    stdout: list[tuple[float, str]] = []
    readers = [
        threading.Thread(target=_drain, args=(process.stderr, started, stderr), daemon=True),
        threading.Thread(target=_drain, args=(process.stdout, started, stdout), daemon=True),
    ]
    for reader in readers:
        reader.start()
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        process.wait()
    finally:
        timer.cancel()
    outer_wall = time.perf_counter() - started
    # Whatever the command left running in its session goes too (a stray helper process).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for reader in readers:
        reader.join(5.0)
    process.stdout.close()
    process.stderr.close()
    with os.fdopen(report_read, "rb") as report_pipe:
        report = report_pipe.read().decode(errors="replace").split()
    if timed_out.is_set():
        return Run(
            ok=False,
            wall_s=outer_wall,
            cpu_s=0.0,
            peak_rss_bytes=0,
            error=f"timed out after {timeout:.0f} s (last line: {_last_line(stderr)})",
            stderr_lines=stderr,
            stdout_lines=stdout,
        )
    if len(report) != 5 or report[0] == "spawn-error":
        return Run(
            ok=False,
            wall_s=outer_wall,
            cpu_s=0.0,
            peak_rss_bytes=0,
            error=f"could not start: {' '.join(report[1:]) or 'no report from the helper'}",
        )
    wall, utime, stime, maxrss_kib, code = report
    error: str | None = None
    if int(code) != 0:
        error = f"exit {code}: {_last_line(stderr or stdout)}"
    return Run(
        ok=error is None,
        wall_s=float(wall),
        cpu_s=float(utime) + float(stime),
        peak_rss_bytes=int(maxrss_kib) * 1024,  # Linux counts KiB
        error=error,
        stderr_lines=stderr,
        stdout_lines=stdout,
    )
