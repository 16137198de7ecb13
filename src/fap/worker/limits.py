"""The limits an engine runs under, and the sentence that names the one it hit.

Each limit is the kernel's where the kernel has one; the worker only reads the kernel's figures
and stops the engine:

- memory: RLIMIT_AS, the address space of each of the engine's processes (also its largest file,
  RLIMIT_FSIZE, and the size of its private /tmp, whose files are memory too);
- CPU time: RLIMIT_CPU of the engine's process, set afresh before each job (``soft`` = what it
  used so far + the limit) where the kernel lets the worker (the same user; root with
  CAP_SYS_RESOURCE); and always the worker's own watch of the CPU time of the whole sandbox (every
  process in it), which stops the engine past the limit;
- processes: RLIMIT_NPROC, counted in the engine's own user namespace (see ``launch.py``);
- the result: the JSON answer is cut off past ``result_max_bytes``, never read whole;
- the job timeout: wall-clock seconds of the analysis, not counting waits for the uploader.

A job that hit a limit fails for good (:class:`LimitExceeded`): the same file would hit it again.
The job timeout alone is retried, as before: a machine that was busy may be less busy next time.
"""

from __future__ import annotations

from dataclasses import dataclass

from fap.config import WorkerSettings
from fap.errors import EngineError
from fap.sizes import format_size

__all__ = ("EngineLimits", "LimitExceeded", "Reading", "upper_first")

# Below the memory limit by this much (or a sixteenth of it), an engine's largest address space
# counts as having reached it: an allocation fails as soon as it would not fit, so the peak stops
# short of the limit by the size of the allocation that failed.
_MEMORY_MARGIN = 32 * 1024 * 1024
# The process count seen is a sample: within this many of the limit, the limit was reached.
_PROCESS_MARGIN = 2


def upper_first(text: str) -> str:
    """``text`` opening a sentence: str.capitalize would lower the rest ("MiB", "SIGKILL")."""
    return text[:1].upper() + text[1:]


class LimitExceeded(EngineError):
    """The engine hit one of its limits on this file; trying the file again would hit it again."""


@dataclass(frozen=True, slots=True)
class Reading:
    """The kernel's figures for an engine's sandbox at one moment."""

    cpu_seconds: float  # every process in it, with the children each reaped
    tasks: int  # threads of every process in it: what RLIMIT_NPROC counts
    vm_peak: int  # the engine process's largest address space, bytes
    rss_peak: int  # its peak resident memory since the last reset, bytes


@dataclass(frozen=True)
class EngineLimits:
    memory: int = 0  # bytes of address space per process; 0: none
    cpu_seconds: float = 0.0  # per job; 0: none
    processes: int = 0  # tasks in the sandbox; 0: none
    result_max_bytes: int = 0  # 0: none
    job_timeout: float = 3600.0

    @classmethod
    def of(cls, settings: WorkerSettings) -> EngineLimits:
        return cls(
            memory=settings.engine_memory,
            cpu_seconds=settings.engine_cpu_seconds,
            processes=settings.engine_max_processes,
            result_max_bytes=settings.result_max_bytes,
            job_timeout=settings.job_timeout,
        )

    @property
    def file_size(self) -> int:
        """The largest file the engine may write: no more than its memory (its /tmp is memory)."""
        return self.memory

    # -- the sentences: each says what the engine did, with the limit ---------------------------

    def memory_hit(self) -> str:
        return f"the engine exceeded its memory limit ({format_size(self.memory)})"

    def cpu_hit(self) -> str:
        return f"the engine exceeded its CPU time limit ({self.cpu_seconds:g} s)"

    def timeout_hit(self) -> str:
        return f"the engine ran past the job timeout ({self.job_timeout:g} s)"

    def result_hit(self) -> str:
        return (
            f"the engine answered more than the result limit ({format_size(self.result_max_bytes)})"
        )

    def processes_hit(self) -> str:
        return f"the engine tried to start more processes than allowed ({self.processes})"

    # -- which limit explains what happened ------------------------------------------------------

    def cpu_over(self, start: Reading, now: Reading, slack: float = 0.0) -> bool:
        used = now.cpu_seconds - start.cpu_seconds
        return bool(self.cpu_seconds) and used > self.cpu_seconds + slack

    def which(
        self, start: Reading | None, most: Reading | None, *, error: str = "", signal: str = ""
    ) -> str | None:
        """The limit a failed analysis hit, if one explains it: ``start`` is the sandbox when the
        job began, ``most`` the largest figures seen since; ``error`` the engine's own answer,
        ``signal`` the name of the signal that ended the engine, if one did.

        A sandbox full of processes comes first (a fork bomb soon runs out of CPU or memory
        too), then memory, then CPU.
        """
        if most is not None and self.processes and most.tasks >= self.processes - _PROCESS_MARGIN:
            return self.processes_hit()
        if self.memory and (self._memory_reached(start, most) or _says_out_of_memory(error)):
            return self.memory_hit()
        if self.cpu_seconds and (
            signal == "SIGXCPU"
            or (start is not None and most is not None and self.cpu_over(start, most))
        ):
            return self.cpu_hit()
        return None

    def _memory_reached(self, start: Reading | None, most: Reading | None) -> bool:
        if most is None:
            return False
        near = self.memory - max(_MEMORY_MARGIN, self.memory // 16)
        # Reached in this job: an engine whose peak was that high before it began (an earlier
        # job's) says nothing about this one.
        return most.vm_peak >= near and (start is None or start.vm_peak < near)


def _says_out_of_memory(error: str) -> bool:
    """The engine's error answer says an allocation failed (Python's MemoryError, C's ENOMEM)."""
    text = error.lower()
    return any(word in text for word in ("memoryerror", "cannot allocate memory", "out of memory"))
