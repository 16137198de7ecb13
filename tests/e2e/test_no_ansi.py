"""No colour and no progress into a pipe: every long-running command, with stdout and stderr
both pipes, writes plain lines — no escape sequence, no bar — however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import Pipeline
from tests.support.processes import ServerProcess, fap_argv, free_port, stop_all

# Environment variables that would make rich colour a pipe: a user who sets them asks for it.
_COLOUR_ASKED = ("FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
# A bar's glyphs: rich draws a progress bar uncoloured, too, on a console it thinks is one.
_BAR = ("━", "╸", "╺")


@dataclass(frozen=True)
class Command:
    """``fap ARGS`` (``{inbox}``, ``{results}``, ``{file}``, ``{data}``, ``{port}`` filled in);
    ``until`` holds once it has shown what it does, for one that runs until Ctrl-C."""

    args: tuple[str, ...]
    own_server: bool = False  # fap up: it starts its own
    until: Callable[[Path, str], bool] | None = None


def _result_written(tmp: Path, _: str) -> bool:
    return any((tmp / "results").rglob("*.result.json"))


def _two_snapshots(_: Path, stdout: str) -> bool:
    return stdout.count("status at ") >= 2


COMMANDS = {
    "upload": Command(("upload", "{file}", "--results", "{results}")),
    "watch --once": Command(("watch", "{inbox}", "--once", "--results", "{results}")),
    "status": Command(("status",)),
    "status --watch": Command(("status", "--watch"), until=_two_snapshots),
    "up": Command(
        ("up", "{inbox}", "--results", "{results}", "--data-dir", "{data}", "--port", "{port}"),
        own_server=True,
        until=_result_written,
    ),
}


@dataclass
class _Piped:
    """A process whose stdout and stderr are pipes, read as it runs."""

    process: subprocess.Popen[bytes]
    out: bytearray
    err: bytearray
    readers: list[threading.Thread]

    @classmethod
    def start(cls, argv: list[str], env: dict[str, str]) -> _Piped:
        process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        out, err = bytearray(), bytearray()
        assert process.stdout is not None and process.stderr is not None
        readers = [
            threading.Thread(target=_drain, args=(process.stdout, out), daemon=True),
            threading.Thread(target=_drain, args=(process.stderr, err), daemon=True),
        ]
        for reader in readers:
            reader.start()
        return cls(process, out, err, readers)

    def text(self) -> tuple[str, str]:
        return self.out.decode(errors="replace"), self.err.decode(errors="replace")

    def finish(self, timeout: float) -> int:
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            for reader in self.readers:
                reader.join(10)
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
        return code


def _drain(stream: object, into: bytearray) -> None:
    read = stream.read1  # type: ignore[attr-defined]
    while chunk := read(65536):
        into.extend(chunk)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Path]:
    """An inbox with a file in it, a results dir to be, and the environment of a pipe."""
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "report.csv").write_text("quarter,revenue\nq4,100\n" * 500)
    (tmp_path / "home").mkdir()
    (tmp_path / "signals").mkdir()
    yield tmp_path


@pytest.mark.parametrize("name", COMMANDS)
def test_a_long_running_command_writes_no_colour_nor_progress_into_a_pipe(
    name: str, world: Path, start_server: Callable[..., ServerProcess]
) -> None:
    command = COMMANDS[name]
    env = {k: v for k, v in os.environ.items() if k not in _COLOUR_ASKED}
    env |= {
        "FAP_HOME": str(world / "home"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "COLUMNS": "100",
    }
    pipeline: Pipeline | None = None
    if not command.own_server:
        server = start_server()
        pipeline = Pipeline(
            server=server, tmp=world, home=world / "home", signals=world / "signals"
        )
        pipeline.start_worker()
        env |= {**pipeline.env, "FAP_SERVER": server.url, "FAP_TOKEN": server.owner_token}
    fill = {
        "inbox": str(world / "inbox"),
        "results": str(world / "results"),
        "file": str(world / "inbox" / "report.csv"),
        "data": str(world / "data"),
        "port": str(free_port()),
    }
    args = [arg.format(**fill) for arg in command.args]
    try:
        piped = _Piped.start(fap_argv(*args), env)
        if command.until is not None:
            deadline = time.monotonic() + 120
            while not command.until(world, piped.text()[0]):
                assert piped.process.poll() is None, piped.text()
                assert time.monotonic() < deadline, f"{name} showed nothing: {piped.text()}"
                time.sleep(0.2)
            piped.process.send_signal(signal.SIGINT)  # Ctrl-C, as a user stops it
        code = piped.finish(timeout=120)
    finally:
        if pipeline is not None:
            stop_all(pipeline.workers)
    stdout, stderr = piped.text()
    (world / f"client-{name.replace(' ', '')}.log").write_text(stderr)  # for the secret scan

    assert code == 0, stderr
    assert stdout or stderr  # it did say something
    for stream in (stdout, stderr):
        assert "\x1b" not in stream, stream
        assert not any(glyph in stream for glyph in _BAR), stream
        assert "Traceback" not in stream, stream
