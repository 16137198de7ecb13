"""The device's age identity: kept in the OS keyring, registered with the server.

Results are sealed to the public keys of the uploader's devices, so the identity must outlive every
run: it lives in the OS keyring (service ``fap``). Where no keyring backend works (a headless box,
CI), it falls back to a 0600 file in the fap home, and says so once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

import keyring
import keyring.errors

from fap.api import DEVICES, ApiSession, DeviceInfo, DeviceRegistration
from fap.client.keyring_names import KEYRING_SERVICE
from fap.client.private import make_private_dir
from fap.crypto import DeviceIdentity
from fap.errors import InputError

__all__ = ("KEYRING_USER", "KEY_FILE_NAME", "DeviceKeys", "register_device")

KEYRING_USER = "device-identity"
KEY_FILE_NAME = "device.key"

# A keyring backend that is missing or broken shows up as one of these (NoKeyringError is both a
# KeyringError and a RuntimeError; D-Bus trouble surfaces as OSError or RuntimeError).
_KEYRING_FAILURES = (keyring.errors.KeyringError, RuntimeError, OSError)

log = logging.getLogger(__name__)


class DeviceKeys:
    """Loads this device's identity, creating it on first use."""

    def __init__(self, home: Path, warn: Callable[[str], None] | None = None) -> None:
        self.home = home
        self.key_file = home / KEY_FILE_NAME
        self._warn = warn or log.warning
        self._warned = False
        self._identity: DeviceIdentity | None = None

    def identity(self) -> DeviceIdentity:
        if self._identity is None:
            self._identity = self._load_or_create()
        return self._identity

    def _load_or_create(self) -> DeviceIdentity:
        keyring_works = True
        try:
            stored = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
        except _KEYRING_FAILURES as error:
            log.debug("no usable keyring: %s", error)
            keyring_works, stored = False, None
        if stored:
            return DeviceIdentity.parse(stored)
        # A key once kept in the file stays the device's key: a new one would strand old results.
        if self.key_file.exists():
            return self._read_file()
        identity = DeviceIdentity.generate()
        if keyring_works:
            try:
                keyring.set_password(KEYRING_SERVICE, KEYRING_USER, identity.secret)
            except _KEYRING_FAILURES as error:
                log.debug("the keyring refused the device key: %s", error)
            else:
                return identity
        return self._write_file(identity)

    def _read_file(self) -> DeviceIdentity:
        self._warn_file()
        try:
            # Tighten a key file someone loosened; the key reads every result of this device.
            self.key_file.chmod(0o600)
            text = self.key_file.read_text(encoding="utf-8")
        except OSError as error:
            raise InputError(
                f"The device key file {self.key_file} cannot be read: {error.strerror}."
            ) from error
        return DeviceIdentity.parse(text)

    def _write_file(self, identity: DeviceIdentity) -> DeviceIdentity:
        try:
            make_private_dir(self.home)
            # O_EXCL: two first runs at once agree on one key instead of the last writer's.
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self._read_file()
        except OSError as error:
            raise InputError(
                f"The device key cannot be stored in {self.key_file}: {error.strerror}."
            ) from error
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(identity.secret + "\n")
        self._warn_file()
        return identity

    def _warn_file(self) -> None:
        if not self._warned:
            self._warned = True
            self._warn(
                f"no OS keyring is available; the device key is kept in {self.key_file} (mode 0600)."
            )


def device_name() -> str:
    with contextlib.suppress(OSError):
        return socket.gethostname() or "device"
    return "device"


async def register_device(session: ApiSession, identity: DeviceIdentity) -> DeviceInfo:
    """Tell the server this device's public key (idempotent), so results are sealed to it."""
    body = DeviceRegistration(name=device_name(), recipient=identity.recipient)
    return await session.call("POST", DEVICES, body, returns=DeviceInfo)
