"""Installing and managing watch services, whichever service manager this platform has.

:func:`service_manager` picks systemd (Linux) or launchd (macOS); both answer the same
:class:`ServiceManager` protocol, so the commands are written once. :func:`plan_service` turns a
command line into the :class:`~fap.client.service.units.WatchService` to install: absolute
paths (a service starts in another directory), the server recorded, a token file checked — and
never a token.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fap.client.service.units import UNIT_SUFFIX, WatchService
from fap.client.session import read_token_file
from fap.client.state import resolve_server
from fap.config import fap_home
from fap.errors import EXIT_FAILURE, FapError, InputError

__all__ = (
    "PLATFORMS",
    "UNKNOWN",
    "Installed",
    "NotStarted",
    "ServiceManager",
    "ask_tool",
    "fap_command",
    "find_installed",
    "last_line",
    "plan_service",
    "run_tool",
    "service_manager",
)

PLATFORMS = ("linux", "macos")
# What a state is called when the service manager cannot be asked.
UNKNOWN = "unknown"


class NotStarted(FapError):
    """The service's file is written, but the service manager did not start it."""

    exit_code = EXIT_FAILURE


@dataclass(frozen=True, slots=True)
class Installed:
    """One installed service: its name (a unit name, a launchd label), its file, what it runs
    (None for a file fap cannot read back)."""

    name: str
    path: Path
    service: WatchService | None


class ServiceManager(Protocol):
    """A per-user service manager: systemd's user instance, or launchd's GUI domain."""

    def render(self, service: WatchService) -> str:
        """The file that runs ``service``, as installing it would write it."""
        ...

    def name_for(self, directory: Path) -> str: ...

    def install(self, service: WatchService) -> Installed:
        """Write the service's file and start it; NotStarted (the file kept) if it cannot."""
        ...

    def installed(self) -> list[Installed]: ...

    def states(self, entries: Sequence[Installed]) -> dict[str, str]:
        """Each service's state by name (``active``, ``inactive``, ``failed``…, or unknown)."""
        ...

    def uninstall(self, entry: Installed) -> None:
        """Stop the service, disable it and remove its file."""
        ...

    def status(self, entries: Sequence[Installed]) -> str: ...

    def logs(self, entry: Installed, *, follow: bool, lines: int) -> int:
        """Show the service's log on this process's stdout; the log tool's exit code."""
        ...


def service_manager(platform: str | None = None) -> ServiceManager:
    """The service manager of ``platform`` (``linux``, ``macos``; default: this machine's)."""
    from fap.client.service.launchd import Launchd
    from fap.client.service.systemd import Systemd

    chosen = platform or _this_platform()
    if chosen == "linux":
        return Systemd.for_user(os.environ)
    if chosen == "macos":
        return Launchd.for_user()
    raise FapError(
        f"fap service installs systemd user units (Linux) and launchd agents (macOS), not "
        f"services on {chosen}; start fap watch DIR with this system's own startup tool."
    )


def plan_service(
    directory: Path,
    *,
    results: Path,
    server: str | None,
    engine: str | None,
    token_file: Path | None,
    environ: Mapping[str, str],
    warn: Callable[[str], None],
) -> WatchService:
    """The service that watches ``directory``: checked now, so that it does not fail at login."""
    directory = _absolute(directory)
    if not directory.is_dir():
        problem = "does not exist" if not directory.exists() else "is not a directory"
        raise InputError(f"{directory} {problem}; fap service install needs a directory.")
    home = fap_home()
    environment: dict[str, str] = {}
    if environ.get("FAP_HOME"):  # the service keeps the journal and the keys this shell uses
        environment["FAP_HOME"] = str(_absolute(home))
    if token_file is not None:
        token_file = _absolute(token_file)
        read_token_file(token_file)  # refused now, in one line, rather than at every login
        environment["FAP_TOKEN_FILE"] = str(token_file)
    elif environ.get("FAP_TOKEN"):
        warn(
            "FAP_TOKEN is not given to the service (a unit file is no place for a token): it "
            "signs in with the keyring (fap login), unless --token-file names a token file."
        )
    return WatchService(
        directory=directory,
        results=_absolute(results),
        command=fap_command(),
        # Written into the unit, so the service keeps its server whatever this shell uses next.
        server=resolve_server(server, home),
        engine=engine,
        environment=environment,
    )


def fap_command(argv0: str | None = None, executable: str | None = None) -> tuple[str, ...]:
    """How a service starts this fap: its ``fap`` script, else this interpreter's ``-m fap``.

    Absolute, but symlinks are not resolved: a virtual environment's python is a symlink out of
    the environment, and only started by its own path does it find the environment's packages.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    candidates: list[str | None] = []
    if Path(argv0).name == "fap":
        candidates.append(argv0 if os.sep in argv0 else shutil.which(argv0))
    if executable:  # ``python -m fap`` (argv[0] is then fap/__main__.py): its script beside it
        candidates.append(str(Path(executable).with_name("fap")))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return (str(_absolute(Path(candidate))),)
    return (str(_absolute(Path(executable))), "-m", "fap")


def find_installed(manager: ServiceManager, target: str) -> Installed:
    """The installed service ``target`` names: its name, as ``list`` shows it, or its folder."""
    entries = manager.installed()
    for entry in entries:
        if target in (entry.name, entry.name.removesuffix(UNIT_SUFFIX)):
            return entry
    directory = _absolute(Path(target).expanduser())
    name = manager.name_for(directory)
    for entry in entries:
        if entry.name == name or (entry.service and entry.service.directory == directory):
            return entry
    raise InputError(f"No fap service watches {target}: fap service list shows the ones installed.")


def ask_tool(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str] | None:
    """Run a service manager's tool to its end, its output captured; None where it is not
    installed. One that does not answer in time counts as one that failed, saying so."""
    try:
        return subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=timeout,
        )
    except FileNotFoundError:
        return None
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(list(argv), 1, "", f"no answer within {timeout:g} s")


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    """What a failed tool said last (its error), short enough for a one-line message."""
    lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    return lines[-1][:200] if lines else f"exit code {done.returncode}"


def run_tool(argv: Sequence[str], *, what: str) -> int:
    """Run a log or status tool on this process's terminal; its exit code."""
    try:
        return subprocess.call(list(argv), stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise FapError(f"{argv[0]} is not installed here, so {what} cannot be shown.") from None


def _this_platform() -> str:
    if sys.platform == "darwin":
        return "macos"
    if sys.platform.startswith("linux"):
        return "linux"
    return sys.platform


def _absolute(path: Path) -> Path:
    """Absolute and without ``..``, but with its symlinks: the folder as the user named it."""
    return Path(os.path.normpath(path.expanduser().absolute()))
