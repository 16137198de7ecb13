"""``fap watch --status DIR`` and ``fap status --local``: a watcher's files from its journal,
one line (or JSON object) each, with no server and no token."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fap.cli.app import app
from fap.client import JOURNAL_NAME, Journal
from fap.errors import EXIT_INPUT

SERVER = "http://fap.test"
MiB = 1024 * 1024


@pytest.fixture
def inbox(fap_home: Path, tmp_path: Path) -> Path:
    """A directory watched by this very process, one file in each state."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    inbox = inbox.resolve()  # as a watcher names it

    async def journal() -> None:
        async with Journal(fap_home / JOURNAL_NAME, SERVER) as journal:
            await journal.watch_started(str(inbox), os.getpid())
            await journal.record_queued([(str(inbox / "queued.txt"), 10, 1)])
            big = str(inbox / "deep" / "big.bin")
            await journal.record_version(big, 40 * MiB, 1, "bb")
            await journal.record_upload(big, "up-big", 40, 12, 12 * MiB)
            await journal.record_version(str(inbox / "waiting.txt"), 5, 1, "ww")
            await journal.record_upload(str(inbox / "waiting.txt"), "up-w", 1, 0)
            await journal.record_uploaded(str(inbox / "waiting.txt"))
            await journal.record_version(str(inbox / "done.txt"), 5, 1, "dd")
            await journal.record_done(str(inbox / "done.txt"), "/out/done.txt.result.json")
            await journal.record_version(str(inbox / "bad.txt"), 5, 1, "xx")
            await journal.record_failed(str(inbox / "bad.txt"), "The analysis failed: no.")

    asyncio.run(journal())
    return inbox


def test_off_a_terminal_each_file_is_one_line_and_the_watcher_goes_to_stderr(
    inbox: Path,
) -> None:
    done = CliRunner().invoke(app, ["watch", "--status", str(inbox)])

    assert done.exit_code == 0, done.output
    rows = [line.split("\t")[:4] for line in done.stdout.splitlines()]
    assert rows == [
        ["bad.txt", "failed", "5 bytes", "The analysis failed: no."],
        ["deep/big.bin", "uploading", "12/40 chunks, 12.0 MiB of 40.0 MiB", "-"],
        ["done.txt", "done", "5 bytes", "/out/done.txt.result.json"],
        ["queued.txt", "queued", "10 bytes", "-"],
        ["waiting.txt", "waiting", "1/1 chunks, 5 bytes of 5 bytes", "-"],
    ]
    assert done.stderr.startswith(f"watcher of {inbox}: running (process {os.getpid()}) since ")


def test_json_is_one_object_per_file(inbox: Path) -> None:
    done = CliRunner().invoke(app, ["watch", "--status", str(inbox), "--json"])

    assert done.exit_code == 0, done.output
    files = {item["file"]: item for item in map(json.loads, done.stdout.splitlines())}
    assert {name: item["state"] for name, item in files.items()} == {
        "bad.txt": "failed",
        "deep/big.bin": "uploading",
        "done.txt": "done",
        "queued.txt": "queued",
        "waiting.txt": "waiting",
    }
    big = files["deep/big.bin"]
    assert (big["chunks_stored"], big["chunk_count"], big["bytes_stored"]) == (12, 40, 12 * MiB)
    assert (big["size"], big["upload_id"], big["path"]) == (
        40 * MiB,
        "up-big",
        str(inbox / "deep/big.bin"),
    )
    assert files["bad.txt"]["error"] == "The analysis failed: no."


def test_status_local_is_the_same_view_of_a_directory_or_of_all(inbox: Path) -> None:
    one = CliRunner().invoke(app, ["status", "--local", str(inbox / "deep")])
    every = CliRunner().invoke(app, ["status", "--local"])

    assert one.exit_code == 0, one.output
    assert [line.split("\t")[0] for line in one.stdout.splitlines()] == ["big.bin"]
    assert every.exit_code == 0, every.output
    assert len(every.stdout.splitlines()) == 5
    assert every.stdout.splitlines()[0].startswith(f"{inbox / 'bad.txt'}\tfailed")


def test_a_directory_no_watcher_journaled_is_said_so_in_one_line(
    inbox: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    done = CliRunner().invoke(app, ["watch", "--status", str(elsewhere)])

    assert done.exit_code == EXIT_INPUT
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: No watcher has journaled {elsewhere}: fap watch ")


def test_no_journal_at_all_is_said_so_and_none_is_made(fap_home: Path, tmp_path: Path) -> None:
    done = CliRunner().invoke(app, ["watch", "--status", str(tmp_path)])

    assert done.exit_code == EXIT_INPUT
    assert done.stderr.startswith(f"error: No watcher has journaled {tmp_path}:")
    assert not (fap_home / JOURNAL_NAME).exists()


def test_a_directory_argument_without_local_is_a_usage_error(tmp_path: Path) -> None:
    done = CliRunner().invoke(app, ["status", str(tmp_path)])
    assert done.exit_code == 2
    assert "--local" in done.stderr
