"""What ``fap watch`` and ``fap up`` show of files: bars in flight, lines as they land, or the
plain lines off a terminal; and the ``--events`` lines that carry it from a watcher to ``fap up``."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
from pathlib import Path

import pytest

from fap.cli.live import (
    FileBoard,
    FolderEvents,
    FolderLines,
    FolderLive,
    UpView,
    replay,
    until_interrupted,
)
from fap.client import FileOutcome

KiB = 1024


def _board(root: Path | None = Path("inbox")) -> tuple[io.StringIO, FileBoard]:
    from rich.console import Console

    out = io.StringIO()
    return out, FileBoard(Console(file=out, force_terminal=True, width=100), root=root)


def _screen(board: FileBoard) -> str:
    """The board as it stands, drawn once."""
    board.console.print(board)
    return _plain(board.console.file.getvalue())  # type: ignore[attr-defined]


def _plain(text: str) -> str:
    from rich.text import Text

    return Text.from_ansi(text).plain


def _done(file: str, result: str) -> FileOutcome:
    return FileOutcome(file=file, upload_id="u1", status="done", result_path=result)


def _failed(file: str, reason: str) -> FileOutcome:
    return FileOutcome(file=file, upload_id="u2", status="failed", error=reason)


def test_a_file_in_flight_has_a_bar_with_its_name_and_bytes() -> None:
    _, board = _board()
    board.started("inbox/reports/q4.csv", 4 * KiB)
    board.advanced("inbox/reports/q4.csv", 1 * KiB)

    screen = _screen(board)

    [line] = [row for row in screen.splitlines() if "q4.csv" in row]
    assert line.startswith("reports/q4.csv")  # named below the watched folder
    assert "━" in line
    assert "1.0/4.1 kB" in line
    assert "1 in flight · 0 done" in screen


def test_results_land_above_the_board_with_where_they_were_written() -> None:
    out, board = _board()
    live = FolderLive(board)
    live.started("inbox/a.txt", 10)
    live.advanced("inbox/a.txt", 10)
    live.uploaded(FileOutcome(file="inbox/a.txt", upload_id="u1", status="uploaded"))
    assert "a.txt (analysing)" in _screen(board)

    live.finished(_done("inbox/a.txt", "results/a.txt.result.json"), earlier=False)

    printed = _plain(out.getvalue())
    assert "inbox/a.txt: done, result in results/a.txt.result.json" in printed
    after = _screen(board).split("inbox/a.txt: done")[-1]
    assert "a.txt (analysing)" not in after  # its bar is gone
    assert "0 in flight · 1 done" in after


def test_a_failure_lands_with_its_reason_and_is_counted() -> None:
    out, board = _board()
    live = FolderLive(board)
    live.started("inbox/big.bin", 100)
    live.finished(_failed("inbox/big.bin", "The engine ran out of memory."), earlier=False)
    live.finished(_done("inbox/old.txt", "results/old.txt.result.json"), earlier=True)

    printed = _plain(out.getvalue())
    assert "inbox/big.bin: failed: The engine ran out of memory." in printed
    assert "inbox/old.txt: done, result in results/old.txt.result.json (earlier)" in printed
    assert "0 in flight · 1 done · 1 failed" in _screen(board)


def test_a_file_sent_again_starts_its_bar_from_zero() -> None:
    _, board = _board()
    board.started("inbox/a.bin", 8 * KiB)
    board.advanced("inbox/a.bin", 8 * KiB)
    board.started("inbox/a.bin", 2 * KiB)  # it changed while being sent

    screen = _screen(board)

    [bar] = [row for row in screen.splitlines() if "a.bin" in row]
    assert "0.0/2.0 kB" in bar
    assert "1 in flight" in screen


def test_names_and_reasons_are_text_never_markup_nor_control_codes() -> None:
    out, board = _board(root=None)
    live = FolderLive(board)
    live.started("[red]x\x1b[2J.txt", 1)
    live.finished(_failed("[red]x\x1b[2J.txt", "[bold]refused"), earlier=False)

    printed = _plain(out.getvalue())
    assert "[red]x\\x1b[2J.txt: failed: [bold]refused" in printed
    assert "\x1b[2J" not in out.getvalue()


def test_the_workers_online_are_on_the_status_line() -> None:
    _, board = _board()
    board.workers = 2
    board.headline = "watching inbox"
    assert "watching inbox · workers online: 2 · 0 in flight · 0 done" in _screen(board)


def test_events_replayed_tell_a_view_what_the_watcher_told(
    capsys: pytest.CaptureFixture[str],
) -> None:
    events = FolderEvents()
    events.started("inbox/a.txt", 5)
    events.advanced("inbox/a.txt", 5)
    events.uploaded(FileOutcome(file="inbox/a.txt", upload_id="u1", status="uploaded"))
    events.finished(_done("inbox/a.txt", "results/a.txt.result.json"), earlier=False)
    events.retrying("The server does not answer.")
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["event"] for line in lines] == [
        "started",
        "advanced",
        "uploaded",
        "finished",
        "retrying",
    ]

    out, board = _board()
    assert all(replay(line, FolderLive(board)) for line in lines)

    printed = _plain(out.getvalue())
    assert "inbox/a.txt: done, result in results/a.txt.result.json" in printed
    assert "waiting: The server does not answer. Retrying." in printed
    assert "0 in flight · 1 done" in _screen(board)


@pytest.mark.parametrize(
    "line",
    [
        "2026-12-01 18:45:54,608 WARNING fap.client: not JSON",
        "[1, 2]",
        '{"event": "started", "file": "a.txt"}',
        '{"file": "a.txt", "status": "done"}',
    ],
    ids=["a log line", "not an object", "a field missing", "no event"],
)
def test_a_line_that_is_no_event_is_left_for_the_log(line: str) -> None:
    assert not replay(line, FolderLines(json_output=False))


def test_off_a_terminal_the_lines_are_plain_as_they_always_were(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = FolderLines(json_output=False)
    lines.started("inbox/a.txt", 5)
    lines.advanced("inbox/a.txt", 5)
    lines.uploaded(FileOutcome(file="inbox/a.txt", upload_id="u1", status="uploaded"))
    lines.finished(_done("inbox/a.txt", "results/a.txt.result.json"), earlier=True)
    lines.finished(_failed("inbox/b.txt", "Refused."), earlier=False)

    captured = capsys.readouterr()
    assert captured.out == (
        "inbox/a.txt: done, result in results/a.txt.result.json (earlier)\n"
        "inbox/b.txt: failed: Refused.\n"
    )
    assert captured.err == "uploaded inbox/a.txt as u1\n"


def test_json_lines_are_the_outcomes_alone(capsys: pytest.CaptureFixture[str]) -> None:
    lines = FolderLines(json_output=True)
    lines.started("inbox/a.txt", 5)
    lines.finished(_done("inbox/a.txt", "results/a.txt.result.json"), earlier=False)

    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line) == _done("inbox/a.txt", "results/a.txt.result.json").as_dict()


def test_fap_up_off_a_terminal_says_each_change_of_workers_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    view = UpView(live=False)
    for count in (0, 1, 1, 1, 2):
        view.workers_online(count)
    view.notice("worker", "warning: Engine size@1 crashed; restarting it.")

    assert capsys.readouterr().err.splitlines() == [
        "workers online: 0",
        "workers online: 1",
        "workers online: 2",
        "worker: warning: Engine size@1 crashed; restarting it.",
    ]


def test_fap_up_replays_the_watchers_events_into_its_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    view = UpView(live=False)
    finished = {"event": "finished", "earlier": False, **_failed("inbox/x", "Too big.").as_dict()}

    assert view.event(json.dumps(finished))
    assert not view.event("watching inbox; results go to results")

    assert capsys.readouterr().out == "inbox/x: failed: Too big.\n"


async def test_ctrl_c_ends_a_live_view_cleanly() -> None:
    unwound = asyncio.Event()

    async def view() -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)  # as the terminal sends it on Ctrl-C
            await asyncio.Event().wait()
        finally:
            unwound.set()

    await until_interrupted(view())  # returns: no KeyboardInterrupt, no CancelledError

    assert unwound.is_set()
