"""What ``fap up`` makes of its children's output: every line into the log file, the user told
only the warnings and errors (one line each) and why a child exited; the watcher's events to the
view. The children here are real processes writing what fap's roles write."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from fap.supervise import Child, LocalPipeline, Supervisor

_CHILD = r"""
import sys
print("2026-12-01 18:45:54,608 INFO fap.server.runner: fap serve listening on 127.0.0.1:8700", file=sys.stderr)
print("2026-12-01 18:45:55,001 WARNING fap.worker.engine_process: Engine size@1 crashed; restarting it.", file=sys.stderr)
print("2026-12-01 18:45:56,002 ERROR uvicorn.error: Exception in ASGI application", file=sys.stderr)
print("Traceback (most recent call last):", file=sys.stderr)
print('  File "app.py", line 1, in <module>', file=sys.stderr)
print('{"event": "retrying", "message": "The server does not answer."}')
print("watching inbox; results go to results")
print("error: The data directory /srv/fap cannot be used: Not a directory.", file=sys.stderr)
sys.exit(3)
"""


class _Heard:
    """A view that keeps what it is told."""

    def __init__(self) -> None:
        self.notices: list[str] = []
        self.echoed: list[str] = []
        self.events: list[str] = []

    def starting(self, log_file: Path) -> None:
        pass

    def up(self, pipeline: LocalPipeline) -> None:
        pass

    def notice(self, child: str, line: str) -> None:
        self.notices.append(f"{child}: {line}")

    def echo(self, child: str, line: str) -> None:
        self.echoed.append(f"{child}: {line}")

    def event(self, line: str) -> bool:
        if line.startswith("{"):
            self.events.append(json.loads(line)["event"])
            return True
        return False

    async def follow(self, url: str, token: str) -> None:
        pass


async def _run_child(tmp_path: Path, *, echo: bool) -> tuple[_Heard, str, str | None]:
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    heard, log = _Heard(), io.StringIO()
    supervisor = Supervisor(heard, log, echo=echo)
    child = await supervisor.start(Child("server", [sys.executable, str(script)], events=True))
    assert child.process is not None
    assert await child.process.wait() == 3
    reason = await supervisor.exit_reason(child)
    await supervisor.stop_all()
    return heard, log.getvalue(), reason


async def test_the_user_hears_a_childs_warnings_and_errors_one_line_each(tmp_path: Path) -> None:
    heard, _, reason = await _run_child(tmp_path, echo=False)

    assert heard.notices == [
        "server: warning: Engine size@1 crashed; restarting it.",
        "server: error: Exception in ASGI application",
    ]
    assert reason == "The data directory /srv/fap cannot be used: Not a directory."
    assert heard.echoed == []


async def test_every_line_goes_to_the_log_named_by_its_child(tmp_path: Path) -> None:
    heard, log, _ = await _run_child(tmp_path, echo=False)

    assert "server: 2026-12-01 18:45:54,608 INFO fap.server.runner: fap serve listening" in log
    assert "server: Traceback (most recent call last):" in log
    assert "server: watching inbox; results go to results" in log
    assert "server: error: The data directory /srv/fap cannot be used" in log
    assert heard.events == ["retrying"]
    assert '"event"' not in log  # events are the view's, not the log's


async def test_with_verbose_the_user_sees_every_line_as_the_child_wrote_it(
    tmp_path: Path,
) -> None:
    heard, _, reason = await _run_child(tmp_path, echo=True)

    assert "server: Traceback (most recent call last):" in heard.echoed
    assert any("INFO fap.server.runner" in line for line in heard.echoed)
    assert heard.notices == []  # shown already, as written
    assert reason is not None
