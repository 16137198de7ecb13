"""``fap doctor`` as a user runs it, against a real ``fap serve``: a ready desktop passes, a bad
token fails with the server's reason, and with no server the checks that need one are skipped."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fap.errors import EXIT_AUTH, EXIT_UNREACHABLE
from tests.support.processes import ServerProcess, fap_argv, free_port

pytestmark = pytest.mark.e2e

ORDER = ["config", "server", "token", "device key", "clock", "keyring", "disk space", "watchers"]


def fap(tmp_path: Path, *args: str, token: str) -> subprocess.CompletedProcess[str]:
    """One command off a terminal, in a desktop of its own: a fap home, a user's home with no
    watcher service, no OS keyring."""
    user = tmp_path / "user"
    user.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "HOME": str(user),
        "FAP_HOME": str(tmp_path / "fap-home"),
        "FAP_TOKEN": token,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    for name in ("XDG_CONFIG_HOME", "FAP_SERVER", "FAP_ORG", "FAP_TOKEN_FILE", "FAP_RESULTS"):
        env.pop(name, None)
    done = subprocess.run(
        fap_argv(*args),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    # Its stderr is its log: the e2e secret scan reads it with the server's.
    number = len(list(tmp_path.glob("client-*.log")))
    (tmp_path / f"client-{number}-{args[0]}.log").write_text(done.stderr)
    return done


def checks(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["check"] for line in lines] == ORDER, done.stdout
    return {line["check"]: line for line in lines}


def test_a_ready_desktop_passes(tmp_path: Path, server: ServerProcess) -> None:
    token = server.owner_token
    (tmp_path / "report.txt").write_text("figures\n")
    # The first upload makes this device's key and registers it; no worker is needed for that.
    sent = fap(tmp_path, "upload", "report.txt", "--no-wait", "--server", server.url, token=token)
    assert sent.returncode == 0, sent.stderr

    done = fap(tmp_path, "doctor", "--json", "--server", server.url, token=token)
    assert done.returncode == 0, done.stdout + done.stderr
    found = checks(done)
    # No OS keyring here, as on a headless box: fap works, and says where its secrets went.
    assert found.pop("keyring")["outcome"] == "warning"
    assert {name: check["outcome"] for name, check in found.items()} == dict.fromkeys(
        found, "ok"
    ), done.stdout
    assert found["server"]["detail"].startswith(f"{server.url} answers in API ")
    assert "local: owner" in found["token"]["detail"]
    assert found["device key"]["detail"].startswith("registered as ")
    assert found["clock"]["detail"].startswith("within ")  # uvicorn's Date header
    assert done.stderr == ""

    plain = fap(tmp_path, "doctor", "--server", server.url, token=token)
    assert plain.returncode == 0
    assert [line.split()[0] for line in plain.stdout.splitlines()] == [
        "warning" if name == "keyring" else "ok" for name in ORDER
    ]


def test_a_bad_token_fails_with_the_reason(tmp_path: Path, server: ServerProcess) -> None:
    wrong = "fap_user_" + "q" * 40
    done = fap(tmp_path, "doctor", "--json", "--server", server.url, token=wrong)
    assert done.returncode == EXIT_AUTH, done.stdout + done.stderr
    found = checks(done)
    assert found["server"]["outcome"] == "ok"
    assert found["token"]["outcome"] == "failed"
    assert "did not accept the token" in found["token"]["detail"]
    assert found["device key"] == {
        "check": "device key",
        "outcome": "skipped",
        "detail": "needs a token the server takes",
    }
    assert wrong not in done.stdout + done.stderr


def test_no_server_fails_reachable_and_skips_the_rest(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = fap(
        tmp_path, "doctor", "--server", url, "--retry-for", "0", token="fap_user_" + "q" * 40
    )
    assert done.returncode == EXIT_UNREACHABLE, done.stdout + done.stderr
    rows = done.stdout.splitlines()
    assert rows[1].startswith(f"failed   server      {url} did not answer")
    assert rows[2:5] == [
        "skipped  token       needs the server",
        "skipped  device key  needs the server",
        "skipped  clock       needs the server",
    ]
    assert "Traceback" not in done.stderr
