"""A damaged journal is one sentence that names the file and says what to do, never a traceback."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fap.cli.app import app
from fap.client import JOURNAL_NAME, Journal, JournalDamaged
from fap.errors import EXIT_INPUT, FapError

SERVER = "http://fap.test"


async def _fill(path: Path, files: int) -> None:
    async with Journal(path, SERVER) as journal:
        for number in range(files):
            await journal.record_version(f"/in/{number:05}.txt", number, number, "ab" * 32)


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _set(sql: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        with sqlite3.connect(path) as db:
            db.execute(sql)

    return damage


def _foreign_table(path: Path) -> None:
    path.unlink()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE files (name TEXT, blob BLOB)")


def _assert_says_what_to_do(error: FapError, path: Path) -> None:
    message = str(error)
    assert isinstance(error, JournalDamaged)
    assert error.exit_code == EXIT_INPUT
    assert message.startswith(f"The journal {path} is damaged (")
    assert "move it aside" in message and message.endswith(".")
    assert "\n" not in message


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_garbage, id="garbage bytes"),
        pytest.param(_foreign_table, id="another program's table"),
    ],
)
async def test_a_file_that_is_no_journal_is_refused_on_opening(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    path = tmp_path / JOURNAL_NAME
    await _fill(path, 1)
    damage(path)

    with pytest.raises(JournalDamaged) as refused:
        async with Journal(path, SERVER):
            pass

    _assert_says_what_to_do(refused.value, path)


async def test_a_truncated_journal_is_refused_on_opening(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_NAME
    await _fill(path, 2000)  # many pages, so that half of them can go missing
    data = path.read_bytes()
    assert len(data) > 64 * 1024
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(JournalDamaged) as refused:
        async with Journal(path, SERVER) as journal:
            await journal.under("/in")

    _assert_says_what_to_do(refused.value, path)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_set("UPDATE files SET state = 'exploded'"), id="unknown state"),
        pytest.param(_set("UPDATE files SET size = 'large'"), id="a size that is text"),
        pytest.param(_set("UPDATE files SET chunks_stored = -3"), id="a negative count"),
        pytest.param(_set("UPDATE files SET sha256 = x'00ff'"), id="a hash that is bytes"),
    ],
)
async def test_rows_that_make_no_sense_are_refused_when_read(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    path = tmp_path / JOURNAL_NAME
    await _fill(path, 3)
    damage(path)

    async with Journal(path, SERVER) as journal:
        with pytest.raises(JournalDamaged) as by_path:
            await journal.get("/in/00001.txt")

    _assert_says_what_to_do(by_path.value, path)


def test_fap_watch_with_a_damaged_journal_says_so_in_one_line(
    fap_home: Path, tmp_path: Path
) -> None:
    _garbage(fap_home / JOURNAL_NAME)
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    done = CliRunner().invoke(
        app,
        ["watch", str(inbox), "--once", "--server", "http://127.0.0.1:9", "--token", "fap_x"],
    )

    assert done.exit_code == EXIT_INPUT, done.output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: The journal {fap_home / JOURNAL_NAME} is damaged")
    assert "Traceback" not in done.output
