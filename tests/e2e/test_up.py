"""``fap up``: the whole pipeline on one machine, stopped cleanly by Ctrl-C; the user's lines
readable, the children's log in its file."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
import subprocess
from pathlib import Path

import httpx

from tests.support.processes import FapProcess, fap_argv, free_port, wait_until

# What starts every line of a role's log (fap.logs): its time.
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def _processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


def test_up_processes_dropped_files_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    inbox, results, data = tmp_path / "inbox", tmp_path / "results", tmp_path / "data"
    port = free_port()
    up = FapProcess(
        argv=fap_argv(
            "up",
            str(inbox),
            "--results",
            str(results),
            "--data-dir",
            str(data),
            "--port",
            str(port),
        ),
        log_path=tmp_path / "up-output.log",  # what the user sees, stdout and stderr
        env={
            "FAP_HOME": str(tmp_path / "home"),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        },
    ).start()
    try:
        wait_until(inbox.is_dir, 60, "fap up to create the inbox")
        wait_until(
            lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 60, "the server to be ready"
        )
        dropped = inbox / "reports" / "q4 summary.txt"
        dropped.parent.mkdir()
        dropped.write_bytes(b"revenue up, costs down\n" * 1000)
        result_path = results / "reports" / "q4 summary.txt.result.json"
        wait_until(result_path.exists, 120, f"the result to appear\n{up.log()}", interval=0.2)
        result = json.loads(result_path.read_text())
        assert result["sha256"] == hashlib.sha256(dropped.read_bytes()).hexdigest()
        server_url = f"127.0.0.1:{port}"
        assert len(_processes_mentioning(str(data))) >= 2  # fap up and its server
        assert len(_processes_mentioning(server_url)) >= 2  # its worker and its watcher
        wait_until(lambda: "workers online: 1" in up.log(), 60, f"the worker online\n{up.log()}")

        os.kill(up.pid, signal.SIGINT)  # Ctrl-C reaches the foreground process: fap up alone
        assert up.process is not None
        assert up.process.wait(timeout=60) == 0, up.log()
        assert "Traceback" not in up.log()
        assert not _answers(f"http://127.0.0.1:{port}/healthz")
        shown = up.log()
        children_log = tmp_path / "home" / "up.log"
        assert shown.count(str(children_log)) == 1  # where the log is, said once at the start
        assert f"fap is up: drop files into {inbox}, results appear in {results}" in shown
        assert f"{dropped}: done, result in {result_path}" in shown
        # A child's warning reaches the user in one line; its log lines do not.
        assert "watcher: warning: no OS keyring is available" in shown
        assert "INFO" not in shown
        assert not TIMESTAMP.search(shown), shown
        logged = children_log.read_text()
        assert stat.S_IMODE(children_log.stat().st_mode) == 0o600
        for child in ("server", "worker", "watcher"):
            assert re.search(rf"^{child}: ", logged, re.MULTILINE), child
        assert re.search(r"^server: \S+ \S+ INFO ", logged, re.MULTILINE)
        assert '"event"' not in logged  # the watcher's events went to the view
        wait_until(
            lambda: not _processes_mentioning(str(data)) and not _processes_mentioning(server_url),
            10,
            "every child of fap up to be gone",
        )
    finally:
        up.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_a_server_that_cannot_start_is_one_line_and_its_log_is_kept(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    log_file = tmp_path / "logs" / "fap-up.log"
    done = subprocess.run(
        fap_argv(
            "up",
            str(tmp_path / "inbox"),
            "--results",
            str(tmp_path / "results"),
            "--data-dir",
            str(blocker / "data"),
            "--port",
            str(free_port()),
            "--log-file",
            str(log_file),
        ),
        env={
            **os.environ,
            "FAP_HOME": str(tmp_path / "home"),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        },
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )

    assert done.returncode == 1, done.stderr
    said, error = done.stderr.splitlines()
    assert said == f"fap up: the server, worker and watcher log to {log_file}"
    assert error.startswith("error: The server could not start: The data directory ")
    assert "Not a directory" in error
    assert done.stdout == ""
    logged = log_file.read_text()
    assert "server: error: The data directory " in logged
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(log_file.parent.stat().st_mode) == 0o700
