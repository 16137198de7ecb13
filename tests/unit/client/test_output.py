"""Names come from users: whatever they look like, the output shows them as they are.

A file named ``[red]x`` must not turn the line red, ``[/]`` must not crash the command (rich's
MarkupError), and ``[link=…]`` must not make a hidden link.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

from fap.api import UploadInfo
from fap.cli import results as results_cli
from fap.cli import upload as upload_cli
from fap.cli.app import app
from fap.cli.live import FolderLines
from fap.client import FileOutcome
from fap.errors import EXIT_INPUT

NAMES = ("[red]x", "[/]", "[link=https://evil.example]y", "[bold]z[/bold]")


def _info(name: str, state: str = "done") -> UploadInfo:
    return UploadInfo(
        id="6618f0aa00000000000000000000beef",
        name=name,
        size=4,
        sha256="ab" * 32,
        engine="size@1",
        chunk_size=65536,
        chunk_count=1,
        chunks_stored=[0],
        state=state,  # type: ignore[arg-type]
        attempts=1,
        error=None,
        created_at=0.0,
        finished_at=1.0,
    )


def test_refused_files_are_named_as_they_are(fap_home: Path, tmp_path: Path) -> None:
    paths = [str(tmp_path / name) for name in NAMES]

    done = CliRunner().invoke(app, ["upload", *paths, "--server", "http://127.0.0.1:9"])

    assert done.exit_code == EXIT_INPUT, done.output
    assert "Traceback" not in done.output
    for path in paths:
        assert f"error: {path} does not exist." in done.stderr


@pytest.mark.parametrize("name", NAMES)
def test_the_progress_bars_and_lines_of_an_upload_show_the_name_as_it_is(name: str) -> None:
    screen = Console(file=io.StringIO(), force_terminal=True, color_system=None, width=200)
    progress = Progress(*upload_cli.progress_columns(), console=screen)
    reporter = upload_cli._Reporter(progress, json_output=False)
    file = name  # as given on the command line
    outcome = FileOutcome(file=file, upload_id="up-1", status="uploaded")

    with progress:
        reporter.started(file, 4)
        reporter.advanced(file, 4)
        reporter.uploaded(outcome)
        outcome.status, outcome.result_path = "done", f"results/{name}.result.json"
        reporter.finished(outcome)

    shown = screen.file.getvalue()  # type: ignore[attr-defined]
    assert f"{Path(file).name} (done)" in shown  # the bar's description: the base name
    assert f"{name}: done, result in results/{name}.result.json" in shown


@pytest.mark.parametrize("name", NAMES)
def test_plain_lines_of_upload_and_watch_show_the_name_as_it_is(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = FileOutcome(file=name, upload_id="up-1", status="failed", error=f"{name} is gone.")

    upload_cli._Reporter(None, json_output=False).uploaded(outcome)
    upload_cli._Reporter(None, json_output=True).finished(outcome)
    FolderLines(json_output=False).uploaded(outcome)
    FolderLines(json_output=False).retrying(f"The server at {name} did not answer.")
    upload_cli.warn(f"the device key is kept in /home/{name}/device.key (mode 0600).")

    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"uploaded {name} as up-1",
        f"{name}: failed: {name} is gone.",
        f"uploaded {name} as up-1",
        f"waiting: The server at {name} did not answer. Retrying.",
        f"warning: the device key is kept in /home/{name}/device.key (mode 0600).",
    ]


def test_the_table_of_results_shows_names_as_they_are(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that no name is folded
    results_cli._render_rich([_info(name) for name in NAMES])

    shown = capsys.readouterr().out
    for name in NAMES:
        assert name in shown
