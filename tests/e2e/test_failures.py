"""What happens when processors, engines and leases fail: nothing lost, nothing recorded twice."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

from tests.e2e.conftest import Pipeline, server_log_tail
from tests.support.processes import wait_until


def _upload_no_wait(pipeline: Pipeline, path: Path) -> str:
    [line] = pipeline.upload(str(path), "--no-wait")
    assert line["upload_id"], line
    return str(line["upload_id"])


def _upload_info(pipeline: Pipeline, upload_id: str) -> dict[str, object]:
    with pipeline.api() as api:
        response = api.get(f"/v1/uploads/{upload_id}")
        assert response.status_code == 200, response.text
        info: dict[str, object] = response.json()
        return info


def test_killed_worker_job_is_finished_by_another_exactly_once(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    doomed = pipeline.start_worker(analyzer="tests.e2e.analyzers:blocks_forever")
    original = tmp_path / "survivor.bin"
    original.write_bytes(os.urandom(3 * 1024 * 1024))
    upload_id = _upload_no_wait(pipeline, original)
    wait_until(
        (pipeline.signals / f"started-{upload_id}").exists, 60, "the first worker to take the job"
    )

    os.killpg(doomed.pid, signal.SIGKILL)  # the worker and its engine, mid-job
    doomed.process.wait()  # type: ignore[union-attr]
    pipeline.start_worker()

    wait_until(
        lambda: _upload_info(pipeline, upload_id)["state"] in ("done", "failed"),
        90,
        "the second worker to finish the job",
    )
    info = _upload_info(pipeline, upload_id)
    assert info["state"] == "done", server_log_tail(pipeline)
    assert info["attempts"] == 2
    got = pipeline.fap("results", "get", upload_id)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["sha256"] == hashlib.sha256(original.read_bytes()).hexdigest()


def test_late_completion_from_a_lapsed_lease_is_refused(pipeline: Pipeline, tmp_path: Path) -> None:
    original = tmp_path / "contested.txt"
    original.write_text("two processors, one result\n")
    upload_id = _upload_no_wait(pipeline, original)

    # The test itself leases the job like a processor, then falls silent (no heartbeats).
    with pipeline.api(pipeline.server.processor_token) as processor:
        leased = processor.post(
            "/v1/lease", json={"worker_id": "silent", "engines": ["size@1"], "timeout": 10}
        )
        assert leased.status_code == 200, leased.text
        stale = leased.json()
        assert stale["job_id"] == upload_id

        pipeline.start_worker()
        wait_until(
            lambda: _upload_info(pipeline, upload_id)["state"] == "done",
            90,
            "a live worker to finish the lapsed job",
        )
        late = processor.post(
            f"/v1/jobs/{upload_id}/complete",
            json={"lease_token": stale["lease_token"], "result_size": 1, "result_sha256": "0" * 64},
        )
        assert late.status_code == 409, late.text
        assert late.json()["detail"]

    info = _upload_info(pipeline, upload_id)
    assert info["state"] == "done"
    assert info["attempts"] == 2


def test_engine_crash_and_engine_error_fail_their_jobs_but_not_the_worker(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.start_worker(analyzer="tests.e2e.analyzers:by_name")
    crash = tmp_path / "crash-me.txt"
    error = tmp_path / "error-me.txt"
    fine = tmp_path / "fine.txt"
    for path in (crash, error, fine):
        path.write_text(f"contents of {path.name}\n")

    done = pipeline.fap(
        "upload", str(crash), str(error), str(fine), "--json", "--results", str(tmp_path / "out")
    )

    assert done.returncode == 7, done.stderr
    lines = {Path(line["file"]).name: line for line in map(json.loads, done.stdout.splitlines())}
    assert lines["fine.txt"]["status"] == "done"
    assert lines["crash-me.txt"]["status"] == "failed"
    assert "crash" in lines["crash-me.txt"]["error"].lower()
    assert lines["error-me.txt"]["status"] == "failed"
    assert "refuses files named error-*" in lines["error-me.txt"]["error"]
    for name in ("crash-me.txt", "error-me.txt"):
        assert _upload_info(pipeline, lines[name]["upload_id"])["attempts"] == 2
    assert pipeline.workers[0].alive()
