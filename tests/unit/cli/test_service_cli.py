"""``fap service``, run as a user runs it: install, list, status, logs, uninstall.

No user service manager answers here — the tests point systemctl at a bus that is not there, as
in a container or over ssh — so install writes the unit and says how to start it; a test of a
machine without systemctl leaves it off PATH.
"""

from __future__ import annotations

import json
import os
import plistlib
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fap.client.service import unit_name

SERVER = "http://127.0.0.1:8700"
TOKEN = "fap_user_" + "t0k3n" * 8


@dataclass
class Desktop:
    """A user's machine: a home, a config dir, a fap home, and no user service manager."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def units(self) -> Path:
        return self.config / "systemd" / "user"

    @property
    def fap_home(self) -> Path:
        return self.root / "fap-home"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("FAP_", "XDG_", "DBUS_"))
        }
        runtime = self.root / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        return {
            **env,
            "HOME": str(self.root / "home"),
            "XDG_CONFIG_HOME": str(self.config),
            "XDG_RUNTIME_DIR": str(runtime),  # holds no bus: no user manager answers
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={runtime}/no-bus",
            "FAP_HOME": str(self.fap_home),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            **extra,
        }

    def fap(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fap", *args],
            env=self.env(**env),
            cwd=self.root,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir()
        return path


@pytest.fixture
def desktop(tmp_path: Path) -> Desktop:
    (tmp_path / "home").mkdir()
    return Desktop(tmp_path)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("error: "), line
    return line


def test_dry_run_prints_the_unit_and_writes_nothing(desktop: Desktop) -> None:
    inbox = desktop.folder("inbox")
    done = desktop.fap("service", "install", "inbox", "--server", SERVER, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Written by fap service install")
    assert f"watch {inbox} --results {desktop.root / 'results'} --server {SERVER}" in done.stdout
    assert not desktop.config.exists()


def test_dry_run_for_macos_prints_a_plist(desktop: Desktop) -> None:
    inbox = desktop.folder("inbox")
    done = desktop.fap(
        "service", "install", "inbox", "--server", SERVER, "--dry-run", "--platform", "macos"
    )
    assert done.returncode == 0, done.stderr
    plist = plistlib.loads(done.stdout.encode())
    assert plist["ProgramArguments"][-6:] == [
        "watch",
        str(inbox),
        "--results",
        str(desktop.root / "results"),
        "--server",
        SERVER,
    ]
    logs = desktop.root / "home" / "Library" / "Logs" / "fap"
    assert plist["StandardOutPath"] == str(logs / f"{plist['Label']}.log")
    assert not (desktop.root / "home" / "Library").exists()


def test_without_a_user_manager_install_writes_the_unit_and_says_how_to_start_it(
    desktop: Desktop,
) -> None:
    desktop.folder("inbox")
    done = desktop.fap("service", "install", "inbox", "--server", SERVER)

    assert done.returncode == 1
    line = one_error_line(done)
    [unit] = desktop.units.iterdir()
    assert unit.name == unit_name(desktop.root / "inbox")  # escaped as systemd-escape --path
    assert f"Wrote {unit}" in line
    assert f"systemctl --user enable --now '{unit.name}'" in line
    assert stat.S_IMODE(unit.stat().st_mode) == 0o600
    assert stat.S_IMODE(desktop.units.stat().st_mode) == 0o700


def test_without_systemctl_install_writes_the_unit_and_says_so(desktop: Desktop) -> None:
    desktop.folder("inbox")
    empty = desktop.root / "bin"
    empty.mkdir()
    done = desktop.fap("service", "install", "inbox", "--server", SERVER, PATH=str(empty))
    assert done.returncode == 1
    assert "systemctl is not installed here" in one_error_line(done)
    assert len(list(desktop.units.iterdir())) == 1


def test_several_folders_each_get_a_unit_and_list_shows_them(desktop: Desktop) -> None:
    for name in ("inbox", "scans"):
        desktop.folder(name)
        desktop.fap("service", "install", name, "--server", SERVER, "--results", f"out-{name}")
    again = desktop.fap("service", "install", "inbox", "--server", SERVER, "--results", "new")
    assert again.returncode == 1, again.stderr  # written again, still not started

    listed = desktop.fap("service", "list")
    as_json = desktop.fap("service", "list", "--json")

    assert listed.returncode == 0 and as_json.returncode == 0, listed.stderr + as_json.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [row[1:] for row in rows] == [
        [str(desktop.root / "inbox"), str(desktop.root / "new"), SERVER, "unknown"],
        [str(desktop.root / "scans"), str(desktop.root / "out-scans"), SERVER, "unknown"],
    ]
    services = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [s["name"] for s in services] == [row[0] for row in rows]
    assert all(Path(s["file"]).parent == desktop.units for s in services)


def test_uninstall_by_folder_or_by_name_removes_the_unit(desktop: Desktop) -> None:
    for name in ("inbox", "scans"):
        desktop.folder(name)
        desktop.fap("service", "install", name, "--server", SERVER)
    [inbox_unit, scans_unit] = sorted(desktop.units.iterdir())

    by_folder = desktop.fap("service", "uninstall", str(desktop.root / "inbox"))
    by_name = desktop.fap("service", "uninstall", scans_unit.name.removesuffix(".service"))

    assert by_folder.returncode == 0, by_folder.stderr
    assert by_folder.stdout == f"removed {inbox_unit.name}\n"
    assert by_name.returncode == 0, by_name.stderr
    assert list(desktop.units.iterdir()) == []
    assert desktop.fap("service", "list").stdout == ""


@pytest.mark.parametrize("command", ["uninstall", "status", "logs"])
def test_a_folder_with_no_service_is_one_line_and_exit_3(desktop: Desktop, command: str) -> None:
    desktop.folder("inbox")
    done = desktop.fap("service", command, "inbox")
    assert done.returncode == 3
    assert "No fap service watches inbox" in one_error_line(done)


def test_status_without_a_user_manager_is_one_line(desktop: Desktop) -> None:
    desktop.folder("inbox")
    desktop.fap("service", "install", "inbox", "--server", SERVER)
    done = desktop.fap("service", "status", "inbox")
    assert done.returncode == 1
    assert "reaches no user service manager" in one_error_line(done)
    nothing = Desktop(desktop.root / "other")
    (nothing.root / "home").mkdir(parents=True)
    empty = nothing.fap("service", "status")
    assert (empty.returncode, empty.stdout) == (0, "No fap service is installed.\n")


def test_install_refuses_a_missing_folder_and_a_bad_token_file(desktop: Desktop) -> None:
    missing = desktop.fap("service", "install", "nowhere", "--server", SERVER)
    assert missing.returncode == 3
    assert "nowhere does not exist" in one_error_line(missing)

    desktop.folder("inbox")
    token = desktop.root / "api.token"
    token.write_text(TOKEN)
    token.chmod(0o644)
    open_file = desktop.fap(
        "service", "install", "inbox", "--server", SERVER, "--token-file", str(token)
    )
    no_file = desktop.fap(
        "service", "install", "inbox", "--server", SERVER, "--token-file", "absent.token"
    )

    assert open_file.returncode == 3
    assert f"run chmod 600 {token}" in one_error_line(open_file)
    assert no_file.returncode == 3
    assert "does not exist" in one_error_line(no_file)
    assert not desktop.config.exists()


def test_install_needs_a_server(desktop: Desktop) -> None:
    desktop.folder("inbox")
    done = desktop.fap("service", "install", "inbox")
    assert done.returncode == 3
    assert "--server URL" in one_error_line(done)


def test_the_token_stays_out_of_the_unit_whatever_the_environment_holds(
    desktop: Desktop,
) -> None:
    desktop.folder("inbox")
    token = desktop.root / "api.token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    with_env = desktop.fap("service", "install", "inbox", "--server", SERVER, FAP_TOKEN=TOKEN)
    assert "warning: FAP_TOKEN is not given to the service" in with_env.stderr
    desktop.fap("service", "install", "inbox", "--server", SERVER, FAP_TOKEN_FILE=str(token))

    [unit] = desktop.units.iterdir()
    text = unit.read_text()
    assert TOKEN not in text and TOKEN not in with_env.stdout + with_env.stderr
    assert f'Environment="FAP_TOKEN_FILE={token}"' in text


def test_an_unknown_platform_is_a_usage_error(desktop: Desktop) -> None:
    done = desktop.fap("service", "list", "--platform", "windows")
    assert done.returncode == 2
    assert "'windows' is not one of linux, macos" in done.stderr
