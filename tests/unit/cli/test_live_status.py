"""``fap status --watch``: workers, engines, queue depth and recent jobs, in a view redrawn each
second on a terminal, a snapshot a second elsewhere."""

from __future__ import annotations

import io
import json
import time

import pytest

from fap.api import EngineStatus, JobState, StatusReport, UploadInfo, WorkerInfo
from fap.cli.status import _live_view, _Screen


def _report() -> StatusReport:
    now = time.time()
    return StatusReport(
        workers=[
            WorkerInfo(worker_id="lab-1", engines=["size@1"], last_seen=now, active_jobs=2),
            WorkerInfo(worker_id="lab-2", engines=["size@1"], last_seen=now, active_jobs=0),
        ],
        jobs={"queued": 3, "leased": 2, "done": 40, "failed": 1},
        queue_depth=3,
        engines=[
            EngineStatus(engine="size@1", processors=["lab-1", "lab-2"], waiting=3, running=2)
        ],
        default_engine="size@1",
    )


def _upload(name: str, state: JobState, error: str | None = None) -> UploadInfo:
    return UploadInfo(
        id=f"id-{name}",
        name=name,
        size=10,
        sha256="0" * 64,
        engine="size@1",
        chunk_size=8,
        chunk_count=2,
        chunks_stored=[0, 1],
        state=state,
        attempts=1,
        error=error,
        created_at=time.time(),
        finished_at=None,
    )


def _render(renderable: object) -> str:
    from rich.console import Console
    from rich.text import Text

    out = io.StringIO()
    Console(file=out, force_terminal=True, width=100).print(renderable)
    return Text.from_ansi(out.getvalue()).plain


def test_the_live_view_shows_workers_engines_queue_and_recent_jobs() -> None:
    recent = [
        _upload("q4.csv", JobState.LEASED),
        _upload("[red]scan.bin", JobState.FAILED, "The engine ran out of memory."),
    ]

    screen = _render(_live_view(_report(), recent))

    assert "Workers online: 2" in screen
    assert "lab-1" in screen and "lab-2" in screen
    assert "size@1 (default)" in screen
    assert "Queue depth: 3" in screen
    assert "Recent jobs" in screen
    assert "q4.csv" in screen and "leased" in screen
    assert "[red]scan.bin" in screen  # a name is shown as written, never read as markup
    assert "The engine ran out of memory." in screen
    assert "Ctrl-C quits" in screen


def test_a_caller_who_may_not_list_uploads_sees_the_rest() -> None:
    screen = _render(_live_view(_report(), None))

    assert "Workers online: 2" in screen
    assert "Recent jobs" not in screen


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_off_a_terminal_each_snapshot_is_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _Pipe()
    monkeypatch.setattr("sys.stdout", out)
    with _Screen(json_output=False) as screen:
        assert screen.show(_report(), [_upload("q4.csv", JobState.DONE)])
        assert screen.show(_report(), [])

    text = out.getvalue()
    assert text.count("status at ") == 2
    assert text.count("workers online: 2\n") == 2
    assert "recent jobs:\n  q4.csv: done\n" in text
    assert "\x1b" not in text


def test_with_json_each_snapshot_is_one_status_report_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = _Pipe()
    monkeypatch.setattr("sys.stdout", out)
    with _Screen(json_output=True) as screen:
        screen.show(_report(), None)
        screen.show(_report(), None)

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["queue_depth"] for line in lines] == [3, 3]
    assert [len(line["workers"]) for line in lines] == [2, 2]
