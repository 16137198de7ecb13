"""Run fap's roles as child processes on this machine, and stop them all cleanly.

``fap up`` starts the server, a worker and the watcher as separate processes — the same commands a
multi-machine deployment runs — so one machine exercises exactly the production code paths. The
children run in their own sessions: Ctrl-C reaches only the supervisor, which then stops them in
reverse order (watcher, worker, server) with SIGTERM, and SIGKILL for any that does not go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from fap.errors import FapError, InputError

__all__ = ("Child", "LocalPipeline", "Supervisor", "fap_command", "run_local_pipeline")

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 15.0


def fap_command(*args: str) -> list[str]:
    """This installation's ``fap`` (the same interpreter), so children run the same code."""
    return [sys.executable, "-m", "fap", *args]


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None


class Supervisor:
    """Starts children, notices when one dies, and stops all of them on the way out."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self._stopping = asyncio.Event()

    async def start(self, child: Child) -> Child:
        child.process = await asyncio.create_subprocess_exec(
            *child.argv,
            env={**os.environ, **child.env},
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        self.children.append(child)
        log.debug("started %s (pid %d)", child.name, child.process.pid)
        return child

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_http_ready(self, child: Child, url: str, timeout: float = 60.0) -> None:
        """Wait until ``url`` answers 200; fail at once if the child exits first."""
        assert child.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                if child.process.returncode is not None:
                    raise FapError(
                        f"The {child.name} exited with code {child.process.returncode} while starting."
                    )
                try:
                    if (await http.get(url)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if loop.time() > deadline:
                    raise FapError(f"The {child.name} did not become ready within {timeout:g} s.")
                await asyncio.sleep(0.1)

    async def run_until_stopped(self) -> Child | None:
        """Wait for a stop request or for any child to exit; answer the child that exited, if one did."""
        waits = {
            asyncio.ensure_future(child.process.wait()): child
            for child in self.children
            if child.process is not None
        }
        stop = asyncio.ensure_future(self._stopping.wait())
        done, _ = await asyncio.wait([stop, *waits], return_when=asyncio.FIRST_COMPLETED)
        for task in [stop, *waits]:
            task.cancel()
        exited = [waits[task] for task in done if task in waits]
        return exited[0] if exited else None

    async def stop_all(self) -> None:
        for child in reversed(self.children):
            await _stop(child)


async def _stop(child: Child) -> None:
    process = child.process
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
    except TimeoutError:
        log.warning("the %s did not stop within %g s; killing it", child.name, STOP_GRACE_SECONDS)
    # Anything the child started in its session (the worker's engine) goes with it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


@dataclass(frozen=True)
class LocalPipeline:
    inbox: Path
    results: Path
    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    verbose: bool = False  # every child logs its debug detail too

    @property
    def log_flag(self) -> list[str]:
        """What each child is told: its debug detail, or (the default) warnings only."""
        return ["--verbose"] if self.verbose else ["--quiet"]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


async def run_local_pipeline(pipeline: LocalPipeline) -> None:
    """Serve, one worker and the watcher on this machine until Ctrl-C or SIGTERM.

    Raises FapError if a child cannot start or exits on its own; the others are stopped either way.
    """
    _check_port_free(pipeline.host, pipeline.port)
    pipeline.inbox.mkdir(parents=True, exist_ok=True)
    pipeline.results.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, supervisor.request_stop)
    try:
        server = await supervisor.start(
            Child(
                "server",
                fap_command(
                    "serve",
                    *pipeline.log_flag,
                    "--host",
                    pipeline.host,
                    "--port",
                    str(pipeline.port),
                    "--data-dir",
                    str(pipeline.data_dir),
                ),
            )
        )
        await supervisor.wait_http_ready(server, f"{pipeline.url}/healthz")
        owner_token = _read_token(pipeline.data_dir / "local-owner.token")
        processor_token = _read_token(pipeline.data_dir / "local-processor.token")
        await supervisor.start(
            Child(
                "worker",
                fap_command("work", *pipeline.log_flag, "--server", pipeline.url),
                env={"FAP_TOKEN": processor_token},
            )
        )
        await supervisor.start(
            Child(
                "watcher",
                fap_command(
                    "watch",
                    str(pipeline.inbox),
                    "--server",
                    pipeline.url,
                    "--results",
                    str(pipeline.results),
                    *(["--verbose"] if pipeline.verbose else []),
                ),
                env={"FAP_TOKEN": owner_token},
            )
        )
        log.info(
            "fap is up: drop files into %s, results appear in %s (server %s); Ctrl-C stops",
            pipeline.inbox,
            pipeline.results,
            pipeline.url,
        )
        exited = await supervisor.run_until_stopped()
        if exited is not None:
            code = exited.process.returncode if exited.process else None
            raise FapError(f"The {exited.name} exited on its own (code {code}); fap stopped.")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await supervisor.stop_all()


def _read_token(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as error:
        raise FapError(
            f"The local token {path} cannot be read ({error.strerror}); the data dir was set up "
            "with an identity provider, or by another user."
        ) from error


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError as error:
            raise InputError(
                f"Port {port} on {host} is taken ({error.strerror}); choose another with --port."
            ) from error
