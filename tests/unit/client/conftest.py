"""Client fixtures: the real server app in-process, its worker, and a client runtime wired to it
over a recording, fault-injecting transport (see ``real_app.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backend import KeyringBackend
from tests.unit.client.real_app import App, running_app

from fap.client import Runtime

# A test of what the client does while nothing finishes: the app runs with no worker.
no_worker = pytest.mark.parametrize("app", [{"worker": False}], indirect=True, ids=["no worker"])


@pytest.fixture
async def app(tmp_path: Path, fap_home: Path, request: pytest.FixtureRequest) -> AsyncIterator[App]:
    options: dict[str, Any] = getattr(request, "param", {})
    async with running_app(tmp_path, fap_home, **options) as running:
        yield running


@pytest.fixture
async def runtime(app: App) -> AsyncIterator[Runtime]:
    async with app.runtime() as opened:
        yield opened


class MemoryKeyring(KeyringBackend):
    """A keyring that works, for the paths where the OS keyring is there."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.passwords.pop((service, username), None)


@pytest.fixture
def memory_keyring(fap_home: Path) -> Iterator[MemoryKeyring]:
    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)
