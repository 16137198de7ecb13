"""launchd's GUI domain: one agent per watched folder in ``~/Library/LaunchAgents``.

Agents are loaded into ``gui/<uid>``, the domain of the user's login session, with
``launchctl bootstrap`` (``load -w`` on a macOS that predates it); their output goes to one log
file each under ``~/Library/Logs/fap``.
"""

from __future__ import annotations

import os
import plistlib
import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fap.client.private import make_private_dir, write_private_text
from fap.client.service.manager import (
    UNKNOWN,
    Installed,
    NotStarted,
    ask_tool,
    last_line,
    run_tool,
)
from fap.client.service.units import (
    LABEL_PREFIX,
    WatchService,
    launchd_label,
    launchd_plist,
    plist_text,
    read_plist,
)
from fap.errors import FapError

__all__ = ("Launchd",)

_LAUNCHCTL_SECONDS = 60.0
# ``launchctl print`` describes the service first, its sub-sections after: the first of each
# line is the service's own.
_STATE = re.compile(r"^\s*state = (.+)$", re.MULTILINE)
_LAST_EXIT = re.compile(r"^\s*last exit code = (.+)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Launchd:
    agents_dir: Path
    logs_dir: Path
    uid: int

    @classmethod
    def for_user(cls, home: Path | None = None) -> Launchd:
        home = home or Path.home()
        library = home / "Library"
        return cls(library / "LaunchAgents", library / "Logs" / "fap", os.getuid())

    def log_file(self, label: str) -> Path:
        return self.logs_dir / f"{label}.log"

    def render(self, service: WatchService) -> str:
        label = launchd_label(service.directory)
        return plist_text(launchd_plist(service, self.log_file(label)))

    def name_for(self, directory: Path) -> str:
        return launchd_label(directory)

    def install(self, service: WatchService) -> Installed:
        label = launchd_label(service.directory)
        path = self.agents_dir / f"{label}.plist"
        try:
            make_private_dir(self.logs_dir)
            write_private_text(path, self.render(service))
        except OSError as error:
            raise FapError(f"The agent {path} cannot be written: {error.strerror}.") from None
        # A loaded agent keeps the arguments it was loaded with: out first, then in again.
        _launchctl("bootout", f"{self._domain}/{label}")
        done = _launchctl("bootstrap", self._domain, str(path))
        if done is not None and done.returncode != 0:
            done = _launchctl("load", "-w", str(path))
        if done is None or done.returncode != 0:
            why = (
                "launchctl is not installed here"
                if done is None
                else f"launchctl could not load it ({last_line(done)})"
            )
            raise NotStarted(
                f"Wrote {path}, but {why}; start it in your login session with: "
                f"launchctl bootstrap {self._domain} {shlex.quote(str(path))}"
            )
        return Installed(label, path, service)

    def installed(self) -> list[Installed]:
        entries = []
        for path in sorted(self.agents_dir.glob(f"{LABEL_PREFIX}*.plist")):
            try:
                with path.open("rb") as handle:
                    service: WatchService | None = read_plist(plistlib.load(handle))
            except (OSError, ValueError, plistlib.InvalidFileException):
                service = None  # listed all the same, so that it can be uninstalled
            entries.append(Installed(path.name.removesuffix(".plist"), path, service))
        return entries

    def states(self, entries: Sequence[Installed]) -> dict[str, str]:
        return {entry.name: self._state(entry.name)[0] for entry in entries}

    def uninstall(self, entry: Installed) -> None:
        done = _launchctl("bootout", f"{self._domain}/{entry.name}")
        if done is not None and done.returncode != 0:
            _launchctl("unload", "-w", str(entry.path))  # not loaded at all is fine too
        try:
            entry.path.unlink(missing_ok=True)
        except OSError as error:
            raise FapError(f"The agent {entry.path} cannot be removed: {error.strerror}.") from None

    def status(self, entries: Sequence[Installed]) -> str:
        blocks = []
        for entry in entries:
            state, last_exit = self._state(entry.name)
            service = entry.service
            fields = [
                ("file", str(entry.path)),
                ("watches", str(service.directory) if service else "-"),
                ("results", str(service.results) if service else "-"),
                ("server", (service.server if service else None) or "-"),
                ("state", state),
                ("last exit code", last_exit or "-"),
                ("log", str(self.log_file(entry.name))),
            ]
            blocks.append("\n".join([entry.name, *(f"  {k}: {v}" for k, v in fields)]))
        return "\n\n".join(blocks) + "\n"

    def logs(self, entry: Installed, *, follow: bool, lines: int) -> int:
        log = self.log_file(entry.name)
        if not log.exists():
            raise FapError(f"{entry.name} has written no log yet: {log} does not exist.")
        argv = ["tail", "-n", str(lines), *(["-f"] if follow else []), str(log)]
        return run_tool(argv, what=f"the log of {entry.name}")

    @property
    def _domain(self) -> str:
        return f"gui/{self.uid}"

    def _state(self, label: str) -> tuple[str, str | None]:
        """``active``, ``inactive`` (not loaded or not running) or unknown; the last exit code."""
        done = _launchctl("print", f"{self._domain}/{label}")
        if done is None:
            return UNKNOWN, None
        if done.returncode != 0:
            return "inactive", None
        state, last_exit = _STATE.search(done.stdout), _LAST_EXIT.search(done.stdout)
        if state is None:
            return UNKNOWN, None
        word = "active" if state[1].strip() == "running" else "inactive"
        return word, last_exit[1].strip() if last_exit else None


def _launchctl(*args: str) -> subprocess.CompletedProcess[str] | None:
    return ask_tool(["launchctl", *args], _LAUNCHCTL_SECONDS)
