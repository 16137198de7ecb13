"""systemd's user instance: one unit per watched folder in ``~/.config/systemd/user``.

Every change goes through ``systemctl --user``, which talks to the user's own service manager.
Where there is none — a container, CI, an ssh session on a machine without lingering — units
are still written and read, and what needs the manager says so in one line.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fap.client.private import write_private_text
from fap.client.service.manager import (
    UNKNOWN,
    Installed,
    NotStarted,
    ask_tool,
    last_line,
    run_tool,
)
from fap.client.service.units import (
    UNIT_PREFIX,
    UNIT_SUFFIX,
    WatchService,
    read_unit,
    systemd_unit,
    unit_name,
)
from fap.errors import FapError

__all__ = ("Systemd", "user_unit_dir")

# Restarting a unit waits for the old watcher to stop, which finishes or checkpoints its
# in-flight chunks first (10 s at most), then for the new one to start.
_SYSTEMCTL_SECONDS = 120.0
# What ``systemctl is-active`` answers for a unit the manager knows.
_STATES = frozenset(
    {
        "active",
        "activating",
        "deactivating",
        "failed",
        "inactive",
        "maintenance",
        "refreshing",
        "reloading",
    }
)


def user_unit_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/systemd/user``, where systemd looks for a user's own units."""
    config = Path(environ.get("XDG_CONFIG_HOME", ""))
    if not config.is_absolute():  # the XDG spec ignores a relative one
        home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
        config = home / ".config"
    return config / "systemd" / "user"


@dataclass(frozen=True, slots=True)
class Systemd:
    unit_dir: Path

    @classmethod
    def for_user(cls, environ: Mapping[str, str]) -> Systemd:
        return cls(user_unit_dir(environ))

    def render(self, service: WatchService) -> str:
        return systemd_unit(service)

    def name_for(self, directory: Path) -> str:
        return unit_name(directory)

    def install(self, service: WatchService) -> Installed:
        name = unit_name(service.directory)
        path = self.unit_dir / name
        try:
            write_private_text(path, systemd_unit(service))
        except OSError as error:
            raise FapError(f"The unit {path} cannot be written: {error.strerror}.") from None
        # restart, not start: a unit installed again must run its new command line.
        for args in (("daemon-reload",), ("enable", name), ("restart", name)):
            done = _systemctl(*args)
            if done is None or done.returncode != 0:
                why = (
                    "systemctl is not installed here"
                    if done is None
                    else f"systemctl --user {args[0]} failed ({last_line(done)})"
                )
                raise NotStarted(
                    f"Wrote {path}, but {why}; start it in your login session with: "
                    f"systemctl --user daemon-reload && systemctl --user enable --now "
                    f"{shlex.quote(name)}"
                )
        return Installed(name, path, service)

    def installed(self) -> list[Installed]:
        entries = []
        for path in sorted(self.unit_dir.glob(f"{UNIT_PREFIX}*{UNIT_SUFFIX}")):
            try:
                service: WatchService | None = read_unit(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError):
                service = None  # listed all the same, so that it can be uninstalled
            entries.append(Installed(path.name, path, service))
        return entries

    def states(self, entries: Sequence[Installed]) -> dict[str, str]:
        names = [entry.name for entry in entries]
        if not names:
            return {}
        done = _systemctl("is-active", *names)
        words = done.stdout.split() if done is not None else []
        if len(words) != len(names) or not set(words) <= _STATES:
            return dict.fromkeys(names, UNKNOWN)
        return dict(zip(names, words, strict=True))

    def uninstall(self, entry: Installed) -> None:
        done = _systemctl("disable", "--now", entry.name)
        # With no manager to ask, nothing runs the unit: removing its file is all there is to do.
        if done is not None and done.returncode != 0 and self._unreachable() is None:
            raise FapError(
                f"systemctl --user could not stop {entry.name} ({last_line(done)}); its unit "
                f"{entry.path} is kept."
            )
        try:
            entry.path.unlink(missing_ok=True)
        except OSError as error:
            raise FapError(f"The unit {entry.path} cannot be removed: {error.strerror}.") from None
        _systemctl("reset-failed", entry.name)  # a unit that had failed would stay listed
        _systemctl("daemon-reload")

    def status(self, entries: Sequence[Installed]) -> str:
        names = [entry.name for entry in entries]
        if problem := self._unreachable():
            raise FapError(f"{problem}, so the state of {', '.join(names)} is unknown.")
        done = _systemctl("status", "--no-pager", "--full", *names)
        assert done is not None  # _unreachable found systemctl
        # systemctl status exits 3 for a unit that is not running: a state, not a failure.
        if done.returncode not in (0, 3) or not done.stdout.strip():
            raise FapError(f"systemctl --user status failed ({last_line(done)}).")
        return done.stdout

    def logs(self, entry: Installed, *, follow: bool, lines: int) -> int:
        argv = ["journalctl", "--user", "--unit", entry.name, "--lines", str(lines), "--no-pager"]
        if follow:
            argv.append("--follow")
        return run_tool(argv, what=f"the log of {entry.name}")

    def _unreachable(self) -> str | None:
        """Why systemctl cannot reach the user's service manager; None when it can."""
        done = _systemctl("is-system-running")
        if done is None:
            return "systemctl is not installed here"
        # Anything but "offline" (running, degraded, starting…) is a manager that answered.
        if done.stdout.strip() in ("", "offline"):
            return f"systemctl --user reaches no user service manager ({last_line(done)})"
        return None


def _systemctl(*args: str) -> subprocess.CompletedProcess[str] | None:
    return ask_tool(["systemctl", "--user", *args], _SYSTEMCTL_SECONDS)
