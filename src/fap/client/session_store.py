"""Where a signed-in session's tokens are kept: the OS keyring, else a 0600 file in the fap home.

One keyring entry per server: service ``fap``, user name ``session:`` + the server URL (the whole
comma-separated list for replicas), the value a JSON object. Where no keyring backend works (a
headless box, CI), every server's session goes in ``sessions.json`` in the fap home instead, a
file only its user can read, replaced whole on each write so that a reader never sees half of one.

Nothing here locks: callers that read, refresh and write hold the session lock
(:mod:`fap.client.credentials`). Keyring backends may block (D-Bus, a keychain prompt), so async
callers run these methods in a thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import keyring
import keyring.errors
import msgspec

from fap.client.keyring_names import KEYRING_SERVICE
from fap.client.private import make_private_dir, tighten_file
from fap.errors import InputError
from fap.issuers import ProviderKind

__all__ = ("SESSIONS_FILE", "SessionStore", "StoredSession", "keyring_user")

SESSIONS_FILE = "sessions.json"

# A keyring backend that is missing or broken shows up as one of these (see client/device.py).
_KEYRING_FAILURES = (keyring.errors.KeyringError, RuntimeError, OSError)

log = logging.getLogger(__name__)


class StoredSession(msgspec.Struct, kw_only=True):
    """The server's tokens, and what renewing them takes: the server renews a session only for
    a fresh ID token, which the provider's own refresh token gets."""

    refresh_token: str  # the fap server's
    access_token: str
    access_expires_at: float  # this machine's clock: now + the server's expires_in
    session_expires_at: float  # the server's clock: after it, sign in again
    issuer: str  # the identity provider signed in with
    kind: ProviderKind = "oidc"
    client_id: str = ""
    provider_refresh_token: str | None = None  # None: the provider gave none
    client_secret: str | None = None  # a Google desktop client's, given at the sign-in


_SESSIONS = msgspec.json.Decoder(dict[str, StoredSession])
_SESSION = msgspec.json.Decoder(StoredSession)


def _quiet(message: str) -> None:
    log.debug("%s", message)


def keyring_user(server: str) -> str:
    return f"session:{server}"


class SessionStore:
    def __init__(self, home: Path, warn: Callable[[str], None] | None = None) -> None:
        self.path = home / SESSIONS_FILE
        self._home = home
        # Said when a sign-in is stored (``warn``); a refresh storing the next tokens says nothing.
        self._warn = warn or _quiet

    def load(self, server: str) -> StoredSession | None:
        try:
            text = keyring.get_password(KEYRING_SERVICE, keyring_user(server))
        except _KEYRING_FAILURES as error:
            log.debug("no usable keyring to read the session from: %s", type(error).__name__)
            text = None
        if text:
            try:
                return _SESSION.decode(text)
            except msgspec.DecodeError:
                log.warning("The session kept in the OS keyring for %s is damaged.", server)
                return None
        return self._read_file().get(server)

    def save(self, server: str, stored: StoredSession) -> None:
        try:
            keyring.set_password(
                KEYRING_SERVICE, keyring_user(server), msgspec.json.encode(stored).decode()
            )
        except _KEYRING_FAILURES as error:
            log.debug("the keyring refused the session: %s", type(error).__name__)
        else:
            self._drop_from_file(server)  # an older copy there would outlive the keyring's
            return
        sessions = self._read_file()
        sessions[server] = stored
        self._write_file(sessions)
        self._warn(f"no OS keyring is available; the session is kept in {self.path} (mode 0600).")

    def forget(self, server: str) -> bool:
        """Remove the session of ``server`` wherever it is kept; False if it was nowhere."""
        found = False
        try:
            keyring.delete_password(KEYRING_SERVICE, keyring_user(server))
            found = True
        except keyring.errors.PasswordDeleteError:
            pass  # no entry: the backend works but holds none
        except _KEYRING_FAILURES as error:
            log.debug("no usable keyring to forget the session in: %s", type(error).__name__)
        return self._drop_from_file(server) or found

    def _drop_from_file(self, server: str) -> bool:
        sessions = self._read_file()
        if sessions.pop(server, None) is None:
            return False
        self._write_file(sessions)
        return True

    def _read_file(self) -> dict[str, StoredSession]:
        try:
            tighten_file(self.path)  # it holds refresh tokens: nobody else reads it
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise InputError(
                f"The session file {self.path} cannot be read: {error.strerror}."
            ) from error
        try:
            return _SESSIONS.decode(data)
        except msgspec.DecodeError:
            log.warning("The session file %s is damaged; sign in again (fap login).", self.path)
            return {}

    def _write_file(self, sessions: dict[str, StoredSession]) -> None:
        try:
            make_private_dir(self._home)
            # mkstemp creates the file 0600; renamed over the old one, a reader sees either.
            fd, temp = tempfile.mkstemp(dir=self._home, prefix=f".{SESSIONS_FILE}.")
        except OSError as error:
            raise InputError(
                f"The session cannot be stored in {self._home}: {error.strerror}."
            ) from error
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(msgspec.json.encode(sessions))
            Path(temp).replace(self.path)
        except OSError as error:
            with contextlib.suppress(OSError):
                Path(temp).unlink()
            raise InputError(
                f"The session cannot be stored in {self.path}: {error.strerror}."
            ) from error
