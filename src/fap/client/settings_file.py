"""``config.toml`` as ``fap config`` reads and edits it, and as ``fap doctor`` checks it.

The file holds one table per role (``[client]``, ``[server]``, ``[worker]``: :mod:`fap.config`);
a setting is named ``SECTION.KEY``, as ``client.server`` or ``server.port``. A new value is
checked before the file changes: the text given is read as the field's type, then the role's
settings are built from the file about to replace the old one by :func:`fap.config.build`
itself, so that durations (``"24h"``), sizes (``"2G"``) and each settings class's own checks apply
exactly as they do when a command reads the file. Only then does the new file replace the old one,
in one rename, 0600 from the start.

The file is written back whole from what :mod:`tomllib` read, so comments in it are not kept. The
writer knows the few shapes fap's settings take (text, numbers, true or false, lists of them), and
every file it writes is read back and compared with what was meant before it is used.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shlex
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fap.client.private import FILE_MODE, make_private_dir
from fap.config import (
    ClientSettings,
    ServerSettings,
    WorkerSettings,
    build,
    fap_home,
    load_config_file,
)
from fap.errors import ConfigError, FapError, InputError

__all__ = (
    "CONFIG_NAME",
    "ENV_VARS",
    "ROLES",
    "SECRET_SETTINGS",
    "Setting",
    "check_file",
    "config_path",
    "get_setting",
    "list_settings",
    "parse_value",
    "set_setting",
    "unknown_sections",
    "unset_setting",
)

CONFIG_NAME = "config.toml"

ROLES: dict[str, type[Any]] = {
    "client": ClientSettings,
    "server": ServerSettings,
    "worker": WorkerSettings,
}

# Settings that hold a secret: fap config never writes one into the file, nor shows one.
SECRET_SETTINGS = frozenset({"client.token", "worker.token"})

# The FAP_* variable each setting's commands read (their options' envvar=), where there is one.
ENV_VARS: dict[str, str] = {
    "client.server": "FAP_SERVER",
    "client.token": "FAP_TOKEN",
    "client.org": "FAP_ORG",
    "client.home": "FAP_HOME",
    "client.retry_for": "FAP_RETRY_FOR",
    "client.token_file": "FAP_TOKEN_FILE",
    "server.host": "FAP_HOST",
    "server.port": "FAP_PORT",
    "server.data_dir": "FAP_DATA_DIR",
    "server.public_url": "FAP_PUBLIC_URL",
    "server.db": "FAP_DB",
    "server.storage": "FAP_STORAGE",
    "server.secrets": "FAP_SECRETS",
    "server.lease_seconds": "FAP_LEASE_SECONDS",
    "server.heartbeat_seconds": "FAP_HEARTBEAT_SECONDS",
    "server.max_attempts": "FAP_MAX_ATTEMPTS",
    "server.cleanup_seconds": "FAP_CLEANUP_EVERY",
    "server.abandon_after": "FAP_ABANDON_AFTER",
    "server.keep_results": "FAP_KEEP_RESULTS",
    "server.oidc": "FAP_OIDC",
    "server.client_latest": "FAP_CLIENT_LATEST",
    "worker.server": "FAP_SERVER",
    "worker.token": "FAP_TOKEN",
    "worker.concurrency": "FAP_CONCURRENCY",
    "worker.engine_command": "FAP_ENGINE_COMMAND",
    "worker.job_timeout": "FAP_JOB_TIMEOUT",
    "worker.retry_for": "FAP_RETRY_FOR",
    "worker.engine_memory": "FAP_ENGINE_MEMORY",
    "worker.engine_cpu_seconds": "FAP_ENGINE_CPU_SECONDS",
    "worker.result_max_bytes": "FAP_RESULT_MAX_BYTES",
    "worker.engine_mounts": "FAP_ENGINE_MOUNT",
    "worker.engine_env": "FAP_ENGINE_ENV",
    "worker.engine_devices": "FAP_ENGINE_DEVICE",
    "worker.require_sandbox": "FAP_REQUIRE_SANDBOX",
}

# A command line given as one value (``fap work --engine-command``'s way) rather than one word each.
_COMMAND_LINES = frozenset({"worker.engine_command"})
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting as commands see it: its value, as the file would write it, and whence."""

    key: str
    value: Any  # None where the setting is unset (no organisation named, say)
    source: str  # "default", "file" or "env"
    env: str | None  # the variable that sets it, if one does


def config_path(home: Path | None = None) -> Path:
    return (home or fap_home()) / CONFIG_NAME


def list_settings(path: Path, environ: Mapping[str, str]) -> list[Setting]:
    """Every setting of every role: from the environment, else the file, else the default."""
    document = load_config_file(path)
    found: list[Setting] = []
    for section, cls in ROLES.items():
        table = document.get(section)
        table = table if isinstance(table, dict) else {}
        defaults = cls()
        for field in dataclasses.fields(cls):
            key = f"{section}.{field.name}"
            env = ENV_VARS.get(key)
            # An empty variable counts as unset, as it does for the commands' options.
            if env is not None and environ.get(env):
                found.append(Setting(key, _from_env(key, environ[env]), "env", env))
            elif field.name in table:
                found.append(Setting(key, table[field.name], "file", env))
            else:
                found.append(Setting(key, _as_toml(getattr(defaults, field.name)), "default", env))
    return found


def get_setting(path: Path, key: str, environ: Mapping[str, str]) -> Setting:
    _field(key)
    return next(found for found in list_settings(path, environ) if found.key == key)


def parse_value(key: str, texts: Sequence[str]) -> Any:
    """Command-line text as the value the file should hold for ``key``.

    Text that is not a number is kept as text for a numeric setting: durations and sizes are
    written that way ("24h", "2G"), and anything else is refused once the settings are built.
    """
    hint = _field(key)[1]
    base, _ = _unoptional(hint)
    if typing.get_origin(base) is tuple:
        if key in _COMMAND_LINES and len(texts) == 1:
            try:
                return shlex.split(texts[0])
            except ValueError as error:
                raise ConfigError(f"{key} cannot be parsed as a command line: {error}.") from error
        return list(texts)
    if len(texts) != 1:
        raise ConfigError(f"{key} takes one value, not {len(texts)}.")
    text = texts[0]
    if base is bool:
        word = text.strip().lower()
        if word not in _TRUE | _FALSE:
            raise ConfigError(f"{key} must be true or false, not {text[:60]!r}.")
        return word in _TRUE
    if base is int:
        try:
            return int(text)
        except ValueError:
            return text
    if base is float:
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    return text


def set_setting(path: Path, key: str, texts: Sequence[str]) -> Any:
    """Write ``key`` = ``texts`` into the file, once the role's settings accept it; the value
    written. Nothing changes when they do not (ConfigError)."""
    if key in SECRET_SETTINGS:
        raise ConfigError(
            f"A token does not belong in {CONFIG_NAME}: sign in with fap login, keep an API "
            "token in the OS keyring, or set FAP_TOKEN."
        )
    value = parse_value(key, texts)  # which checks the key first
    section, name = key.split(".", 1)
    document = load_config_file(path)
    table = document.setdefault(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"The config file {path} sets {section} to a value; it must be a table.")
    table[name] = value
    _replace(path, document, check=section)
    return value


def unset_setting(path: Path, key: str) -> bool:
    """Take ``key`` out of the file, so the default (or the environment) applies again; False if
    the file did not set it. A key fap does not know goes too, if the file has it (a misspelt
    one, which keeps the role's settings from building)."""
    section, _, name = key.partition(".")
    document = load_config_file(path)
    table = document.get(section)
    if not isinstance(table, dict) or name not in table:
        _field(key)  # a key fap knows, and the file does not set
        return False
    del table[name]
    if not table:
        del document[section]
    _replace(path, document, check=None)
    return True


def check_file(path: Path) -> int:
    """Check every role's table of the file as its commands would read it; the number of
    settings it holds. ConfigError names the first one that is wrong."""
    document = load_config_file(path)
    count = 0
    for section in ROLES:
        if section in document:
            count += _check_section(path, section, document)
    return count


def unknown_sections(path: Path) -> list[str]:
    """The file's top-level names that no role reads (they are ignored, perhaps misspelt)."""
    return [name for name in load_config_file(path) if name not in ROLES]


# -- types -----------------------------------------------------------------------------------


def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _field(key: str) -> tuple[type[Any], Any]:
    """The settings class and the type of ``key``; ConfigError for a key fap does not know."""
    section, dot, name = key.partition(".")
    if not dot or not name:
        raise ConfigError(
            f"Name a setting as SECTION.KEY, such as client.server; {key[:60]!r} is not one."
        )
    cls = ROLES.get(section)
    if cls is None or name not in _hints(cls):
        raise ConfigError(f"fap has no setting {key[:60]}; fap config list shows them all.")
    return cls, _hints(cls)[name]


def _unoptional(hint: Any) -> tuple[Any, bool]:
    """``X | None`` → (X, True); X → (X, False)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def _check_section(path: Path, section: str, document: dict[str, Any]) -> int:
    table = document[section]
    if not isinstance(table, dict):
        raise ConfigError(f"The config file {path} sets {section} to a value; it must be a table.")
    cls = ROLES[section]
    hints = _hints(cls)
    for name in table:
        if name not in hints:
            raise ConfigError(f"The config file sets {section}.{name}, which fap does not know.")
    build(cls, config_file=path)  # every value of the kind its setting takes, and valid
    return len(table)


def _from_env(key: str, text: str) -> Any:
    """An environment variable's value as the commands would read it: lists split on white space."""
    base, _ = _unoptional(_field(key)[1])
    if typing.get_origin(base) is tuple and key not in _COMMAND_LINES:
        return text.split()
    try:
        return parse_value(key, [text])
    except ConfigError:
        return text


def _as_toml(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


# -- writing ---------------------------------------------------------------------------------


def _replace(path: Path, document: dict[str, Any], *, check: str | None) -> None:
    """Replace the file with ``document`` at once; with ``check``, only once that role's
    settings build from the new file."""
    text = _render(document)
    try:
        make_private_dir(path.parent)
        temp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    except OSError as error:
        raise InputError(f"The config file {path} cannot be written: {error.strerror}.") from error
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(fd, FILE_MODE)  # a temp file left by a killed run keeps its old mode
            handle.write(text)
        if load_config_file(temp) != document:
            raise FapError(f"fap could not write {path} faithfully; it is left as it was.")
        if check is not None:
            _check_section(temp, check, document)
        temp.replace(path)
    except OSError as error:
        raise InputError(f"The config file {path} cannot be written: {error.strerror}.") from error
    finally:
        temp.unlink(missing_ok=True)


def _render(document: Mapping[str, Any]) -> str:
    lines = [f"{_key(k)} = {_value(v, k)}" for k, v in document.items() if not isinstance(v, dict)]
    for name, table in document.items():
        if not isinstance(table, dict):
            continue
        if lines:
            lines.append("")
        lines.append(f"[{_key(name)}]")
        lines += [f"{_key(k)} = {_value(v, f'{name}.{k}')}" for k, v in table.items()]
    return "\n".join(lines) + "\n" if lines else ""


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else _string(name, name)


def _value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)  # a Python float's repr is a TOML float too: 30.0, 1e+16, 0.25
    if isinstance(value, str):
        return _string(value, where)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item, where) for item in value) + "]"
    raise ConfigError(
        f"The config file holds {where} = {value!r:.40}, which fap config cannot write back; "
        "edit the file by hand."
    )


def _string(text: str, where: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{where} must be text that UTF-8 can hold.") from None
    escaped = (
        _ESCAPES.get(char)
        or (f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char)
        for char in text
    )
    return '"' + "".join(escaped) + '"'
