"""Real fap processes on real sockets, started with readiness checks and always stopped.

Shutdown follows terminate, wait, kill — no orphans even when a test fails half-way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ("FapProcess", "ServerProcess", "fap_argv", "free_port", "stop_all", "wait_until")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fap_argv(*args: str) -> list[str]:
    """``fap ARGS…`` run by this test run's interpreter, so the installed checkout is what runs."""
    return [sys.executable, "-m", "fap", *args]


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass
class FapProcess:
    """One child process; its output goes to a log file the test can read on failure."""

    argv: list[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> FapProcess:
        full_env = {**os.environ, **self.env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=full_env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill_hard(self) -> None:
        """SIGKILL the whole process group: the process and anything it started."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM), without waiting for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        # Whatever the process left behind in its group goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        return self.process.returncode


def stop_all(processes: Sequence[FapProcess]) -> None:
    """Stop every one of ``processes``: all are asked at once, so they wind down together
    rather than each waiting for the one before."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.stop()


@dataclass
class ServerProcess(FapProcess):
    """``fap serve`` on a free port, ready once /healthz answers."""

    port: int = 0
    data_dir: Path = Path()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def owner_token(self) -> str:
        return (self.data_dir / "local-owner.token").read_text().strip()

    @property
    def processor_token(self) -> str:
        return (self.data_dir / "local-processor.token").read_text().strip()

    def wait_ready(self, timeout: float = 60.0) -> ServerProcess:
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"fap serve exited early:\n{self.log()}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout, "fap serve to answer /healthz")
        return self
