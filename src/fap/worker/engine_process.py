"""The worker's engine process: started, watched, restarted when it dies, always stopped.

Without a sandbox (``sandbox=None``: the tests of the engine's lifecycle) or with rlimits alone,
the engine stays in the worker's process group, so whatever signals the group signals both: a
Ctrl-C in the terminal (or a service manager's SIGTERM) makes the worker drain its jobs while the
engine, likewise, finishes the analyses in flight before it exits; killing the group kills both.
Under bubblewrap the engine has a session of its own (``--new-session``: nothing it does reaches
the worker's terminal), and so has bubblewrap: a Ctrl-C reaches the worker alone, which drains its
jobs and then stops the engine. A draining worker does not restart an engine that exits.

Stopping an engine is terminate, wait, kill: SIGTERM to the engine's own process (inside the
sandbox: bubblewrap passes no signal on), then SIGKILL to the sandbox, whose processes all die
with it (a PID namespace). An engine that hit one of its limits is killed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from fap.backoff import Backoff
from fap.engine.protocol import INFO, SOCKET_ENV
from fap.errors import EngineError
from fap.worker.engine_client import EngineClient, EngineInfo
from fap.worker.limits import upper_first
from fap.worker.sandbox import Sandbox
from fap.worker.usage import Tracked, children_of

__all__ = ("EngineProcess", "describe_exit", "start_engines")

logger = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # an engine may load models before it answers; a hung start is still caught
STOP_TIMEOUT = 10.0
# Between restarts of an engine that keeps dying soon after it started.
RESTART_BACKOFF = Backoff(first=0.5, cap=30.0, jitter=False)
# An engine that ran this long before dying was healthy: its restart starts the backoff afresh.
HEALTHY_UPTIME = 60.0
_SHORT_TMP = "/tmp"  # noqa: S108 - only a base: mkdtemp makes a fresh private directory in it
_LONG_TMPDIR = 48
_WITHHELD = frozenset({"FAP_TOKEN"})
_SIGNALLED = 128  # bubblewrap's exit status for a command a signal ended: 128 + its number


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"the engine crashed (killed by {_signal_name(-returncode)})"
    if returncode == 0:
        return "the engine exited unexpectedly (exit code 0)"
    return f"the engine crashed (exit code {returncode})"


class EngineProcess:
    def __init__(
        self,
        command: Sequence[str],
        *,
        label: str = "",
        start_timeout: float = START_TIMEOUT,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.command = list(command)
        self.label = label  # which of the worker's engines this is, for the log
        self.start_timeout = start_timeout
        self.sandbox = sandbox
        self._dir: Path | None = None
        self._client: EngineClient | None = None
        self.name = ""
        self.generation = 0
        self._process: asyncio.subprocess.Process | None = None
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        self._tracked: dict[int, Tracked] = {}
        self._restart_reasons: dict[int, str] = {}
        self._ready = asyncio.Event()
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        # The jobs of a slot overlap (one in the engine, the next waiting, the last delivering),
        # but an engine sees one file at a time: a job holds its turn from the engine's readiness
        # to the end of its analysis, so what the engine used is that job's alone.
        self.turn = asyncio.Lock()

    async def __aenter__(self) -> EngineProcess:
        await self.start()
        return self

    async def start(self) -> None:
        """Start the engine and wait until it answers; from then on, restart it when it dies."""
        self._dir = _private_dir()
        # One analysis at a time, and a readiness check; answers no larger than the result limit.
        cap = self.sandbox.limits.result_max_bytes if self.sandbox is not None else 0
        self._client = EngineClient(self.socket_path, max_connections=2, max_answer=cap)
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="engine-supervisor")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def socket_path(self) -> Path:
        assert self._dir is not None, "the engine was never started"
        return self._dir / "engine.sock"

    @property
    def client(self) -> EngineClient:
        assert self._client is not None, "the engine was never started"
        return self._client

    @property
    def _for(self) -> str:
        return f" for {self.label}" if self.label else ""

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self) -> int:
        """Wait until an engine answers; answer its generation (which process it is)."""
        await self._ready.wait()
        return self.generation

    async def exit_reason(self, generation: int, wait: float = 2.0) -> str | None:
        """Why the engine of ``generation`` is gone, waiting up to ``wait`` s for it to exit;
        None while it still runs. A dying engine closes its sockets just before it is reaped."""
        process = self._processes.get(generation)
        if process is None:
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), wait)
        if process.returncode is None:
            return None
        return self._restart_reasons.get(generation) or self._describe(process.returncode)

    def exit_signal(self, generation: int) -> str | None:
        """The name of the signal that ended the engine of ``generation``, if one did."""
        process = self._processes.get(generation)
        if process is None or process.returncode is None:
            return None
        signum = self._signal_of(process.returncode)
        return None if signum is None else _signal_name(signum)

    def tracked(self, generation: int) -> Tracked | None:
        """The processes of the engine of ``generation``, for the kernel's figures of them."""
        return self._tracked.get(generation)

    async def restart(self, generation: int, reason: str, *, at_once: bool = False) -> None:
        """Stop the engine of ``generation`` (if it still runs); the supervisor starts another.
        ``at_once``: killed, not asked to finish (it hit a limit: there is nothing to finish)."""
        process = self._processes.get(generation)
        if process is None or process.returncode is not None:
            return
        self._restart_reasons[generation] = reason
        logger.warning("Restarting the engine%s: %s.", self._for, reason)
        tracked = self._tracked.get(generation)
        if at_once:
            _kill(process, tracked, isolated=self._isolated)
            await process.wait()
        else:
            await _terminate(process, STOP_TIMEOUT, tracked, isolated=self._isolated)

    def retire(self) -> None:
        """The worker is draining: should the engine exit now, it stays down."""
        self._stopping = True

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the engine for good: terminate, wait, kill; remove its socket directory."""
        self._stopping = True
        self._ready.clear()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._process is not None:
            tracked = self._tracked.get(self.generation)
            await _terminate(self._process, timeout, tracked, isolated=self._isolated)
        if self._client is not None:
            await self._client.aclose()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    async def _start(self) -> None:
        """Start one engine process and wait until it answers ``GET /v1/info``."""
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # left behind by an engine that was killed
        argv, env = self._command_line()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
                # bubblewrap in a session of its own: a Ctrl-C meant for the worker must not kill
                # it, and the engine with it, while the worker drains its jobs.
                start_new_session=self._isolated,
            )
        except OSError as error:
            raise EngineError(
                f"The engine command {' '.join(self.command)!r} cannot be started: {error}."
            ) from error
        self.generation += 1
        self._process = process
        self._processes[self.generation] = process
        self._processes.pop(self.generation - 10, None)
        self._tracked.pop(self.generation - 10, None)
        try:
            info = await self._wait_answering(process)
        except BaseException:
            await _terminate(process, STOP_TIMEOUT, isolated=self._isolated)
            raise
        tracked = _track(process.pid, isolated=self._isolated)
        if tracked is not None:
            self._tracked[self.generation] = tracked
        self.name = info.engine
        logger.info("Engine %s%s is ready (pid %d).", info.engine, self._for, process.pid)
        self._ready.set()

    @property
    def _isolated(self) -> bool:
        return self.sandbox is not None and self.sandbox.isolated

    def _command_line(self) -> tuple[list[str], dict[str, str]]:
        """The command that starts the engine, and its environment."""
        if self.sandbox is None:
            # The worker's environment, less the processor token: the engine reads files for the
            # worker, and has no business with the server.
            env = {k: v for k, v in os.environ.items() if k not in _WITHHELD}
            env[SOCKET_ENV] = str(self.socket_path)
            return self.command, env
        program = self.command[0]
        found = shutil.which(program) if os.sep not in program else program
        if found is None or not os.access(found, os.X_OK) or Path(found).is_dir():
            # Said here: inside, the launcher could only exit while the engine starts.
            error = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
            raise EngineError(
                f"The engine command {' '.join(self.command)!r} cannot be started: {error}."
            )
        assert self._dir is not None
        self.sandbox.prepare(self._dir)
        return self.sandbox.argv(self.command, self._dir), self.sandbox.environment(
            self.socket_path
        )

    def _signal_of(self, returncode: int) -> int | None:
        """The signal that ended an engine: bubblewrap exits with 128 + its number."""
        if returncode < 0:
            return -returncode
        if self._isolated and _SIGNALLED < returncode <= _SIGNALLED + 64:
            return returncode - _SIGNALLED
        return None

    def _describe(self, returncode: int) -> str:
        signum = self._signal_of(returncode)
        limits = self.sandbox.limits if self.sandbox is not None else None
        if signum == signal.SIGXCPU and limits is not None and limits.cpu_seconds:
            return limits.cpu_hit()  # the kernel's RLIMIT_CPU, set for the job
        return describe_exit(-signum if signum is not None else returncode)

    async def _wait_answering(self, process: asyncio.subprocess.Process) -> EngineInfo:
        deadline = time.monotonic() + self.start_timeout
        delay = 0.02
        while True:
            if process.returncode is not None:
                raise EngineError(
                    f"The engine exited while starting ({self._describe(process.returncode)}); "
                    "see its output above."
                )
            try:
                return await self.client.info()
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise EngineError(
                    f"The engine did not answer GET {INFO} within {self.start_timeout:g} s of starting."
                )
            # Wake on the process's exit as well as on the poll interval.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(process.wait()), delay)
            delay = min(0.25, delay * 2)

    async def _supervise(self) -> None:
        failures = 0  # restarts in a row that did not run healthy
        while True:
            process = self._process
            assert process is not None
            started = time.monotonic()
            returncode = await process.wait()
            self._ready.clear()
            if self._stopping:
                return
            requested = self._restart_reasons.get(self.generation)
            if requested:
                delay = 0.0  # restart() said why already
            else:
                # An engine that dies again soon after a restart waits longer each time.
                healthy = time.monotonic() - started > HEALTHY_UPTIME
                failures = 0 if healthy else failures + 1
                delay = RESTART_BACKOFF.delay(failures) if failures else 0.0
                logger.error(
                    "%s%s; restarting it in %.1f s.",
                    upper_first(self._describe(returncode)),
                    self._for,
                    delay,
                )
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._start()
                    break
                except EngineError as error:
                    failures += 1
                    delay = RESTART_BACKOFF.delay(failures)
                    logger.error("%s Retrying in %.1f s.", error, delay)


async def start_engines(engines: Sequence[EngineProcess]) -> None:
    """Start engines side by side; raise the first failure (every engine has ended by then,
    started or stopped, so the caller's cleanup stops them all)."""
    outcomes = await asyncio.gather(*(e.start() for e in engines), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def _private_dir() -> Path:
    """A fresh 0700 directory for the socket, under a short base: AF_UNIX paths hold ~104 bytes,
    and TMPDIR can be long (macOS), so fall back to /tmp then."""
    base = tempfile.gettempdir()
    if len(base) > _LONG_TMPDIR and Path(_SHORT_TMP).is_dir():
        base = _SHORT_TMP
    return Path(tempfile.mkdtemp(prefix="fap-", dir=base))


async def _terminate(
    process: asyncio.subprocess.Process,
    timeout: float,
    tracked: Tracked | None = None,
    *,
    isolated: bool = False,
) -> None:
    """Terminate, wait, kill. In a sandbox, SIGTERM goes to the engine itself (bubblewrap would
    just die of it, and SIGKILL everything inside): the engine may finish and tidy up."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if isolated and tracked is not None:
                os.kill(tracked.engine, signal.SIGTERM)
            else:
                process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout)
            return
        except TimeoutError:
            logger.warning("The engine did not stop within %g s; killing it.", timeout)
        _kill(process, tracked, isolated=isolated)
    await process.wait()


def _kill(process: asyncio.subprocess.Process, tracked: Tracked | None, *, isolated: bool) -> None:
    """SIGKILL the engine and every process it started. In a sandbox, killing bubblewrap is
    enough: its init dies with it (--die-with-parent), and with that init its PID namespace.
    Without one, the engine's descendants are found and killed first (stopped, then killed, so
    that none forks on meanwhile); those it orphaned already are beyond reach."""
    if not isolated and tracked is not None:
        family = _descendants(tracked.root)
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in family:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    pending = children_of(pid)
    while pending:
        child = pending.pop()
        if child not in found:
            found.append(child)
            pending += children_of(child)
    return found


def _track(pid: int, *, isolated: bool) -> Tracked | None:
    """Which processes are the engine's: under bubblewrap, its child is the sandbox's init and
    the init's child the engine (the launcher became it); else the process is the engine."""
    if not isolated:
        return Tracked(root=pid, engine=pid)
    [init, *_] = children_of(pid) or [0]
    [engine, *_] = (children_of(init) if init else []) or [0]
    return Tracked(root=init, engine=engine) if engine else None


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _load_prctl() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl: Callable[..., int] | None = getattr(libc, "prctl", None)
    return prctl


# Resolved once, before any fork: the child may only make the one system call.
_PRCTL = _load_prctl() if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the engine's process, between fork and exec: have the kernel SIGKILL it when the
    worker dies, even by ``kill -9`` — an engine must never outlive its worker and hold a job's
    bytes with nobody to answer to."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
