"""examples/ci: the step both pipelines run, run as a runner runs it, against a real server and
processor. The runner's workspace is laid out as examples/ci/README.md says: the script in
``ci/``, the build's artefacts in ``build/``."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Pipeline, server_log_tail

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "ci"
SCRIPT = "analyse.sh"

# The backend makes no difference to a pipeline: the embedded one alone.
embedded = pytest.mark.parametrize("pipeline", ["embedded"], indirect=True)


def _github_step() -> dict[str, Any]:
    """The workflow's step that is given the token: the one that runs fap."""
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    # YAML 1.1 reads the key `on` as true; GitHub reads it as `on`.
    assert {"push", "pull_request"} <= set(workflow[True])
    [job] = workflow["jobs"].values()
    [step] = [step for step in job["steps"] if "FAP_TOKEN" in step.get("env", {})]
    return dict(step)


def _gitlab_job() -> dict[str, Any]:
    pipeline = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    [job] = [
        job
        for job in pipeline.values()
        if isinstance(job, dict) and any(SCRIPT in line for line in job.get("script", []))
    ]
    return dict(job)


def test_both_pipelines_run_the_script_with_only_the_token_and_server_from_settings() -> None:
    step, job = _github_step(), _gitlab_job()

    assert step["env"] == {
        "FAP_TOKEN": "${{ secrets.FAP_TOKEN }}",
        "FAP_SERVER": "${{ vars.FAP_SERVER }}",
    }
    assert step["run"] == f"bash ci/{SCRIPT}"
    assert job["script"] == [step["run"]]
    # On GitLab both come from the project's CI/CD variables: the job sets no FAP_* of its own.
    assert not [name for name in job.get("variables", {}) if name.startswith("FAP_")]
    assert "fap-results/" in job["artifacts"]["paths"]


def _workspace(tmp_path: Path, artefacts: dict[str, bytes]) -> Path:
    """A runner's checkout after the build: ci/analyse.sh and build/…"""
    workspace = tmp_path / "workspace"
    (workspace / "ci").mkdir(parents=True)
    shutil.copy(EXAMPLES / SCRIPT, workspace / "ci" / SCRIPT)
    for relative, data in artefacts.items():
        path = workspace / "build" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return workspace


def _run_step(pipeline: Pipeline, workspace: Path, token: str) -> subprocess.CompletedProcess[str]:
    """The step's command, as GitHub runs a `run:` (bash -eo pipefail), in an environment of
    the two settings, a fresh home, and PATH with fap (this checkout's) and the system's tools."""
    home = pipeline.tmp / "runner-home"
    home.mkdir(exist_ok=True)
    env = {
        "FAP_TOKEN": token,
        "FAP_SERVER": pipeline.server.url,
        "HOME": str(home),
        "FAP_HOME": str(home / "fap"),
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
    }
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _github_step()["run"]],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )
    # The job's log, as CI would keep it: scanned for secrets with the others.
    (pipeline.tmp / "ci-job.log").write_text(done.stdout + done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _ci_token(pipeline: Pipeline) -> str:
    """An API token as the README says to make one for CI."""
    made = pipeline.fap("token", "create", "--role", "member", "--name", "ci")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    pipeline.scan.add(token, "the CI token")
    return token


@embedded
def test_every_artefact_gets_its_result_at_its_relative_path(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.start_worker()
    artefacts = {
        "app.bin": bytes(range(256)) * 64,
        "sub/x.bin": b"a nested artefact\n",
        "sub/deeper/report.txt": b"tests passed: 42\n" * 100,
        "with space.log": b"",
    }
    workspace = _workspace(tmp_path, artefacts)

    done = _run_step(pipeline, workspace, _ci_token(pipeline))

    assert done.returncode == 0, done.stderr + server_log_tail(pipeline)
    results = workspace / "fap-results"
    written = {p.relative_to(results).as_posix() for p in results.rglob("*") if p.is_file()}
    assert written == {f"{relative}.result.json" for relative in artefacts}
    for relative, data in artefacts.items():
        result = json.loads((results / f"{relative}.result.json").read_text())
        assert result["sha256"] == hashlib.sha256(data).hexdigest(), relative
    lines = [
        json.loads(line) for line in (workspace / "fap-results.jsonl").read_text().splitlines()
    ]
    assert sorted(line["status"] for line in lines) == ["done"] * len(artefacts)


@embedded
def test_a_failed_analysis_fails_the_step(pipeline: Pipeline, tmp_path: Path) -> None:
    # This analyzer refuses files named error-*; it analyses the others as the reference does.
    pipeline.start_worker(analyzer="tests.e2e.analyzers:by_name")
    workspace = _workspace(tmp_path, {"sub/good.bin": b"fine\n", "error-bad.bin": b"refused\n"})

    done = _run_step(pipeline, workspace, _ci_token(pipeline))

    assert done.returncode == 7, done.stderr + server_log_tail(pipeline)
    assert "error: some artefacts got no analysis result" in done.stderr
    by_file = {
        Path(line["file"]).name: line
        for line in map(json.loads, (workspace / "fap-results.jsonl").read_text().splitlines())
    }
    assert by_file["good.bin"]["status"] == "done"
    assert by_file["error-bad.bin"]["status"] == "failed"
    assert "refuses files named error-*" in by_file["error-bad.bin"]["error"]
    assert (workspace / "fap-results" / "sub" / "good.bin.result.json").is_file()
    assert not (workspace / "fap-results" / "error-bad.bin.result.json").exists()


@embedded
def test_a_pipeline_without_its_secret_fails_in_one_line(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    # A pull request from a fork: GitHub hands the step an empty secret.
    workspace = _workspace(tmp_path, {"app.bin": b"never sent\n"})

    done = _run_step(pipeline, workspace, token="")

    assert done.returncode == 4
    [error] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "FAP_TOKEN" in error
    assert not (workspace / "fap-results").exists()
