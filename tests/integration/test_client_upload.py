"""The client commands against a real ``fap serve`` (no worker): upload, list, status, refusals."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import httpx
import pytest
from tests.support.processes import ServerProcess, fap_argv

from fap.crypto import seal
from fap.errors import EXIT_AUTH, EXIT_SERVER


def fap(
    *args: str, cwd: Path, token: str | None = None, server: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    if token is not None:
        env["FAP_TOKEN"] = token
    if server is not None:
        env["FAP_SERVER"] = server
    return subprocess.run(
        fap_argv(*args),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_upload_without_waiting_stores_every_chunk_on_the_server(
    server: ServerProcess, fap_home: Path, tmp_path: Path
) -> None:
    (fap_home / "config.toml").write_text("[client]\nchunk_size = 262144\n")
    text = tmp_path / "log.txt"
    text.write_bytes(b"GET /v1/uploads 200 12ms\n" * 40_000)  # ~1 MiB, compressible: 4 chunks
    noise = tmp_path / "noise.bin"
    noise.write_bytes(os.urandom(300_000))  # incompressible: 2 chunks, stored raw
    empty = tmp_path / "empty"
    empty.write_bytes(b"")

    files = ("log.txt", "noise.bin", "empty")
    done = fap(
        "upload",
        *files,
        "--no-wait",
        "--json",
        "--server",
        server.url,
        cwd=tmp_path,
        token=server.owner_token,
    )

    assert done.returncode == 0, done.stderr + server.log()[-2000:]
    lines = {line["file"]: line for line in map(json.loads, done.stdout.splitlines())}
    assert {line["status"] for line in lines.values()} == {"uploaded"}
    assert lines["log.txt"]["bytes_sent"] < text.stat().st_size // 10
    assert lines["noise.bin"]["bytes_sent"] == noise.stat().st_size
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.owner_token}"}
    ) as api:
        for name, chunks in (("log.txt", 4), ("noise.bin", 2), ("empty", 0)):
            info = api.get(f"/v1/uploads/{lines[name]['upload_id']}").json()
            assert info["chunks_stored"] == list(range(chunks)), info
            assert info["state"] == "queued"

    # The server answered, so it is now the default: no --server needed.
    listed = fap("results", "list", "--json", cwd=tmp_path, token=server.owner_token)
    assert listed.returncode == 0, listed.stderr
    names = sorted(json.loads(line)["name"] for line in listed.stdout.splitlines())
    assert names == ["empty", "log.txt", "noise.bin"]

    status = fap("status", "--json", cwd=tmp_path, token=server.owner_token)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["queue_depth"] == 3
    assert report["workers"] == []

    early = fap(
        "results", "get", lines["log.txt"]["upload_id"], cwd=tmp_path, token=server.owner_token
    )
    assert early.returncode == EXIT_SERVER
    assert early.stderr.startswith("error:")
    assert "Traceback" not in early.stderr


def test_a_token_the_server_does_not_know_is_exit_4(
    server: ServerProcess, fap_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    done = fap("upload", "a.txt", cwd=tmp_path, token="fap_user_wrong", server=server.url)
    assert done.returncode == EXIT_AUTH
    assert "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")]


def test_an_upload_keeps_its_state_private_and_prints_names_as_they_are(
    server: ServerProcess, fap_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "new-state" / "fap"  # neither it nor its parent exists yet
    monkeypatch.setenv("FAP_HOME", str(home))
    names = ["[red]x.txt", "[bold]y[", "[link=https:evil.example]z"]
    for name in names:
        (tmp_path / name).write_text(f"{name}\n")

    done = fap(
        "upload", *names, "--no-wait", cwd=tmp_path, token=server.owner_token, server=server.url
    )

    assert done.returncode == 0, done.stderr
    for name in names:
        assert f"uploaded {name} as " in done.stderr
        assert any(line.startswith(f"{name}: uploaded as ") for line in done.stdout.splitlines())
    made = {
        str(path.relative_to(tmp_path)): stat.S_IMODE(path.stat().st_mode)
        for path in [home.parent, *home.parent.rglob("*")]
    }
    assert {"new-state/fap/last-server", "new-state/fap/device.key"} <= made.keys()
    assert {
        name: oct(mode)
        for name, mode in made.items()
        if mode != (0o700 if (tmp_path / name).is_dir() else 0o600)
    } == {}


def test_results_get_refuses_a_result_swapped_after_the_job_completed(
    server: ServerProcess, fap_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "report.csv").write_text("a,b\n1,2\n")
    sent = fap(
        "upload",
        "report.csv",
        "--no-wait",
        "--json",
        cwd=tmp_path,
        token=server.owner_token,
        server=server.url,
    )
    assert sent.returncode == 0, sent.stderr
    upload_id = json.loads(sent.stdout)["upload_id"]
    genuine = b'{"rows": 1}'
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.processor_token}"}
    ) as worker:
        lease = worker.post(
            "/v1/lease", json={"worker_id": "w", "engines": ["size@1"], "timeout": 5}, timeout=15
        ).json()
        assert lease["job_id"] == upload_id
        sealed = seal(genuine, lease["recipients"])
        digest = hashlib.sha256(sealed).hexdigest()
        token = lease["lease_token"]
        target = worker.post(
            f"/v1/jobs/{upload_id}/result-url",
            json={"lease_token": token, "size": len(sealed), "sha256": digest},
        ).json()
        assert httpx.put(target["url"], content=sealed, headers=target["headers"]).is_success
        completed = worker.post(
            f"/v1/jobs/{upload_id}/complete",
            json={"lease_token": token, "result_size": len(sealed), "result_sha256": digest},
        )
        assert completed.status_code == 204, completed.text

    shown = fap("results", "get", upload_id, cwd=tmp_path, token=server.owner_token)
    assert (shown.returncode, shown.stdout) == (0, '{"rows": 1}\n'), shown.stderr

    # Replaced in the store by one of the same size, sealed to the same devices: it would open.
    stored = server.data_dir / "blobs" / "uploads" / upload_id / "result.age"
    forged = b'{"rows": 9}'
    substitute = next(
        candidate
        for candidate in (seal(forged, lease["recipients"]) for _ in range(50_000))
        if len(candidate) == stored.stat().st_size  # age headers carry random-length grease
    )
    stored.write_bytes(substitute)

    refused = fap("results", "get", upload_id, cwd=tmp_path, token=server.owner_token)
    assert refused.returncode == EXIT_SERVER, refused.stderr
    assert refused.stdout == ""
    assert refused.stderr.startswith(f"error: The result of upload {upload_id} does not match")
    assert "Traceback" not in refused.stderr
