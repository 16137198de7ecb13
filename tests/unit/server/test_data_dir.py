"""The server's data directory holds the state store, the blobs and the signing key: it is
private (0700) whether fap made it or found it, and so is everything fap puts in it."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from tests.unit.server.harness import running_server

from fap.errors import ConfigError
from fap.server.services import prepare_data_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_data_dir_and_what_is_in_it_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_server(data) as server:
        await server.upload(server.owner, b"a file")
        assert mode(data) == 0o700
        made = list(data.rglob("*"))
        assert any(path.name == "fap.db" for path in made)
        for path in made:
            expected = 0o700 if path.is_dir() else 0o600
            assert mode(path) & ~expected == 0, (path, oct(mode(path)))


async def test_an_existing_data_dir_open_to_others_is_made_private(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="fap.server.services"):
        async with running_server(data):
            assert mode(data) == 0o700
    assert any("0700 now" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("kind", ["a file", "under a file"])
def test_a_data_dir_that_cannot_be_used_is_one_sentence(tmp_path: Path, kind: str) -> None:
    (tmp_path / "file").write_bytes(b"")
    data = tmp_path / "file" if kind == "a file" else tmp_path / "file" / "data"
    with pytest.raises(ConfigError, match=rf"^The data directory {data} cannot be used: .+\.$"):
        prepare_data_dir(data)
