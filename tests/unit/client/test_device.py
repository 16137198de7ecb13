"""The device identity: in the OS keyring, else in a 0600 file with one warning."""

from __future__ import annotations

import stat
from pathlib import Path

import keyring
from tests.unit.client.conftest import MemoryKeyring
from tests.unit.client.real_app import App

from fap.api import DEVICES
from fap.client import DeviceKeys
from fap.client.device import KEY_FILE_NAME, KEYRING_USER
from fap.crypto import DeviceIdentity
from fap.server.auth import hash_token


def test_without_a_keyring_the_key_lives_in_a_0600_file_with_one_warning(fap_home: Path) -> None:
    warnings: list[str] = []
    keys = DeviceKeys(fap_home, warnings.append)

    identity = keys.identity()
    again = DeviceKeys(fap_home, warnings.append).identity()

    key_file = fap_home / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert DeviceIdentity.parse(key_file.read_text()) == identity == again
    assert identity.secret.startswith("AGE-SECRET-KEY-1")
    assert len(warnings) == 2  # one per process (here: per DeviceKeys), never per use
    assert str(key_file) in warnings[0]
    keys.identity()
    assert len(warnings) == 2


def test_a_loosened_key_file_is_tightened_again(fap_home: Path) -> None:
    identity = DeviceKeys(fap_home, lambda _: None).identity()
    key_file = fap_home / KEY_FILE_NAME
    key_file.chmod(0o644)
    assert DeviceKeys(fap_home, lambda _: None).identity() == identity
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_with_a_keyring_the_key_lives_there_and_no_file_is_written(
    fap_home: Path, memory_keyring: MemoryKeyring
) -> None:
    warnings: list[str] = []
    identity = DeviceKeys(fap_home, warnings.append).identity()

    assert memory_keyring.passwords[("fap", KEYRING_USER)] == identity.secret
    assert not (fap_home / KEY_FILE_NAME).exists()
    assert warnings == []
    assert DeviceKeys(fap_home, warnings.append).identity() == identity


def test_a_key_kept_in_a_file_stays_the_key_when_a_keyring_appears(fap_home: Path) -> None:
    first = DeviceKeys(fap_home, lambda _: None).identity()
    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        assert DeviceKeys(fap_home, lambda _: None).identity() == first
    finally:
        keyring.set_keyring(previous)


async def test_the_device_is_registered_once_per_run(app: App) -> None:
    async with app.runtime() as runtime:
        identity = await runtime.device()
        await runtime.device()
    store = app.server.services.store
    owner = await store.credentials.resolve(hash_token(app.server.owner), app.server.clock())
    assert owner is not None and owner.user is not None
    assert await store.devices.recipients(owner.user.id) == [identity.recipient]
    assert [(s.method, s.path) for s in app.wire.sent].count(("POST", DEVICES)) == 1
