"""The client commands against a real ``fap serve`` (no worker): upload, list, status, refusals."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
from tests.support.processes import ServerProcess, fap_argv

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
