"""What fap keeps on a desktop is its user's alone: directories 0700, files 0600."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.client.real_app import running_app

from fap.client import JOURNAL_NAME, FolderSync, Journal, load_settings, upload_files
from fap.client.private import secure_home
from fap.client.state import remember_server


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most common umask, under which a plain mkdir is 0755 and a plain file 0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def modes(root: Path) -> dict[str, str]:
    """Every directory and file under ``root`` (itself included), with its mode in octal."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def loose(found: dict[str, str], root: Path) -> dict[str, str]:
    """The entries whose mode lets anyone but the owner in."""
    return {
        name: mode
        for name, mode in found.items()
        if mode != ("0o700" if (root / name).is_dir() else "0o600")
    }


async def test_every_file_and_directory_an_upload_and_a_watch_create_is_private(
    fap_home: Path, tmp_path: Path, open_umask: None
) -> None:
    state = tmp_path / "new-state"  # FAP_HOME and its parent do not exist yet
    home = state / "fap"
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "a.txt").write_text("alpha\n")
    (inbox / "sub" / "b.csv").write_text("1,2\n")
    one = tmp_path / "one.txt"
    one.write_text("one\n")
    results = tmp_path / "out" / "results"

    async with running_app(tmp_path, home) as app, asyncio.timeout(30):
        async with app.runtime() as runtime:
            outcomes = await upload_files(runtime, [one], results_dir=results)
        async with (
            app.runtime() as runtime,
            Journal(home / JOURNAL_NAME, app.settings.server) as journal,
        ):
            summary = await FolderSync(runtime, journal, inbox, results / "watched").run(once=True)
            while_open = modes(state)  # SQLite removes the -wal and -shm files on closing

    assert [outcome.status for outcome in outcomes] == ["done"]
    assert not summary.failed
    assert {"fap/journal.sqlite3-wal", "fap/journal.sqlite3-shm"} <= while_open.keys()
    assert loose(while_open, state) == {}
    created = modes(state)
    # What was made: the journal, the server last used, the device key (no keyring here).
    assert {"fap/journal.sqlite3", "fap/last-server", "fap/device.key"} <= created.keys()
    assert loose(created, state) == {}
    # The results dir fap made, and each result in it, are private too.
    written = modes(tmp_path / "out")
    assert "results/watched/sub/b.csv.result.json" in written
    assert loose(written, tmp_path / "out") == {}


async def test_a_home_and_files_left_open_by_an_older_fap_are_tightened(
    fap_home: Path, open_umask: None
) -> None:
    fap_home.chmod(0o755)
    for name in (JOURNAL_NAME, "last-server"):
        (fap_home / name).touch(mode=0o644)
        (fap_home / name).chmod(0o644)
    (fap_home / "last-server").write_text("http://127.0.0.1:8700\n")

    settings = load_settings(server=None, home=fap_home)
    async with Journal(settings.home / JOURNAL_NAME, settings.server):
        pass
    remember_server(settings.home, settings.server)

    assert loose(modes(fap_home), fap_home) == {}


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can make a directory another user owns")
def test_a_home_open_to_others_that_is_not_ours_is_left_and_warned_about(tmp_path: Path) -> None:
    home = tmp_path / "theirs"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    os.chown(home, 65534, 65534)
    heard: list[str] = []

    secure_home(home, heard.append)

    assert stat.S_IMODE(home.stat().st_mode) == 0o755
    assert len(heard) == 1
    assert str(home) in heard[0] and "another user" in heard[0] and "chmod 700" in heard[0]
