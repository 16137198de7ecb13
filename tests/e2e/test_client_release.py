"""A newer client release, as a user meets it: the server advertises the one its operator names
(``fap serve --client-latest``), and the CLI says so on stderr, once a day at most, never
in its --json output. (It never updates itself: no code of fap installs anything.)"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

from fap import __version__
from fap.api import CLIENT_LATEST_HEADER
from fap.client.releases import NOTICE_FILE
from tests.support.processes import ServerProcess, fap_argv


def run_fap(server: ServerProcess, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FAP_HOME": str(home),
        "FAP_SERVER": server.url,
        "FAP_TOKEN": server.owner_token,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    env.pop("FAP_ORG", None)
    return subprocess.run(
        fap_argv(*args), env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_cli_tells_of_a_newer_release_once_a_day(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    server = start_server("--client-latest", "99.0.0")
    assert httpx.get(f"{server.url}/healthz").headers[CLIENT_LATEST_HEADER] == "99.0.0"
    home = tmp_path / "home"

    first = run_fap(server, home, "status", "--json")
    assert first.returncode == 0, first.stderr
    json.loads(first.stdout)  # stdout is the report alone
    notices = [line for line in first.stderr.splitlines() if "99.0.0" in line]
    assert notices == [
        f"warning: fap 99.0.0 is out (this is {__version__}); upgrade when it suits you: fap "
        "never updates itself."
    ]
    assert oct((home / NOTICE_FILE).stat().st_mode & 0o777) == "0o600"

    again = run_fap(server, home, "org", "show")
    assert again.returncode == 0, again.stderr
    assert "99.0.0" not in again.stderr  # told today already


def test_a_server_of_the_same_release_announces_nothing(
    server: ServerProcess, tmp_path: Path
) -> None:
    done = run_fap(server, tmp_path / "home", "status")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert not (tmp_path / "home" / NOTICE_FILE).exists()
