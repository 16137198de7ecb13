"""``fap up``: the whole pipeline on one machine, stopped cleanly by Ctrl-C."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import httpx

from tests.support.processes import FapProcess, fap_argv, free_port, wait_until


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
        log_path=tmp_path / "up.log",
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

        os.kill(up.pid, signal.SIGINT)  # Ctrl-C reaches the foreground process: fap up alone
        assert up.process is not None
        assert up.process.wait(timeout=60) == 0, up.log()
        assert "Traceback" not in up.log()
        assert not _answers(f"http://127.0.0.1:{port}/healthz")
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
