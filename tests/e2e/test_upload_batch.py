"""``fap upload`` in a CI pipeline: whole directories, lists from stdin, stopping at the first
failure — against a real ``fap serve`` and ``fap work``, with FAP_TOKEN the only secret."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Pipeline, server_log_tail
from tests.support.processes import fap_argv

# Choosing files and naming results is the client's alone: one backend shows it.
pytestmark = pytest.mark.parametrize("pipeline", ["embedded"], indirect=True)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lines(stdout: str | bytes) -> list[dict[str, Any]]:
    text = stdout if isinstance(stdout, str) else stdout.decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _upload_stdin(
    pipeline: Pipeline, listed: bytes, *args: str, cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    """``fap upload - ARGS --json`` with ``listed`` on its stdin, as a pipeline step runs it."""
    env = {**os.environ, **pipeline.env, "FAP_SERVER": pipeline.server.url}
    env["FAP_TOKEN"] = pipeline.server.owner_token
    done = subprocess.run(
        fap_argv("upload", "-", *args, "--json"),
        cwd=cwd,
        env=env,
        input=listed,
        capture_output=True,
        timeout=300,
        check=False,
    )
    # Its stderr is a log like any other client's: kept for the secret scan.
    number = len(list(pipeline.tmp.glob("client-*.log")))
    (pipeline.tmp / f"client-{number}-upload-stdin.log").write_bytes(done.stderr)
    assert b"Traceback" not in done.stderr, done.stderr
    return done


def test_a_directory_sent_recursively_mirrors_its_tree_in_the_results(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.start_worker()
    build = tmp_path / "build"
    taken = ["report.txt", "logs/app.log", "logs/deep/app.log", "same name/report.txt"]
    for name in taken:
        _write(build / name, f"artefact {name}\n")
    for name in (".cache/blob", "obj.tmp", "results/earlier.txt.result.json"):
        _write(build / name, "not for analysis\n")
    (build / "loop").symlink_to(build, target_is_directory=True)
    results = build / "results"  # inside the tree: what it holds is not sent

    done = pipeline.fap("upload", "--recursive", str(build), "--results", str(results), "--json")

    assert done.returncode == 0, done.stderr + server_log_tail(pipeline)
    lines = _lines(done.stdout)
    assert sorted(line["file"] for line in lines) == sorted(str(build / name) for name in taken)
    assert {line["status"] for line in lines} == {"done"}
    written = sorted(str(p.relative_to(results)) for p in results.rglob("*.result.json"))
    assert written == sorted(
        [*(f"{name}.result.json" for name in taken), "earlier.txt.result.json"]
    )
    for line in lines:
        source = Path(line["file"])
        relative = source.relative_to(build)
        assert Path(line["result_path"]) == results / f"{relative}.result.json"
        assert json.loads(Path(line["result_path"]).read_text())["sha256"] == _sha256(source)
    for directory in (results / "logs", results / "logs" / "deep", results / "same name"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    with pipeline.api() as api:
        names = sorted(u["name"] for u in api.get("/v1/uploads").json()["uploads"])
    assert names == sorted(taken), "each upload carries its path below the directory"


def test_a_list_on_stdin_is_sent_as_if_named_on_the_command_line(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.start_worker()
    work = tmp_path / "work"
    a = _write(work / "a.txt", "a\n")
    b = _write(work / "sub" / "b.txt", "b\n")
    results = tmp_path / "results"

    # A bandwidth timetable on the way: whichever entry is in force, the files go through.
    timetable = ("--bwlimit", "00:00,64M 12:00,off")
    listed = b"a.txt\n\n  \nsub/b.txt\n"
    done = _upload_stdin(pipeline, listed, *timetable, "--results", str(results), cwd=work)

    assert done.returncode == 0, done.stderr.decode() + server_log_tail(pipeline)
    assert sorted(line["file"] for line in _lines(done.stdout)) == ["a.txt", "sub/b.txt"]
    # Named by file name, as on the command line.
    assert sorted(p.name for p in results.iterdir()) == ["a.txt.result.json", "b.txt.result.json"]
    for path in (a, b):
        result = json.loads((results / f"{path.name}.result.json").read_text())
        assert result["sha256"] == _sha256(path)


def test_a_nul_separated_list_from_find_print0_with_a_directory_in_it(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.start_worker()
    work = tmp_path / "work"
    odd = _write(work / "two\nlines.txt", "a name with a newline\n")
    _write(work / "more" / "deep" / "c.txt", "c\n")
    results = tmp_path / "results"

    done = _upload_stdin(
        pipeline, b"two\nlines.txt\0more\0", "-0", "-r", "--results", str(results), cwd=work
    )

    assert done.returncode == 0, done.stderr.decode() + server_log_tail(pipeline)
    assert {line["status"] for line in _lines(done.stdout)} == {"done"}
    written = sorted(str(p.relative_to(results)) for p in results.rglob("*.result.json"))
    # The directory's files mirror their paths below it, as for a directory named as an argument.
    assert written == ["deep/c.txt.result.json", "two\nlines.txt.result.json"]
    result = json.loads((results / "two\nlines.txt.result.json").read_text())
    assert result["sha256"] == _sha256(odd)


def test_fail_fast_stops_at_a_failed_analysis_and_exits_7(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    # The analyzer fails error-* and holds every other file until released: without the stop,
    # this upload would wait for ever. One engine per file, so none waits behind another.
    pipeline.start_worker("--concurrency", "3", analyzer="tests.e2e.batch_analyzers:fails_or_holds")
    files = [_write(tmp_path / name, f"{name}\n") for name in ("error-1.txt", "a.txt", "b.txt")]

    try:
        done = pipeline.fap(
            "upload", *map(str, files), "--fail-fast", "--json", "--results", str(tmp_path / "r")
        )
    finally:
        (pipeline.signals / "release").write_text("")  # the held analyses may end

    assert done.returncode == 7, done.stderr + server_log_tail(pipeline)
    lines = {Path(line["file"]).name: line for line in _lines(done.stdout)}
    assert lines.keys() == {"error-1.txt", "a.txt", "b.txt"}
    assert lines["error-1.txt"]["status"] == "failed"
    assert "refuses files named error-*" in lines["error-1.txt"]["error"]
    for name in ("a.txt", "b.txt"):
        assert lines[name]["status"] == "failed"
        assert "stopped at the first failure (--fail-fast)" in lines[name]["error"]
    assert "3 of 3 files got no result" in done.stderr
    assert not (tmp_path / "r").exists()
    assert pipeline.workers[0].alive()


def test_a_directory_without_recursive_is_refused_with_exit_3(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    _write(tmp_path / "build" / "a.txt", "a\n")

    done = pipeline.fap("upload", str(tmp_path / "build"))

    assert done.returncode == 3, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is a directory; add --recursive" in errors[0]
    with pipeline.api() as api:
        assert api.get("/v1/uploads").json()["uploads"] == []
