"""What an engine uses, from the kernel's own figures, and one job's watch over its engine.

Everything comes from ``/proc``, which the engine cannot write: CPU time (``stat``: user and system
time of every process of the engine's sandbox, with the time of the children each reaped), the
number of threads (what RLIMIT_NPROC counts), and the engine process's peak address space
(``VmPeak``) and peak resident memory (``VmHWM``, reset at the start of each job through
``clear_refs`` where the kernel lets the worker; otherwise the engine's peak since it started).

The engine is long-lived and serves many jobs, so a job's figures are differences: the watch reads
the sandbox when the job begins, every half second while it runs, and at its end. An engine that
dies takes its last half second with it; its figures are the last ones read.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from fap.api.messages import EngineUsage
from fap.worker.limits import EngineLimits, Reading

__all__ = ("JobWatch", "Tracked", "children_of", "read_sandbox")

# Often enough that an engine past its CPU limit is stopped within a fraction of a second per
# thread it runs; rarely enough that reading /proc costs nothing next to an analysis.
SAMPLE_SECONDS = 0.5
# CPU seconds past the limit before the watch stops an engine that the kernel should have stopped.
_KERNEL_FIRST = 2.0
_KiB = 1024


@dataclass
class Tracked:
    """The processes of one engine: ``root`` heads its sandbox (bubblewrap's init, or the engine
    itself without bubblewrap), ``engine`` is the engine's own process."""

    root: int
    engine: int
    # Whether the kernel lets the worker set this engine's RLIMIT_CPU; None until tried.
    cpu_rlimit: bool | None = None


_PROC = Path("/proc")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and parens)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def children_of(pid: int) -> list[int]:
    """The children of every thread of ``pid`` (a thread that forks is their parent)."""
    found: list[int] = []
    try:
        tasks = list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _peaks(pid: int) -> tuple[int, int]:
    """VmPeak and VmHWM of ``pid``, in bytes (0 when gone)."""
    vm_peak = rss_peak = 0
    with contextlib.suppress(OSError):
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmPeak:"):
                vm_peak = int(line.split()[1]) * _KiB
            elif line.startswith("VmHWM:"):
                rss_peak = int(line.split()[1]) * _KiB
    return vm_peak, rss_peak


def read_sandbox(tracked: Tracked) -> Reading | None:
    """The sandbox's figures now; None once its root process is gone."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = tasks = 0
    seen: set[int] = set()
    pending = [tracked.root]
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        fields = _stat(pid)
        if fields is None:
            if pid == tracked.root:
                return None
            continue  # ended meanwhile: what it used is in its parent's children's time
        # utime, stime, cutime, cstime (fields 14-17 of stat(5)), then num_threads (20).
        cpu += sum(int(field) for field in fields[11:15])
        tasks += int(fields[17])
        pending += children_of(pid)
    vm_peak, rss_peak = _peaks(tracked.engine)
    return Reading(cpu / ticks, tasks, vm_peak, rss_peak)


def _reset_peak(pid: int) -> None:
    """Start the engine's VmHWM afresh (clear_refs "5"); harmless where the kernel says no."""
    with contextlib.suppress(OSError):
        (_PROC / str(pid) / "clear_refs").write_text("5")


def _own_cpu(pid: int) -> float | None:
    fields = _stat(pid)
    return (
        None if fields is None else (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    )


def _set_cpu_limit(pid: int, seconds: float) -> bool:
    """RLIMIT_CPU of the engine's process: what it used so far plus ``seconds``, so that the
    kernel ends it (SIGXCPU) when this job took that much. False where the kernel says no (the
    engine runs as another user, and the worker has no CAP_SYS_RESOURCE)."""
    used = _own_cpu(pid)
    if used is None:
        return True  # gone: nothing to say about the next one
    soft = math.ceil(used + seconds)
    try:
        _, hard = resource.prlimit(pid, resource.RLIMIT_CPU)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.prlimit(pid, resource.RLIMIT_CPU, (soft, hard))
    except PermissionError:
        return False
    except ProcessLookupError:
        pass
    return True


def _lift_cpu_limit(pid: int) -> None:
    """Between jobs the engine's CPU time is nobody's limit: its soft RLIMIT_CPU back at the hard
    one (which only root could raise), so that an engine idling for days is not ended for it."""
    with contextlib.suppress(OSError):
        _, hard = resource.prlimit(pid, resource.RLIMIT_CPU)
        resource.prlimit(pid, resource.RLIMIT_CPU, (hard, hard))


def _most(a: Reading, b: Reading) -> Reading:
    return Reading(
        cpu_seconds=max(a.cpu_seconds, b.cpu_seconds),
        tasks=max(a.tasks, b.tasks),
        vm_peak=max(a.vm_peak, b.vm_peak),
        rss_peak=max(a.rss_peak, b.rss_peak),
    )


class JobWatch:
    """One job's view of its engine: the figures at its start, the largest seen since, the last."""

    def __init__(self, tracked: Tracked | None, limits: EngineLimits, executor: Executor) -> None:
        self._tracked = tracked
        self._limits = limits
        self._executor = executor
        self._start: Reading | None = None
        self._most: Reading | None = None
        self._began = time.monotonic()
        self._ended: float | None = None
        self.cpu_stopped = False  # the watch stopped the engine for its CPU time

    async def _read(self) -> Reading | None:
        if self._tracked is None:
            return None
        loop = asyncio.get_running_loop()
        reading = await loop.run_in_executor(self._executor, read_sandbox, self._tracked)
        if reading is not None:
            self._most = reading if self._most is None else _most(self._most, reading)
        return reading

    async def begin(self) -> None:
        """Read the sandbox, start the engine's peak memory afresh, give it this job's CPU time."""
        tracked = self._tracked
        if tracked is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, _reset_peak, tracked.engine)
            if self._limits.cpu_seconds and tracked.cpu_rlimit is not False:
                tracked.cpu_rlimit = await loop.run_in_executor(
                    self._executor, _set_cpu_limit, tracked.engine, self._limits.cpu_seconds
                )
        self._start = await self._read()
        self._most = self._start
        self._began = time.monotonic()

    @contextlib.asynccontextmanager
    async def watching(self, stop: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
        """While the block runs, read the sandbox every SAMPLE_SECONDS; past the CPU limit, call
        ``stop`` (which ends the engine, and so the block's analysis) once."""
        sampler = asyncio.create_task(self._sample(stop), name="engine-watch")
        try:
            yield
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler

    async def _sample(self, stop: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            reading = await self._read()
            if reading is None:
                return  # the engine is gone; its supervisor says why
            # Where the kernel holds the engine to RLIMIT_CPU, it is given the first go: the watch
            # steps in only if it did not (the soft limit is rounded up to whole seconds, and an
            # engine may catch SIGXCPU).
            slack = _KERNEL_FIRST if self._tracked and self._tracked.cpu_rlimit else 0.0
            if self._start is not None and self._limits.cpu_over(self._start, reading, slack):
                self.cpu_stopped = True
                await stop()
                return

    async def end(self) -> None:
        """The last figures of the job (the engine's last ones, if it is gone)."""
        if self._ended is None:
            self._ended = time.monotonic()
            alive = await self._read() is not None  # else its pid may be another's by now
            tracked = self._tracked
            if alive and tracked is not None and tracked.cpu_rlimit:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, _lift_cpu_limit, tracked.engine)

    async def verdict(self, *, error: str = "", signal: str = "") -> str | None:
        """The limit that explains a failure, read with the sandbox as it is now (if it is)."""
        await self._read()
        if self.cpu_stopped:
            return self._limits.cpu_hit()
        return self._limits.which(self._start, self._most, error=error, signal=signal)

    def usage(self) -> EngineUsage:
        ended = self._ended if self._ended is not None else time.monotonic()
        # The most seen, not the last: CPU time only grows, but a sandbox read as it dies has
        # lost the processes that used it.
        start, most = self._start, self._most
        cpu = most.cpu_seconds - start.cpu_seconds if start and most else 0.0
        return EngineUsage(
            cpu_seconds=round(max(0.0, cpu), 3),
            peak_memory_bytes=most.rss_peak if most else 0,
            wall_seconds=round(ended - self._began, 3),
        )
