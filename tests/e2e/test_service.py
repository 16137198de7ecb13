"""``fap service install``: the command line its unit runs is a real ``fap watch`` that uploads
files and writes their results, signed in with the token file the unit names and nothing else."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Pipeline, server_log_tail
from tests.support.processes import FapProcess, fap_argv, wait_until
from tests.support.secrets_scan import SecretScan
from tests.unit.client.test_service_units import AWKWARD, unit_command

# The service needs no server of its own kind: the embedded one is enough.
embedded = pytest.mark.parametrize("pipeline", ["embedded"], indirect=True)


def _desktop_env(pipeline: Pipeline, tmp_path: Path) -> dict[str, str]:
    """A login shell's environment with no token in it, and no user service manager to reach."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAP_", "XDG_", "DBUS_"))}
    return {
        **env,
        **pipeline.env,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_RUNTIME_DIR": str(runtime),
        "DBUS_SESSION_BUS_ADDRESS": f"unix:path={runtime}/no-bus",
    }


def _token_file(pipeline: Pipeline, tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "api.token"  # a *.token: the secret scan looks for its contents in logs
    path.write_text(pipeline.server.owner_token + "\n")
    path.chmod(mode)
    return path


@embedded
def test_the_command_line_of_an_installed_unit_watches_uploads_and_writes_results(
    pipeline: Pipeline, tmp_path: Path, secret_scan: SecretScan, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("FAP_TOKEN", "FAP_SERVER", "FAP_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)  # the watcher gets the unit's environment only
    pipeline.start_worker()
    inbox, results = tmp_path / AWKWARD, tmp_path / "results"
    inbox.mkdir()
    token_file = _token_file(pipeline, tmp_path, 0o600)

    install = subprocess.run(
        fap_argv(
            "service",
            "install",
            str(inbox),
            "--results",
            str(results),
            "--server",
            pipeline.server.url,
            "--token-file",
            str(token_file),
        ),
        env=_desktop_env(pipeline, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    (tmp_path / "service-install.log").write_text(install.stdout + install.stderr)

    # No user service manager here: the unit is written, and the one line says how to start it.
    assert install.returncode == 1, install.stderr
    assert "systemctl --user enable --now" in install.stderr
    [unit] = (tmp_path / "config" / "systemd" / "user").glob("fap-watch@*.service")
    text = unit.read_text()
    assert secret_scan.leaks(unit.name, text) == []
    assert pipeline.server.owner_token not in text
    argv, environment = unit_command(text)
    assert environment == {"FAP_HOME": str(pipeline.home), "FAP_TOKEN_FILE": str(token_file)}
    assert argv[1:3] == ["watch", str(inbox)]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # What systemd would start: that program, those arguments, that environment (besides the
    # keyring this machine lacks, as the user manager would pass the session's).
    watcher = FapProcess(
        argv=argv,
        log_path=tmp_path / "service-watch.log",
        env={**environment, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"},
        cwd=elsewhere,  # a service starts in the user's home: nothing is relative to the install
    ).start()
    try:
        report = inbox / "report.csv"
        report.write_text("a,b\n1,2\n")
        result = results / "report.csv.result.json"
        wait_until(
            result.exists,
            120,
            f"{result.name}\n{watcher.log()}\n{server_log_tail(pipeline)}",
            interval=0.2,
        )
        assert (
            json.loads(result.read_text())["sha256"]
            == hashlib.sha256(report.read_bytes()).hexdigest()
        )
        assert watcher.alive(), watcher.log()
    finally:
        watcher.stop()


@embedded
def test_a_token_file_others_can_read_is_refused_before_anything_is_sent(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAP_TOKEN_FILE", raising=False)
    token_file = _token_file(pipeline, tmp_path, 0o640)
    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n")
    env = {
        **_desktop_env(pipeline, tmp_path),
        "FAP_SERVER": pipeline.server.url,
        "FAP_TOKEN_FILE": str(token_file),
    }

    def upload() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            fap_argv("upload", str(report), "--no-wait"),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    refused = upload()
    (tmp_path / "client-refused.log").write_text(refused.stderr)

    assert refused.returncode == 3
    assert refused.stderr.splitlines() == [
        f"error: The token file {token_file} is open to other users (mode 0640): "
        f"run chmod 600 {token_file}."
    ]
    with pipeline.api() as api:
        assert api.get("/v1/uploads").json()["uploads"] == []

    token_file.chmod(0o600)
    accepted = upload()
    (tmp_path / "client-accepted.log").write_text(accepted.stderr)
    assert accepted.returncode == 0, accepted.stderr + server_log_tail(pipeline)
