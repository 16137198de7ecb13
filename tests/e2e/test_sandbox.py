"""The engine sandbox against engines that attack their processor (docs/sandbox.md).

A real ``fap work`` runs a real ``fap engine`` whose analyzer (``tests.e2e.hostile``) attacks by
the file's name: it phones home over the loopback, looks for the processor's token and home,
allocates without end, loops forever, forks without end, answers too much. Each job ends with a
reason that names what it met, nothing of the processor's leaks into a result or a log, and the
worker goes on: a plain file after the hostile ones gets its result.

The limits are small (256 MiB, 2 s of CPU, 1 MiB of result), so the attacks end in seconds. The
sandbox is required (``--require-sandbox``): where bubblewrap is missing the worker refuses to
start, and the test fails — in CI always; on a developer's machine without bubblewrap it skips.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, VERBOSE, Pipeline, server_log_tail
from tests.support.engine_sandbox import engine_flags
from tests.support.processes import FapProcess, fap_argv
from tests.support.unprivileged import as_nobody, nobody

# One backend is enough: the sandbox is the worker's, the same whatever the server stores in.
pytestmark = pytest.mark.parametrize("pipeline", ["embedded"], indirect=True)

HOSTILE = "tests.e2e.hostile:by_name"
ENGINE = "hostile@1"
LIMITS = (
    "--engine-memory",
    "256M",
    "--engine-cpu-seconds",
    "2",
    "--result-max-bytes",
    "1M",
    "--job-timeout",
    "60",
    "--require-sandbox",
)


@pytest.fixture(autouse=True)
def bubblewrap() -> None:
    if shutil.which("bwrap") is None:
        message = "bubblewrap is not installed: run scripts/install-system-deps.sh as root"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP server on the processor's loopback, which no engine may reach."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        yield server


def _nothing_came(listener: socket.socket) -> bool:
    try:
        connection, _ = listener.accept()
    except BlockingIOError:
        return True
    connection.close()
    return False


def _worker(
    pipe: Pipeline,
    *extra: str,
    env: dict[str, str],
    engine: list[str] | None = None,
    nobody: bool = False,
) -> FapProcess:
    """``fap work`` running ``engine`` (the hostile analyzer's), with the test's limits and
    ``env`` for itself."""
    engine = engine or fap_argv("engine", "--analyzer", HOSTILE, "--engine", ENGINE)
    argv = fap_argv(
        "work", VERBOSE, "--server", pipe.server.url, "--concurrency", "2", *LIMITS, *extra
    )
    argv += [*engine_flags(REPO), "--engine-command", shlex.join(engine)]
    if nobody:
        stage = pipe.tmp / "stage"
        stage.mkdir()
        argv = as_nobody(argv, stage, reach=[REPO])
    worker = FapProcess(
        argv=argv,
        log_path=pipe.tmp / f"worker-{len(pipe.workers)}.log",
        env={**pipe.env, **env, "FAP_TOKEN": pipe.server.processor_token},
    )
    pipe.workers.append(worker)
    return worker.start()


def _files(folder: Path, *names: str) -> list[str]:
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_text(f"the contents of {name}\n")
    return [str(folder / name) for name in names]


def _upload(pipe: Pipeline, paths: list[str], engine: str = ENGINE) -> dict[str, dict[str, Any]]:
    """Upload and wait for every result; each file's line of ``fap upload --json``, by name."""
    results = str(pipe.tmp / "results")
    done = pipe.fap("upload", *paths, "--engine", engine, "--json", "--results", results)
    assert "Traceback" not in done.stderr, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {Path(line["file"]).name: line for line in lines}


def _result(pipe: Pipeline, upload_id: str) -> str:
    got = pipe.fap("results", "get", upload_id)
    assert got.returncode == 0, got.stderr
    return got.stdout


def _attempts(pipe: Pipeline, upload_id: str) -> int:
    with pipe.api() as api:
        attempts: int = api.get(f"/v1/uploads/{upload_id}").json()["attempts"]
        return attempts


def _secrets(pipe: Pipeline, home: Path) -> list[str]:
    tokens = [pipe.server.processor_token, pipe.server.owner_token]
    return [*tokens, (home / ".secret").read_text()]


def _home(parent: Path) -> Path:
    """A home for the worker, with a secret in it that only the worker's user may read."""
    home = parent / "worker-home"
    home.mkdir()
    (home / ".secret").write_text("the-worker-home-secret-7f3a9c")
    (home / ".secret").chmod(0o600)
    return home


def test_hostile_engines_fail_with_the_limit_they_hit_and_the_worker_serves_on(
    pipeline: Pipeline, listener: socket.socket
) -> None:
    home = _home(pipeline.tmp)
    token_file = pipeline.server.data_dir / "local-processor.token"
    port = listener.getsockname()[1]
    peek = os.pathsep.join(map(str, (token_file, home, home / ".secret", pipeline.server.data_dir)))
    worker = _worker(
        pipeline,
        "--engine-env",
        f"FAP_TEST_PORT={port}",
        "--engine-env",
        f"FAP_TEST_PEEK={peek}",
        env={"HOME": str(home)},
    )
    names = ("net-1.txt", "peek-1.txt", "hog-1.txt", "spin-1.txt", "fork-1.txt", "big-1.txt")
    lines = _upload(pipeline, _files(pipeline.tmp / "hostile", *names))

    failed = {name: line["error"] for name, line in lines.items() if line["status"] != "done"}
    assert set(failed) == set(names) - {"peek-1.txt"}, server_log_tail(pipeline)
    print("\n".join(f"{name}: {error}" for name, error in sorted(failed.items())))
    # No way out: loopback in the sandbox is its own, and nothing listens there.
    assert "Connection refused" in failed["net-1.txt"], failed["net-1.txt"]
    assert _nothing_came(listener)
    assert "The engine exceeded its memory limit (256 MiB)" in failed["hog-1.txt"]
    assert "The engine exceeded its CPU time limit (2 s)" in failed["spin-1.txt"]
    assert "The engine tried to start more processes than allowed (256)" in failed["fork-1.txt"]
    assert "The engine answered more than the result limit (1 MiB)." in failed["big-1.txt"]
    # A limit is hit again on another attempt: those fail at once; a refused connection is an
    # analyzer's error like any, tried again.
    for name in ("hog-1.txt", "spin-1.txt", "fork-1.txt", "big-1.txt"):
        assert _attempts(pipeline, lines[name]["upload_id"]) == 1, name
    assert _attempts(pipeline, lines["net-1.txt"]["upload_id"]) == 2

    # The processor's token files, its home and its environment are nowhere to be seen.
    found = _result(pipeline, lines["peek-1.txt"]["upload_id"])
    for secret in _secrets(pipeline, home):
        assert secret not in found
    peeked = json.loads(found)
    assert all(seen.startswith("unreadable: ") for seen in peeked["found"].values()), peeked
    assert "FAP_TOKEN" not in peeked["environment"]
    assert peeked["home"] == "/tmp"
    if os.geteuid() == 0:
        # nobody, in a user namespace of its own that maps no one: what the process limit counts.
        assert (peeked["uid"], peeked["uid_map"]) == (nobody()[0], [])
    else:  # the worker's own user, and no other, in a user namespace that bubblewrap made
        assert peeked["uid_map"][::2] == [str(os.getuid()), "1"]

    # The worker serves on: a plain file after the hostile ones gets its result.
    after = _upload(pipeline, _files(pipeline.tmp / "plain", "plain.txt"))
    assert after["plain.txt"]["status"] == "done", server_log_tail(pipeline)
    assert json.loads(_result(pipeline, after["plain.txt"]["upload_id"]))["lines"] == 1
    assert worker.alive()
    log = worker.log()
    assert "Traceback" not in log
    assert "Engines run in a bubblewrap" in log
    for secret in _secrets(pipeline, home):
        assert secret not in log


def test_an_answer_of_a_gigabyte_is_cut_off_at_the_result_limit(pipeline: Pipeline) -> None:
    engine = [sys.executable, str(REPO / "tests" / "e2e" / "huge_engine.py")]
    worker = _worker(pipeline, engine=engine, env={})
    lines = _upload(pipeline, _files(pipeline.tmp / "huge", "any.txt"), engine="huge@1")

    line = lines["any.txt"]
    assert line["status"] == "failed", server_log_tail(pipeline)
    assert "The engine answered more than the result limit (1 MiB)." in line["error"]
    assert _attempts(pipeline, line["upload_id"]) == 1
    assert worker.alive()


def test_an_unprivileged_worker_sandboxes_its_engine_too(pipeline: Pipeline) -> None:
    """As a user who is not root (nobody, when the test runs as root, as CI does): bubblewrap
    makes a user namespace of its own, the process limit counts that sandbox alone, and the
    worker's own files stay out of sight."""
    own = Path(tempfile.mkdtemp(prefix="fap-nobody-"))  # somewhere nobody may write
    try:
        if os.geteuid() == 0:
            os.chown(own, *nobody())
        home = _home(own)
        if os.geteuid() == 0:
            for path in (home, home / ".secret"):
                os.chown(path, *nobody())
        peek = os.pathsep.join(map(str, (home, home / ".secret")))
        worker = _worker(
            pipeline,
            "--engine-env",
            f"FAP_TEST_PEEK={peek}",
            env={"HOME": str(home), "FAP_HOME": str(own)},
            nobody=True,
        )
        names = ("fork-2.txt", "spin-2.txt", "peek-2.txt", "ok.txt")
        lines = _upload(pipeline, _files(pipeline.tmp / "unprivileged", *names))

        assert lines["fork-2.txt"]["status"] == "failed", worker.log()[-3000:]
        error = lines["fork-2.txt"]["error"]
        assert "The engine tried to start more processes than allowed (256)" in error
        assert "The engine exceeded its CPU time limit (2 s)" in lines["spin-2.txt"]["error"]
        assert lines["ok.txt"]["status"] == "done", worker.log()[-3000:]
        found = _result(pipeline, lines["peek-2.txt"]["upload_id"])
        assert "the-worker-home-secret" not in found
        assert pipeline.server.processor_token not in found
        peeked = json.loads(found)
        assert all(seen.startswith("unreadable: ") for seen in peeked["found"].values())
        # The worker's own user, and no other, in a user namespace that bubblewrap made for it
        # (the map's middle figure is the namespace above's; bubblewrap nests one more).
        uid = str(nobody()[0] if os.geteuid() == 0 else os.getuid())
        assert peeked["uid_map"][::2] == [uid, "1"]
        log = worker.log()
        assert "Engines run in a bubblewrap" in log
        assert "as nobody" not in log  # the worker's own user, mapped into the sandbox
        assert "Traceback" not in log
    finally:
        shutil.rmtree(own, ignore_errors=True)
