"""Client fixtures: settings in an isolated fap home, a runtime wired to the in-process fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from tests.unit.client.fake_server import BASE, TOKEN, FakeServer

from fap.client import Runtime, open_runtime
from fap.config import ClientSettings

KiB = 1024
CHUNK = 64 * KiB


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


@pytest.fixture
def settings(fap_home: Path) -> ClientSettings:
    return ClientSettings(
        server=BASE,
        token=TOKEN,
        home=fap_home,
        retry_for=0.5,
        chunk_size=CHUNK,
        parallel_puts=3,
        settle_seconds=0.2,
    )


@pytest.fixture
async def runtime(settings: ClientSettings, fake: FakeServer) -> AsyncIterator[Runtime]:
    async with open_runtime(settings, transport=fake.transport) as opened:
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
