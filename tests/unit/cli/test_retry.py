"""``fap retry``: failed files go back to be sent, others are said to be left, strangers are an
error that changes nothing — all from the journal, with no server and no token."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fap.cli.app import app
from fap.client import JOURNAL_NAME, Journal
from fap.errors import EXIT_INPUT

SERVER = "http://fap.test"


@pytest.fixture
def inbox(fap_home: Path, tmp_path: Path) -> Path:
    """A watched directory: bad.txt failed, good.txt done, busy.bin uploading."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    inbox = inbox.resolve()  # as a watcher names it

    async def journal() -> None:
        async with Journal(fap_home / JOURNAL_NAME, SERVER) as journal:
            await journal.watch_started(str(inbox), 2**22 + 1)  # a process long gone
            for name in ("bad.txt", "good.txt", "busy.bin"):
                (inbox / name).write_text(name)
                await journal.record_version(str(inbox / name), 8, 1, name)
                await journal.record_upload(str(inbox / name), f"up-{name}", 2, 1, 4)
            await journal.record_failed(str(inbox / "bad.txt"), "The analysis failed: no.")
            await journal.record_done(str(inbox / "good.txt"), "/out/good.txt.result.json")

    asyncio.run(journal())
    return inbox


def _states(home: Path) -> dict[str, str]:
    async def read() -> dict[str, str]:
        async with Journal(home / JOURNAL_NAME, None, read_only=True) as journal:
            return {Path(r.path).name: r.state for r in await journal.everything()}

    return asyncio.run(read())


def test_a_failed_file_is_sent_again_and_the_others_are_left_with_a_line_each(
    inbox: Path, fap_home: Path
) -> None:
    done = CliRunner().invoke(
        app, ["retry", str(inbox / "bad.txt"), str(inbox / "good.txt"), str(inbox / "busy.bin")]
    )

    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == [
        f"{inbox / 'bad.txt'}: to be sent again by the next fap watch of its directory",
        f"{inbox / 'good.txt'}: done, not failed: left as it is",
        f"{inbox / 'busy.bin'}: uploading, not failed: left as it is",
    ]
    assert _states(fap_home) == {"bad.txt": "pending", "good.txt": "done", "busy.bin": "uploading"}


def test_a_file_no_watcher_journaled_is_one_line_and_exit_3_and_nothing_changes(
    inbox: Path, fap_home: Path
) -> None:
    done = CliRunner().invoke(app, ["retry", str(inbox / "bad.txt"), str(inbox / "stranger.txt")])

    assert done.exit_code == EXIT_INPUT, done.output
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: No watcher has journaled {inbox / 'stranger.txt'}:")
    assert done.stdout == ""
    assert _states(fap_home)["bad.txt"] == "failed"


def test_without_files_every_failed_file_is_sent_again(inbox: Path, fap_home: Path) -> None:
    done = CliRunner().invoke(app, ["retry", "--json"])

    assert done.exit_code == 0, done.output
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"file": str(inbox / "bad.txt"), "retried": True, "state": "failed", "watcher_pid": None}
    ]
    assert _states(fap_home)["bad.txt"] == "pending"
    again = CliRunner().invoke(app, ["retry"])
    assert again.exit_code == 0
    assert (again.stdout, again.stderr) == ("", "No failed file to send again.\n")


def test_a_directory_no_watcher_journaled_is_an_error(inbox: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    done = CliRunner().invoke(app, ["retry", "--dir", str(elsewhere)])

    assert done.exit_code == EXIT_INPUT, done.output
    assert done.stderr.startswith(f"error: No watcher has journaled {elsewhere}:")


def test_a_relative_name_finds_the_file_as_the_watcher_journaled_it(
    inbox: Path, fap_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(inbox.parent)
    done = CliRunner().invoke(app, ["retry", "inbox/bad.txt"])
    assert done.exit_code == 0, done.output
    assert _states(fap_home)["bad.txt"] == "pending"


def test_a_directory_named_as_a_file_stands_for_its_failed_files(
    inbox: Path, fap_home: Path
) -> None:
    done = CliRunner().invoke(app, ["retry", str(inbox)])

    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == [
        f"{inbox / 'bad.txt'}: to be sent again by the next fap watch of its directory"
    ]
    assert _states(fap_home)["bad.txt"] == "pending"
