"""What a watch service is on disk: a systemd user unit or a launchd agent, written and read back.

Pure functions of paths and arguments — nothing here reads a file, writes one or runs a command —
so either platform's file can be generated and checked on any machine. A unit names its folder
twice: in its file name (systemd's path escaping, so ``systemctl --user status`` finds one unit
per folder) and in its command line, which is what runs and what ``fap service list`` reads back.
"""

from __future__ import annotations

import hashlib
import os
import plistlib
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fap.errors import InputError

__all__ = (
    "LABEL_PREFIX",
    "UNIT_PREFIX",
    "UNIT_SUFFIX",
    "WatchService",
    "escape_path",
    "launchd_label",
    "launchd_plist",
    "plist_text",
    "read_plist",
    "read_unit",
    "split_exec",
    "systemd_unit",
    "unit_name",
)

UNIT_PREFIX = "fap-watch@"
UNIT_SUFFIX = ".service"
LABEL_PREFIX = "org.fap.watch."

# systemd's UNIT_NAME_MAX (256) counts the terminating NUL.
_UNIT_NAME_MAX = 255
# What systemd's unit-name escaping keeps as it is; every other byte becomes \xNN.
_ESCAPE_KEEPS = frozenset(string.ascii_letters + string.digits + ":_.")
# A command-line word systemd reads as written: no quote, backslash, whitespace, % or $.
_BARE_WORD = re.compile(r"[A-Za-z0-9_@+=:,./-]+")
# systemd restarts a failed watcher this long after it exits; launchd waits as long between
# starts. A watcher that cannot start (a folder gone, a revoked token) then logs its reason
# every ten seconds rather than spinning.
_RESTART_SECONDS = 10
# The options of ``fap watch`` a service passes, in the order they are written.
_WATCH_OPTIONS = ("--results", "--server", "--engine")


@dataclass(frozen=True, slots=True)
class WatchService:
    """One watched folder's service: the ``fap watch`` it runs, in which environment.

    ``command`` is how this fap is started (its script, or ``python -m fap``); ``environment``
    holds paths only (FAP_HOME, FAP_TOKEN_FILE), never a token.
    """

    directory: Path
    results: Path
    command: tuple[str, ...]
    server: str | None = None
    engine: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)

    @property
    def argv(self) -> list[str]:
        argv = [*self.command, "watch", str(self.directory), "--results", str(self.results)]
        if self.server:
            argv += ["--server", self.server]
        if self.engine:
            argv += ["--engine", self.engine]
        return argv


def escape_path(path: str) -> str:
    """``systemd-escape --path PATH``: the instance name systemd gives a path.

    The path is simplified as systemd does (repeated and trailing slashes, ``.`` components),
    ``/`` becomes ``-``, and every byte but letters, digits, ``:``, ``_`` and a ``.`` that does
    not lead becomes ``\\xNN``; the root is ``-``.
    """
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{path!r} is not a normalized path")
    if not parts:
        return "-"
    escaped = []
    for index, byte in enumerate(os.fsencode("/".join(parts))):
        char = chr(byte)
        if char == "/":
            escaped.append("-")
        elif char in _ESCAPE_KEEPS and not (index == 0 and char == "."):
            escaped.append(char)
        else:
            escaped.append(f"\\x{byte:02x}")
    return "".join(escaped)


def unit_name(directory: Path) -> str:
    """``fap-watch@<escaped directory>.service``; InputError for a path too long to name one."""
    name = f"{UNIT_PREFIX}{escape_path(str(directory))}{UNIT_SUFFIX}"
    if len(name) > _UNIT_NAME_MAX:
        raise InputError(
            f"The path of {directory} is too long to name a systemd unit "
            f"({len(name)} characters escaped, {_UNIT_NAME_MAX} at most); watch a folder with a "
            "shorter path."
        )
    return name


def systemd_unit(service: WatchService) -> str:
    """The user unit that runs ``service``; it logs to the journal and restarts on failure."""
    exec_start = " ".join(_exec_word(word) for word in service.argv)
    environment = [
        f"Environment={_quoted(f'{name}={value}')}" for name, value in service.environment.items()
    ]
    lines = [
        "# Written by fap service install, which rewrites it; fap service uninstall removes it.",
        "[Unit]",
        f"Description=fap watch {_specifiers(_printable(str(service.directory)))}",
        "",
        "[Service]",
        "Type=exec",
        f"ExecStart={exec_start}",
        *environment,
        "Restart=on-failure",
        f"RestartSec={_RESTART_SECONDS}s",
        "StandardOutput=journal",
        "StandardError=journal",
        "SyslogIdentifier=fap-watch",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def read_unit(text: str) -> WatchService:
    """The service a unit written by :func:`systemd_unit` runs; ValueError if it is not one."""
    exec_start: str | None = None
    environment: dict[str, str] = {}
    for raw in text.splitlines():
        key, _, value = raw.strip().partition("=")
        if key == "ExecStart":
            exec_start = value
        elif key == "Environment":
            for assignment in _split(value, dollars=False):
                name, _, setting = assignment.partition("=")
                environment[name] = setting
    if exec_start is None:
        raise ValueError("the unit has no ExecStart=")
    return _from_argv(split_exec(exec_start), environment)


def split_exec(line: str) -> list[str]:
    """The words of an ExecStart= value, as systemd reads the ones :func:`systemd_unit` writes."""
    return _split(line, dollars=True)


def launchd_label(directory: Path) -> str:
    """``org.fap.watch.<folder name>-<hash>``: readable, and one per absolute path."""
    name = re.sub(r"[^a-z0-9]+", "-", directory.name.lower()).strip("-")[:40] or "root"
    digest = hashlib.sha256(os.fsencode(str(directory))).hexdigest()[:8]
    return f"{LABEL_PREFIX}{name}-{digest}"


def launchd_plist(service: WatchService, log_file: Path) -> dict[str, Any]:
    """The launch agent that runs ``service`` from login, its output appended to ``log_file``."""
    plist: dict[str, Any] = {
        "Label": launchd_label(service.directory),
        "ProgramArguments": service.argv,
        "RunAtLoad": True,
        # Started again when it fails, as systemd's Restart=on-failure; a watcher that exits 0
        # was stopped on purpose.
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": _RESTART_SECONDS,
        "StandardOutPath": str(log_file),
        "StandardErrorPath": str(log_file),
    }
    if service.environment:
        plist["EnvironmentVariables"] = dict(service.environment)
    return plist


def plist_text(plist: Mapping[str, Any]) -> str:
    return plistlib.dumps(dict(plist), sort_keys=False).decode("utf-8")


def read_plist(plist: Mapping[str, Any]) -> WatchService:
    """The service an agent written by :func:`launchd_plist` runs; ValueError if it is not one."""
    argv = plist.get("ProgramArguments")
    environment = plist.get("EnvironmentVariables", {})
    if not isinstance(argv, list) or not all(isinstance(word, str) for word in argv):
        raise ValueError("the agent has no ProgramArguments")
    if not isinstance(environment, dict):
        raise ValueError("the agent's EnvironmentVariables is not a dictionary")
    return _from_argv(argv, {str(k): str(v) for k, v in environment.items()})


def _from_argv(argv: Sequence[str], environment: Mapping[str, str]) -> WatchService:
    if "watch" not in argv:
        raise ValueError("the command is not fap watch")
    at = argv.index("watch")
    options: dict[str, str] = {}
    directory: str | None = None
    words = iter(argv[at + 1 :])
    for word in words:
        if word in _WATCH_OPTIONS:
            options[word] = next(words, "")
        elif directory is None:
            directory = word
        else:
            raise ValueError(f"unexpected word {word!r} in the command")
    if directory is None or "--results" not in options:
        raise ValueError("the command names no directory or no results")
    return WatchService(
        directory=Path(directory),
        results=Path(options["--results"]),
        command=tuple(argv[:at]),
        server=options.get("--server"),
        engine=options.get("--engine"),
        environment=dict(environment),
    )


def _printable(text: str) -> str:
    # A unit file is lines of text: a newline in a path would end its directive early.
    if not text.isprintable():
        raise InputError(
            f"{text!r} holds a control character, which a service file cannot carry; rename it."
        )
    return text


def _specifiers(text: str) -> str:
    """``%`` written ``%%``: systemd expands specifiers (%h, %i…) in most values, quoted or not."""
    return text.replace("%", "%%")


def _quoted(word: str, *, dollars: bool = False) -> str:
    """One word in double quotes, read back by systemd as written."""
    escaped = _printable(word).replace("\\", "\\\\").replace('"', '\\"')
    if dollars:  # ExecStart= expands $NAME and ${NAME}; Environment= does not
        escaped = escaped.replace("$", "$$")
    return f'"{_specifiers(escaped)}"'


def _exec_word(word: str) -> str:
    return word if _BARE_WORD.fullmatch(word) else _quoted(word, dollars=True)


def _split(line: str, *, dollars: bool) -> list[str]:
    """The words of a value :func:`_quoted` and :func:`_exec_word` wrote."""
    text = line.replace("%%", "%")
    words: list[str] = []
    at = 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        word: list[str] = []
        if text[at] == '"':
            at += 1
            while at < len(text) and text[at] != '"':
                if text[at] == "\\" and at + 1 < len(text):
                    at += 1
                word.append(text[at])
                at += 1
            if at >= len(text):
                raise ValueError("a quote is not closed")
            at += 1
        else:
            while at < len(text) and not text[at].isspace():
                word.append(text[at])
                at += 1
        joined = "".join(word)
        words.append(joined.replace("$$", "$") if dollars else joined)
    return words
