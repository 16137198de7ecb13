"""Engines as users write them (docs/engines.md), run by a real ``fap work`` for a real
``fap serve``: the Python example under ``fap engine``, the Node.js engine written from
docs/engine-protocol.md alone, an engine of a protocol the worker does not speak, and an analyzer
that raises.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, VERBOSE, Pipeline
from tests.support.processes import FapProcess, ServerProcess, fap_argv, stop_all, wait_until
from tests.support.secrets_scan import SecretScan

MiB = 1024 * 1024
EXAMPLES = REPO / "examples"

# An engine that speaks a protocol from the future: it answers GET /v1/info, and nothing else.
PROTOCOL_99 = (
    "require('http').createServer((q, s) => {"
    " s.setHeader('Content-Type', 'application/json');"
    " s.end(JSON.stringify({engine: 'future@1', protocol: 99})); })"
    ".listen(process.env.FAP_ENGINE_SOCKET);"
)


@pytest.fixture
def pipe(
    tmp_path: Path, start_server: Callable[..., ServerProcess], secret_scan: SecretScan
) -> Iterator[Pipeline]:
    """A server on the embedded defaults: which backend holds the jobs is no engine's concern.
    One attempt per job, so a failing analysis is the upload's end at once."""
    home, signals = tmp_path / "home", tmp_path / "signals"
    home.mkdir()
    signals.mkdir()
    server = start_server(VERBOSE, "--max-attempts", "1")
    pipeline = Pipeline(server=server, tmp=tmp_path, home=home, signals=signals, scan=secret_scan)
    yield pipeline
    stop_all(pipeline.workers)


def _node() -> str:
    node = shutil.which("node")
    if node is None:  # the suite needs Node.js anyway (its OIDC provider): never skip silently
        pytest.fail("These tests run engines with Node.js, and there is no node on PATH.")
    return node


def _start_worker(pipe: Pipeline, engine_command: list[str], *options: str) -> FapProcess:
    """``fap work --engine-command "…" OPTIONS`` as docs/engines.md runs it, with two slots."""
    argv = fap_argv(
        "work", VERBOSE, "--server", pipe.server.url, "--concurrency", "2",
        "--engine-command", shlex.join(engine_command), *options,
    )  # fmt: skip
    worker = FapProcess(
        argv=argv,
        log_path=pipe.tmp / f"worker-{len(pipe.workers)}.log",
        env={**pipe.env, "FAP_TOKEN": pipe.server.processor_token},
    )
    pipe.workers.append(worker)
    return worker.start()


def _python_code(directory: Path, root: Path | None = None) -> tuple[str, ...]:
    """The options that bring an analyzer's code into the engine's sandbox: ``directory`` made
    visible, and ``root`` (default: ``directory``) put on its PYTHONPATH."""
    path = root or directory
    return ("--engine-mount", str(directory), "--engine-env", f"PYTHONPATH={path}")


def _serving(worker: FapProcess, engine: str) -> None:
    """Wait until both slots' engines are ready; a worker that exits instead fails the test."""
    wait_until(lambda: _ready_engines(worker, engine) == 2, 60, f"{engine} to be ready")


def _upload(pipe: Pipeline, engine: str, *files: Path) -> dict[str, dict[str, object]]:
    """``fap upload --engine ENGINE FILES --json``: each file's line and its result, by name."""
    out = pipe.tmp / "results"
    done = pipe.fap("upload", "--engine", engine, *map(str, files), "--json", "--results", str(out))
    assert "Traceback" not in done.stderr, done.stderr
    lines = {
        Path(str(line["file"])).name: line for line in map(json.loads, done.stdout.split("\n")[:-1])
    }
    assert set(lines) == {f.name for f in files}, done.stdout + done.stderr
    for name, line in lines.items():
        if line["status"] == "done":
            line["result"] = json.loads((out / f"{name}.result.json").read_bytes())
    return lines


def _ready_engines(worker: FapProcess, engine: str) -> int:
    if not worker.alive():
        raise RuntimeError(f"fap work exited early:\n{worker.log()}")
    return len(re.findall(rf"Engine {re.escape(engine)} for slot \d is ready", worker.log()))


def test_the_python_example_counts_words_through_a_worker(pipe: Pipeline, tmp_path: Path) -> None:
    # As docs/engines.md says: the module's directory mounted into the sandbox, on its PYTHONPATH.
    engine = fap_argv("engine", "--analyzer", "wordcount:analyze", "--engine", "wordcount@1")
    worker = _start_worker(pipe, engine, *_python_code(EXAMPLES / "python"))
    _serving(worker, "wordcount@1")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello world\nsecond line\n")
    poem = tmp_path / "poème.txt"
    poem.write_text("Le vent se lève… il faut tenter de vivre\n" * 50_000)  # two chunks
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(4096))

    lines = _upload(pipe, "wordcount@1", notes, poem, photo)

    assert {name: line["status"] for name, line in lines.items()} == dict.fromkeys(lines, "done")
    assert lines["notes.txt"]["result"] == {
        "text": True, "bytes": 24, "lines": 2, "words": 4, "chars": 24, "longest_line": 11,
    }  # fmt: skip
    assert lines["poème.txt"]["result"] == {
        "text": True,
        "bytes": poem.stat().st_size,
        "lines": 50_000,
        "words": 9 * 50_000,
        "chars": 41 * 50_000,
        "longest_line": 40,
    }
    assert lines["photo.jpg"]["result"] == {"text": False, "bytes": 4100}
    # Byte for byte what the engine answered, as docs/engines.md shows it.
    assert (pipe.tmp / "results" / "notes.txt.result.json").read_bytes() == (
        b'{"text": true, "bytes": 24, "lines": 2, "words": 4, "chars": 24, "longest_line": 11}'
    )


def test_an_engine_in_nodejs_serves_a_worker_as_fap_engine_does(
    pipe: Pipeline, tmp_path: Path
) -> None:
    # The script by its absolute path, as the protocol asks: the worker makes it visible inside.
    worker = _start_worker(pipe, [_node(), str(EXAMPLES / "node" / "engine.mjs")])
    _serving(worker, "filetype@1")
    files = {
        "image.png": b"\x89PNG\r\n\x1a\n" + os.urandom(1000),
        "paper.pdf": b"%PDF-1.7\n" + os.urandom(100),
        "notes.txt": "déjà vu\n".encode(),
        "empty.txt": b"",
        # Three chunks of the upload's 8 MiB, streamed to the engine as they arrive.
        "archive.zst": b"\x28\xb5\x2f\xfd" + os.urandom(17 * MiB),
        "noise.bin": b"\x00" + os.urandom(5000),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)

    lines = _upload(pipe, "filetype@1", *(tmp_path / name for name in files))

    expected = {
        "image.png": ("png", "image/png"),
        "paper.pdf": ("pdf", "application/pdf"),
        "notes.txt": ("text", "text/plain"),
        "empty.txt": ("text", "text/plain"),
        "archive.zst": ("zstd", "application/zstd"),
        "noise.bin": ("binary", "application/octet-stream"),
    }
    for name, (kind, mime) in expected.items():
        assert lines[name]["status"] == "done", lines[name]
        data = files[name]
        assert lines[name]["result"] == {
            "type": kind, "mime": mime, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        }  # fmt: skip
    # The engine logs to the worker's log, as the protocol asks: once when it listens.
    assert worker.log().count("Engine filetype@1 (protocol 1) listening on") == 2


def test_a_worker_refuses_an_engine_of_a_protocol_it_does_not_speak(
    pipe: Pipeline, tmp_path: Path
) -> None:
    waiting = tmp_path / "waiting.txt"
    waiting.write_text("for an engine that speaks protocol 99\n")
    [queued] = pipe.upload("--engine", "future@1", "--no-wait", str(waiting))

    worker = _start_worker(pipe, [_node(), "-e", PROTOCOL_99])
    assert worker.process is not None
    returncode = worker.process.wait(timeout=120)

    log = worker.log()
    assert returncode == 8, log
    sentence = (
        "error: The engine future@1 speaks engine protocol 99, and this worker speaks protocol 1: "
        "update the older of the two.\n"
    )
    assert log.endswith(sentence), log
    assert "Traceback" not in log
    assert " serving " not in log  # no slot ever asked for a job
    with pipe.api() as api:
        info = api.get(f"/v1/uploads/{queued['upload_id']}").json()
    assert (info["state"], info["attempts"]) == ("queued", 0)


def test_an_analyzer_that_raises_fails_its_job_in_one_line_without_a_traceback(
    pipe: Pipeline, tmp_path: Path
) -> None:
    engine = fap_argv("engine", "--analyzer", "tests.engines.analyzers:fail", "--engine", "fail@1")
    worker = _start_worker(pipe, engine, *_python_code(REPO / "tests", root=REPO))
    _serving(worker, "fail@1")
    refused = tmp_path / "refused.csv"
    refused.write_bytes(os.urandom(3 * MiB))  # fails after one byte: answered mid-body

    [line] = _upload(pipe, "fail@1", refused).values()

    reason = (
        "The engine could not analyse the file: "
        "the analyzer raised ValueError: this analyzer always fails."
    )
    assert line["status"] == "failed"
    assert str(line["error"]).endswith(f": {reason}"), line  # "The analysis failed: …"
    with pipe.api() as api:
        info = api.get(f"/v1/uploads/{line['upload_id']}").json()
    assert (info["state"], info["error"]) == ("failed", reason)
    wait_until(lambda: reason in worker.log(), 30, "the worker to log the failure")
    log = worker.log()
    assert "Traceback" not in log
    loud = [ln for ln in log.splitlines() if re.search(r" (WARNING|ERROR|CRITICAL) ", ln)]
    assert loud and all(reason in ln for ln in loud), loud
    assert worker.alive()
