"""The doctor's checks of this machine alone: the config file, the keyring, the disk space where
results go, the watcher services. Each looks and changes nothing (the keyring probe removes the
entry it wrote)."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import keyring
import keyring.backends.fail
import keyring.backends.null
import keyring.errors

from fap.client.device import KEY_FILE_NAME, KEYRING_USER
from fap.client.doctor.check import Check, failed, ok, warning
from fap.client.keyring_names import KEYRING_SERVICE
from fap.client.service import UNKNOWN, service_manager
from fap.client.settings_file import check_file, unknown_sections
from fap.crypto import DeviceIdentity
from fap.errors import EXIT_INPUT, ConfigError, FapError, InputError

__all__ = (
    "LOW_DISK_BYTES",
    "PROBE_SERVICE",
    "check_config",
    "check_disk",
    "check_keyring",
    "check_watchers",
    "local_identity",
)

# Results are small, but the journal and a watcher's downloads share the disk: below this, say so.
LOW_DISK_BYTES = 1024**3
_GIB = 1024**3
# The keyring probe's entry: a service of its own, so that it can never touch one of fap's.
PROBE_SERVICE = "fap-doctor"
_PROBE_USER = "probe"
# How a missing or broken keyring backend shows itself (D-Bus trouble: OSError, RuntimeError).
_KEYRING_FAILURES = (keyring.errors.KeyringError, RuntimeError, OSError)
_NO_KEYRING = (keyring.backends.fail.Keyring, keyring.backends.null.Keyring)


def check_config(path: Path) -> Check:
    if not path.exists():
        return ok("config", f"no config file ({path}): the built-in defaults apply")
    try:
        count = check_file(path)
        unknown = unknown_sections(path)
    except ConfigError as error:
        return failed(
            "config",
            f"{error} Fix it with fap config set or fap config unset, or in {path}.",
            EXIT_INPUT,
        )
    if unknown:
        return warning(
            "config",
            f"{path} has tables that fap does not read: {', '.join(unknown)} (it reads "
            "[client], [server] and [worker]).",
        )
    return ok("config", f"{path} is valid ({count} setting{'' if count == 1 else 's'})")


def check_keyring() -> Check:
    """The OS keyring works when an entry written to it reads back and can be removed."""
    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__qualname__}"
    fallback = (
        "the device key and sign-ins are kept in 0600 files in the fap home instead, and an API "
        "token must come from FAP_TOKEN"
    )
    if isinstance(backend, _NO_KEYRING):
        return warning("keyring", f"no OS keyring here ({name}): {fallback}.")
    probe = secrets.token_hex(16)
    try:
        keyring.set_password(PROBE_SERVICE, _PROBE_USER, probe)
        read = keyring.get_password(PROBE_SERVICE, _PROBE_USER)
        keyring.delete_password(PROBE_SERVICE, _PROBE_USER)
    except _KEYRING_FAILURES as error:
        return warning("keyring", f"the keyring ({name}) does not work ({error}): {fallback}.")
    if read != probe:
        return warning(
            "keyring", f"the keyring ({name}) did not give back what it kept: {fallback}."
        )
    return ok("keyring", f"{name} keeps, gives back and removes entries")


def check_disk(results: Path, low: int = LOW_DISK_BYTES) -> Check:
    """Room where results are written (or, before the first, where the directory will be made)."""
    target = results.expanduser().absolute()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == target and not target.is_dir():
        return failed(
            "disk space", f"{target} is not a directory: results cannot go there.", EXIT_INPUT
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        return failed(
            "disk space",
            f"{existing} cannot be written: results cannot go to {target}; choose another "
            "directory with --results DIR.",
            EXIT_INPUT,
        )
    try:
        free = shutil.disk_usage(existing).free
    except OSError as error:
        return warning("disk space", f"the free space of {existing} is unknown: {error.strerror}.")
    where = target if existing == target else f"{target} (made with the first result)"
    if free < low:
        return warning(
            "disk space",
            f"{free / _GIB:.1f} GiB free for results in {where}: make room, or choose another "
            "directory with --results DIR.",
        )
    return ok("disk space", f"{free / _GIB:.1f} GiB free for results in {where}")


def check_watchers() -> Check:
    """The watcher services fap service installed here, and whether each runs (this asks the
    service manager, which may block)."""
    try:
        manager = service_manager()
    except FapError:
        return ok("watchers", "fap service has no service manager here: no watcher services")
    entries = manager.installed()
    if not entries:
        return ok("watchers", "no watcher services installed")
    states = manager.states(entries)
    down = {name: state for name, state in states.items() if state != "active"}
    if not down:
        return ok("watchers", f"{len(entries)} running: {', '.join(states)}")
    listed = ", ".join(f"{name} ({state})" for name, state in down.items())
    advice = "fap service status and fap service logs DIR say why"
    if any(state == "failed" for state in down.values()):
        return failed("watchers", f"not running: {listed}; {advice}.")
    if all(state == UNKNOWN for state in down.values()):
        return warning(
            "watchers",
            f"{len(entries)} installed, but the service manager does not say whether they run.",
        )
    return warning("watchers", f"not running: {listed}; {advice}.")


def local_identity(home: Path) -> DeviceIdentity | None:
    """This device's key where fap keeps it (the keyring, else the key file); None if it has
    none yet. Unlike the commands, the doctor makes none."""
    try:
        stored = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
    except _KEYRING_FAILURES:
        stored = None
    if stored:
        return DeviceIdentity.parse(stored)
    key_file = home / KEY_FILE_NAME
    if not key_file.exists():
        return None
    try:
        return DeviceIdentity.parse(key_file.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(
            f"The device key file {key_file} cannot be read: {error.strerror}."
        ) from error
