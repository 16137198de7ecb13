"""Two versions of an engine side by side, each run by its own real ``fap work``: ``size@1`` (the
reference analyzer) and ``size@2``, a breaking release with results of another shape. An
organisation pinned to version 1 keeps getting version-1 results until its admin moves it
(``fap org engine set size@2``); from then on its uploads get version 2, while an upload may
still ask for version 1. ``fap status`` shows which versions are served and what waits for each.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Pipeline, server_log_tail
from tests.support.processes import fap_argv, wait_until

V2_ENGINE = fap_argv("engine", "--analyzer", "tests.e2e.analyzers:size_v2", "--engine", "size@2")


def status(pipe: Pipeline) -> dict[str, Any]:
    done = pipe.fap("status", "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def engines(pipe: Pipeline) -> dict[str, dict[str, Any]]:
    return {entry["engine"]: entry for entry in status(pipe)["engines"]}


def analysed(pipe: Pipeline, path: Path, results: Path, *args: str) -> dict[str, Any]:
    """Upload ``path``, wait for its result, and answer the result."""
    [line] = pipe.upload(str(path), "--results", str(results), *args)
    assert line["status"] == "done", (line, server_log_tail(pipe))
    result: dict[str, Any] = json.loads(Path(line["result_path"]).read_text())
    return result


def test_an_organisation_moves_to_a_new_engine_version_when_its_admin_decides(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.start_worker()  # size@1, the reference engine
    pipeline.start_worker("--engine-command", shlex.join(V2_ENGINE))
    report = tmp_path / "report.csv"
    report.write_text("day,files\nmonday,3\ntuesday,5\n")
    sha256 = hashlib.sha256(report.read_bytes()).hexdigest()

    # Pinned to version 1 (the server's default engine): version-1 results.
    first = analysed(pipeline, report, tmp_path / "r1")
    assert (first["bytes"], first["sha256"], first["lines"]) == (29, sha256, 3)

    # Both versions are served, each by its own processor.
    wait_until(
        lambda: all(engines(pipeline).get(e, {}).get("processors") for e in ("size@1", "size@2")),
        120,
        "both processors to be listed",
    )
    served = engines(pipeline)
    assert len(served["size@1"]["processors"]) == len(served["size@2"]["processors"]) == 1
    assert served["size@1"]["processors"] != served["size@2"]["processors"]
    assert status(pipeline)["default_engine"] == "size@1"

    # A job for a version nobody runs waits, and the status says for which.
    [waiting] = pipeline.upload(str(report), "--engine", "size@3", "--no-wait")
    assert waiting["upload_id"]
    stalled = engines(pipeline)["size@3"]
    assert (stalled["processors"], stalled["waiting"]) == ([], 1)
    plain = pipeline.fap("status")
    assert plain.returncode == 0, plain.stderr
    assert "size@1 (default): 1 processor; 0 waiting" in plain.stdout
    assert "size@3: no processor online; 1 waiting" in plain.stdout

    # The admin moves the organisation: its uploads get version 2 from now on.
    moved = pipeline.fap("org", "engine", "set", "size@2")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout == "Uploads of local now use size@2 (before: size@1).\n"
    assert "warning" not in moved.stderr  # a processor runs it
    shown = pipeline.fap("org", "engine", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["engine"] == "size@2"

    second = analysed(pipeline, report, tmp_path / "r2")
    assert second == {"engine": "size@2", "size": {"bytes": 29}, "digest": {"sha256": sha256}}
    # An upload may still ask for version 1.
    third = analysed(pipeline, report, tmp_path / "r3", "--engine", "size@1")
    assert third["sha256"] == sha256 and "lines" in third
    assert status(pipeline)["default_engine"] == "size@2"

    # The move is in the audit log.
    audit = pipeline.fap("audit", "list", "--json")
    assert audit.returncode == 0, audit.stderr
    events = [json.loads(line) for line in audit.stdout.splitlines()]
    assert {"engine": "size@2", "was": "size@1"} in [
        e["details"] for e in events if e["action"] == "org.engine"
    ]


def test_pinning_a_version_no_processor_runs_warns_and_uploads_wait(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    moved = pipeline.fap("org", "engine", "set", "size@9")
    assert moved.returncode == 0, moved.stderr
    assert "No processor online runs size@9 now" in moved.stderr
    refused = pipeline.fap("org", "engine", "set", "size")
    assert refused.returncode != 0
    assert "NAME@VERSION" in refused.stderr
