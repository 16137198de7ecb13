"""Run fap's roles as child processes on this machine, and stop them all cleanly.

``fap up`` starts the server, a worker and the watcher as separate processes — the same commands a
multi-machine deployment runs — so one machine exercises exactly the production code paths. The
children run in their own sessions: Ctrl-C reaches only the supervisor, which then stops them in
reverse order (watcher, worker, server) with SIGTERM, and SIGKILL for any that does not go.

What the children write is theirs, not the user's: every line goes to one log file, each prefixed
with the child's name, and to the terminal only with ``-v``. The user hears, through the view, only
what they must: a child's warning or error (one line, its traceback stays in the log), why a child
that exited did so, and what the watcher tells of the files (``--events`` JSON lines on stdout).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

import httpx

from fap.errors import FapError, InputError

__all__ = (
    "Child",
    "LocalPipeline",
    "PipelineView",
    "Supervisor",
    "fap_command",
    "run_local_pipeline",
)

STOP_GRACE_SECONDS = 15.0
# How long the last lines of a child that exited may take to arrive through its pipes; a
# grandchild that keeps a pipe open (an engine on its way out) must not hold up the message.
DRAIN_SECONDS = 5.0
# A line longer than this is cut into pieces rather than held in memory whole.
LINE_LIMIT = 1024 * 1024

# A log record of a fap role (fap.logs' format) the user must see: a warning, an error.
_RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>WARNING|ERROR|CRITICAL) [\w.]+: (?P<text>.*)$"
)
# A command's own last word (fap.cli.common.die, warn): "error: …", "warning: …".
_EDGE = re.compile(r"^(?P<level>error|warning): (?P<text>.*)$")


def fap_command(*args: str) -> list[str]:
    """This installation's ``fap`` (the same interpreter), so children run the same code."""
    return [sys.executable, "-m", "fap", *args]


class PipelineView(Protocol):
    """What the user sees of a local pipeline; every method is called on the event loop."""

    def starting(self, log_file: Path) -> None:
        """The children are about to start; their log goes to ``log_file``."""

    def up(self, pipeline: LocalPipeline) -> None:
        """Every child runs: files dropped into the inbox are taken."""

    def notice(self, child: str, line: str) -> None:
        """A warning or an error of ``child`` (``"warning: …"``, ``"error: …"``): one line."""

    def echo(self, child: str, line: str) -> None:
        """With ``-v``: a line of ``child``'s log, as it wrote it."""

    def event(self, line: str) -> bool:
        """One line of the watcher's stdout; False if it holds no event (it is then logged)."""

    async def follow(self, url: str, token: str) -> None:
        """Runs while the pipeline is up (to ask the server what it shows); cancelled after."""


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    events: bool = False  # its stdout is events for the view, not log lines
    process: asyncio.subprocess.Process | None = None
    reason: str | None = None  # its last error line: why it exited
    readers: list[asyncio.Task[None]] = field(default_factory=list)


class Supervisor:
    """Starts children, keeps their output, notices when one dies, and stops all on the way out."""

    def __init__(self, view: PipelineView, log: TextIO, *, echo: bool = False) -> None:
        self.children: list[Child] = []
        self._view = view
        self._log = log
        self._echo = echo
        self._stopping = asyncio.Event()

    async def start(self, child: Child) -> Child:
        process = await asyncio.create_subprocess_exec(
            *child.argv,
            env={**os.environ, **child.env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        child.process = process
        assert process.stdout is not None and process.stderr is not None
        child.readers = [
            asyncio.create_task(self._read(child, process.stderr)),
            asyncio.create_task(self._read(child, process.stdout, events=child.events)),
        ]
        self.children.append(child)
        self.write_log(child.name, f"started (pid {process.pid}): {' '.join(child.argv[1:])}")
        return child

    def request_stop(self) -> None:
        self._stopping.set()

    def write_log(self, child: str, line: str) -> None:
        self._log.write(f"{child}: {line}\n")

    async def _read(
        self, child: Child, stream: asyncio.StreamReader, *, events: bool = False
    ) -> None:
        async for line in _lines(stream):
            if events and self._view.event(line):
                continue
            self.write_log(child.name, line)
            if self._echo:
                self._view.echo(child.name, line)
            match = _RECORD.match(line) or _EDGE.match(line)
            if match is None:
                continue
            level = "warning" if match["level"].lower() == "warning" else "error"
            if match.re is _EDGE and level == "error":
                # A command's last word: said once, in the message of its exit.
                child.reason = match["text"]
            elif not self._echo:
                self._view.notice(child.name, f"{level}: {match['text']}")

    async def exit_reason(self, child: Child) -> str | None:
        """What ``child``, which exited, said last about why, once its output has been read."""
        if child.readers:
            await asyncio.wait(child.readers, timeout=DRAIN_SECONDS)
        return child.reason

    async def wait_http_ready(self, child: Child, url: str, timeout: float = 60.0) -> None:
        """Wait until ``url`` answers 200; fail at once if the child exits first."""
        assert child.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                if child.process.returncode is not None:
                    if reason := await self.exit_reason(child):
                        raise FapError(f"The {child.name} could not start: {reason}")
                    raise FapError(
                        f"The {child.name} exited with code {child.process.returncode} while "
                        "starting; its log says why."
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
            await self._stop(child)
        readers = [reader for child in self.children for reader in child.readers]
        if readers:
            # Their last lines, into the log; a pipe a stray grandchild holds open is let go.
            _, pending = await asyncio.wait(readers, timeout=DRAIN_SECONDS)
            for reader in pending:
                reader.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _stop(self, child: Child) -> None:
        process = child.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            message = f"did not stop within {STOP_GRACE_SECONDS:g} s; killed"
            self.write_log(child.name, message)
            self._view.notice(child.name, f"warning: {message}")
        # Anything the child started in its session (the worker's engine) goes with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def _lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    """The lines of a child's output, however long (cut at ``LINE_LIMIT``), the last one too."""
    pending = b""
    while chunk := await stream.read(64 * 1024):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if len(pending) > LINE_LIMIT:
            lines.append(pending)
            pending = b""
        for line in lines:
            yield line.decode(errors="replace").rstrip("\r")
    if pending:
        yield pending.decode(errors="replace").rstrip("\r")


@dataclass(frozen=True)
class LocalPipeline:
    inbox: Path
    results: Path
    data_dir: Path
    port: int
    log_file: Path
    host: str = "127.0.0.1"
    verbose: bool = False  # every child logs its debug detail too, and the user sees it

    @property
    def log_flag(self) -> list[str]:
        """What the server and the worker are told: their debug detail, or (the default) what
        they log at INFO — the log file is where someone looks when a file did not come back."""
        return ["--verbose"] if self.verbose else []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


async def run_local_pipeline(pipeline: LocalPipeline, view: PipelineView) -> None:
    """Serve, one worker and the watcher on this machine until Ctrl-C or SIGTERM.

    Raises FapError if a child cannot start or exits on its own; the others are stopped either way.
    """
    _check_port_free(pipeline.host, pipeline.port)
    pipeline.inbox.mkdir(parents=True, exist_ok=True)
    pipeline.results.mkdir(parents=True, exist_ok=True)
    with _open_log(pipeline.log_file) as log:
        view.starting(pipeline.log_file)
        supervisor = Supervisor(view, log, echo=pipeline.verbose)
        supervisor.write_log("fap up", f"starting, {time.strftime('%Y-%m-%d %H:%M:%S')}")
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, supervisor.request_stop)
        follower: asyncio.Task[None] | None = None
        try:
            owner_token = await _start_children(supervisor, pipeline)
            view.up(pipeline)
            follower = asyncio.create_task(view.follow(pipeline.url, owner_token))
            exited = await supervisor.run_until_stopped()
            if exited is not None:
                code = exited.process.returncode if exited.process else None
                reason = await supervisor.exit_reason(exited)
                why = f": {reason.rstrip('.')}" if reason else ""
                raise FapError(
                    f"The {exited.name} exited on its own (code {code}){why}. fap stopped; its "
                    f"log is in {pipeline.log_file}."
                )
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            await supervisor.stop_all()
            supervisor.write_log("fap up", "stopped")


async def _start_children(supervisor: Supervisor, pipeline: LocalPipeline) -> str:
    """Server, then worker and watcher with the server's local tokens; the owner's token."""
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
                "--events",
                *(["--verbose"] if pipeline.verbose else []),
            ),
            env={"FAP_TOKEN": owner_token},
            events=True,
        )
    )
    return owner_token


@contextlib.contextmanager
def _open_log(path: Path) -> Iterator[TextIO]:
    """The children's log, appended to, 0600 from the start: it names every file dropped."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as error:
        raise InputError(
            f"The log file {path} cannot be opened ({error.strerror}); choose another with "
            "--log-file."
        ) from error
    os.fchmod(fd, 0o600)  # a file the umask or an older fap left open to others
    with os.fdopen(fd, "a", buffering=1, encoding="utf-8", errors="replace") as log:
        yield log


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
