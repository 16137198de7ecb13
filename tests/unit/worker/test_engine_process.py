"""The worker's engine process: started with readiness, restarted when it dies, always stopped."""

from __future__ import annotations

import asyncio
import stat
import sys
from pathlib import Path

import pytest
from tests.unit.worker.conftest import engine_command

from fap.errors import EngineError
from fap.worker import EngineProcess, default_engine_command
from fap.worker.engine_process import describe_exit


async def test_starts_this_installations_engine_on_a_private_socket() -> None:
    async with EngineProcess(default_engine_command()) as engine:
        assert engine.name == "size@1"
        assert engine.ready
        assert len(str(engine.socket_path)) < 100
        assert stat.S_IMODE(engine.socket_path.parent.stat().st_mode) == 0o700
        info = await engine.client.info()
        assert info.protocol == 1
        socket_dir = engine.socket_path.parent
    assert not socket_dir.exists()


async def test_an_engine_that_dies_is_started_again(markers: Path) -> None:
    async with EngineProcess(engine_command("fap.engine.reference:analyze")) as engine:
        first = engine._processes[engine.generation]
        first.kill()
        reason = await engine.exit_reason(1)
        assert reason == "the engine crashed (killed by SIGKILL)"
        assert await asyncio.wait_for(engine.wait_ready(), 30) == 2
        assert (await engine.client.info()).engine == "test@1"


async def test_a_command_that_cannot_run_is_one_clear_error() -> None:
    with pytest.raises(EngineError, match="cannot be started"):
        async with EngineProcess(["/nonexistent/engine"]):
            pass


async def test_an_engine_that_exits_while_starting_says_how() -> None:
    command = [sys.executable, "-c", "raise SystemExit(9)"]
    with pytest.raises(
        EngineError, match=r"exited while starting \(the engine crashed \(exit code 9\)\)"
    ):
        async with EngineProcess(command):
            pass


async def test_an_engine_that_never_answers_is_given_up_on() -> None:
    command = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(EngineError, match=r"did not answer GET /v1/info within 0\.5 s"):
        async with EngineProcess(command, start_timeout=0.5):
            pass


def test_exit_codes_read_as_sentences() -> None:
    assert describe_exit(3) == "the engine crashed (exit code 3)"
    assert describe_exit(-9) == "the engine crashed (killed by SIGKILL)"
    assert describe_exit(0) == "the engine exited unexpectedly (exit code 0)"
