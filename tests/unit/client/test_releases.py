"""A newer fap is announced at most once a day, from what the server advertises; fap never
updates itself."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest
from tests.unit.server.harness import BASE, running_server

from fap.api import ME, Me
from fap.client import connect
from fap.client.releases import NOTICE_FILE, QUIET_SECONDS, is_newer, release_notice
from fap.config import ClientSettings

DAY = QUIET_SECONDS
NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("latest", "current", "newer"),
    [
        ("0.2.0", "0.1.0", True),
        ("0.10.0", "0.9.3", True),  # numbers, not text
        ("1.0", "0.9.9", True),
        ("0.1.0", "0.1.0", False),
        ("0.1", "0.1.0", False),
        ("0.0.9", "0.1.0", False),
        ("0.2.0", "0.2.0.dev3", False),  # a development build of that release: not older
        ("0.2.0", "0.1.0rc1", True),
        ("0.2.0-beta", "0.1.0", False),  # not a plain release: ignored
        ("latest", "0.1.0", False),
        ("", "0.1.0", False),
    ],
)
def test_which_releases_are_newer(latest: str, current: str, newer: bool) -> None:
    assert is_newer(latest, current) is newer


def test_a_newer_release_is_told_once_a_day(tmp_path: Path) -> None:
    home = tmp_path / "home"
    told = release_notice(home, "0.2.0", current="0.1.0", now=NOW)
    assert told == (
        "fap 0.2.0 is out (this is 0.1.0); upgrade when it suits you: fap never updates itself."
    )
    assert release_notice(home, "0.2.0", current="0.1.0", now=NOW + 60) is None
    assert release_notice(home, "0.3.0", current="0.1.0", now=NOW + DAY - 1) is None
    assert release_notice(home, "0.3.0", current="0.1.0", now=NOW + DAY) is not None
    assert release_notice(home, "0.3.0", current="0.1.0", now=NOW + DAY + 60) is None


def test_the_record_is_private_whatever_the_umask(tmp_path: Path) -> None:
    home = tmp_path / "home"
    before = os.umask(0)
    try:
        assert release_notice(home, "0.2.0", current="0.1.0", now=NOW) is not None
    finally:
        os.umask(before)
    assert stat.S_IMODE((home / NOTICE_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_nothing_is_told_or_written_when_this_fap_is_current(tmp_path: Path) -> None:
    assert release_notice(tmp_path, "0.1.0", current="0.1.0", now=NOW) is None
    assert release_notice(tmp_path, None, current="0.1.0", now=NOW) is None
    assert not (tmp_path / NOTICE_FILE).exists()


def test_a_damaged_record_counts_as_none(tmp_path: Path) -> None:
    (tmp_path / NOTICE_FILE).write_text("not a time\n")
    assert release_notice(tmp_path, "0.2.0", current="0.1.0", now=NOW) is not None


def test_a_notice_that_cannot_be_recorded_is_not_told(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    assert release_notice(blocked, "0.2.0", current="0.1.0", now=NOW) is None


async def test_a_command_tells_of_the_release_its_server_advertises_once(
    tmp_path: Path, fap_home: Path
) -> None:
    told: list[str] = []
    async with running_server(tmp_path / "data", client_latest="99.0.0") as server:
        settings = ClientSettings(server=BASE, token=server.owner, home=fap_home, retry_for=0)
        transport = httpx.ASGITransport(app=server.app)
        for _ in range(2):  # two commands, one after the other
            async with connect(settings, transport=transport, warn=told.append) as session:
                await session.call("GET", ME, returns=Me)
                await session.call("GET", ME, returns=Me)
    assert len(told) == 1
    assert told[0].startswith("fap 99.0.0 is out")


async def test_a_server_of_this_release_announces_nothing(tmp_path: Path, fap_home: Path) -> None:
    told: list[str] = []
    async with running_server(tmp_path / "data") as server:
        settings = ClientSettings(server=BASE, token=server.owner, home=fap_home, retry_for=0)
        transport = httpx.ASGITransport(app=server.app)
        async with connect(settings, transport=transport, warn=told.append) as session:
            await session.call("GET", ME, returns=Me)
    assert told == []
    assert not (fap_home / NOTICE_FILE).exists()
