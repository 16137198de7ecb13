"""What a run leaves behind: no secret in any log at the most verbose level, and every directory
fap creates 0700, every file 0600 — client state, server data and the worker's engine socket."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx

from fap.api import UPLOAD_RESULT
from tests.e2e.conftest import Pipeline, server_log_tail
from tests.support.permissions import loose_modes
from tests.support.processes import FapProcess, fap_argv, free_port, wait_until
from tests.support.secrets_scan import SecretScan, logs_under

MiB = 1024 * 1024


def _files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    files = {
        "small.txt": b"a few words\n",
        "empty.bin": b"",
        "two-chunks.bin": os.urandom(9 * MiB),  # more than the 8 MiB chunk: several blob URLs
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return sorted(folder.iterdir())


def test_no_log_of_any_role_holds_a_secret_even_at_debug_level(
    pipeline: Pipeline, tmp_path: Path, secret_scan: SecretScan
) -> None:
    # The fixture runs serve and work with --verbose; the client commands are told here.
    worker = pipeline.start_worker()
    uploaded = _files(tmp_path / "upload")
    done = pipeline.fap(
        "upload", "--verbose", *map(str, uploaded), "--results", str(tmp_path / "r1")
    )
    assert done.returncode == 0, done.stderr + server_log_tail(pipeline)
    _files(tmp_path / "inbox")
    done = pipeline.fap(
        "watch", "--verbose", str(tmp_path / "inbox"), "--results", str(tmp_path / "r2"), "--once"
    )
    assert done.returncode == 0, done.stderr + server_log_tail(pipeline)
    # A signature the server certainly saw: a result URL fetched through it (or its bucket).
    with pipeline.api() as api:
        uploads = api.get("/v1/uploads").json()["uploads"]
        result = api.get(UPLOAD_RESULT.format(upload_id=uploads[0]["id"])).json()
    assert httpx.get(result["url"], timeout=30).status_code == 200
    secret_scan.add_url(result["url"], "a result URL the test fetched")
    worker.stop()
    pipeline.server.stop()  # every line written

    secret_scan.add_tree(tmp_path)
    if pipeline.db_url:
        secret_scan.add_database(pipeline.db_url)
    if pipeline.storage:
        secret_scan.add_env(pipeline.storage.env)
    known = set(secret_scan.secrets.values())
    # The scan can fail: it knows the run's lease tokens, tokens and a signature...
    assert "a lease token" in known
    assert {"the contents of local-owner.token", "the contents of local-processor.token"} <= known
    assert any(what.startswith("the sig") or "Signature" in what for what in known), known
    logs = logs_under(tmp_path)
    # ...and it reads logs that name every blob request: the server's access log, at least.
    if not pipeline.storage:
        assert "/blobs/uploads/" in pipeline.server.log()
    assert "DEBUG" in worker.log()
    assert sum("upload" in name or "watch" in name for name in logs) >= 2, sorted(logs)
    secret_scan.check(logs)


def test_everything_fap_creates_is_private_to_its_user(pipeline: Pipeline, tmp_path: Path) -> None:
    # A FAP_HOME fap makes itself (the fixture's exists already, with the umask's mode).
    pipeline.home = tmp_path / "fresh-home"
    worker = pipeline.start_worker()
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    _files(inbox)
    done = pipeline.fap("watch", str(inbox), "--results", str(results), "--once")
    assert done.returncode == 0, done.stderr + server_log_tail(pipeline)
    sockets = _engine_socket_dirs(worker)
    assert sockets, "the worker's engine socket was not found"

    loose = loose_modes(pipeline.home, pipeline.server.data_dir, *sockets)
    assert not loose, "\n".join(loose)
    # What the user chose is theirs: the results dir keeps the umask's mode, and so on.
    assert results.is_dir() and inbox.is_dir()


def _engine_socket_dirs(worker: FapProcess) -> list[Path]:
    """The directories of the sockets the worker's engines listen on (while it runs)."""
    found: list[Path] = []

    def look() -> bool:
        # The worker's descendants: its engines run in sessions of their own (the sandbox's).
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parents[int(entry.name)] = int(
                        (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                    )
                except (OSError, IndexError, ValueError):
                    continue
        for pid in parents:
            ancestor = parents.get(pid)
            while ancestor is not None and ancestor != worker.pid and ancestor > 1:
                ancestor = parents.get(ancestor)
            if ancestor != worker.pid:
                continue
            try:
                environ = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for item in environ:
                if item.startswith(b"FAP_ENGINE_SOCKET="):
                    found.append(Path(item.split(b"=", 1)[1].decode()).parent)
        return bool(found)

    wait_until(look, 30, "the worker's engines to be found")
    return sorted(set(found))


def test_fap_up_verbose_logs_no_secret_and_leaves_private_state(
    tmp_path: Path, secret_scan: SecretScan
) -> None:
    inbox, results, data, home = (tmp_path / n for n in ("inbox", "results", "data", "home"))
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
            "--verbose",
        ),
        log_path=tmp_path / "up.log",
        env={"FAP_HOME": str(home), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"},
    ).start()
    try:
        wait_until(inbox.is_dir, 60, f"fap up to create the inbox\n{up.log()}")
        (inbox / "note.txt").write_bytes(b"a note\n" * 100)
        result = results / "note.txt.result.json"
        wait_until(result.exists, 120, f"the result\n{up.log()}", interval=0.2)
        assert json.loads(result.read_text())["bytes"] == 700
        os.kill(up.pid, signal.SIGINT)
        assert up.process is not None
        assert up.process.wait(timeout=60) == 0, up.log()
    finally:
        up.stop()
    assert "DEBUG fap." in up.log()  # every child logged at debug level, into this one log
    # The autouse scan reads up.log at teardown; here as well, so this test says it itself.
    secret_scan.add_tree(tmp_path)
    secret_scan.check(logs_under(tmp_path))
    loose = loose_modes(home, data)
    assert not loose, "\n".join(loose)
