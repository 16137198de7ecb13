"""Many servers and many processors on PostgreSQL and S3: every file analysed exactly once."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shlex
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from fap.engine.protocol import DEFAULT_ENGINE
from tests.e2e.conftest import REPO
from tests.support.engine_sandbox import engine_flags
from tests.support.processes import FapProcess, ServerProcess, fap_argv, stop_all, wait_until

pytestmark = pytest.mark.e2e

KiB = 1024


@dataclass
class Cluster:
    replicas: list[ServerProcess]
    tmp: Path
    env: dict[str, str]
    owner_token: str
    processor_token: str
    workers: list[FapProcess] = field(default_factory=list)

    @property
    def servers(self) -> str:
        """Every replica, as a client or worker configured for failover names them."""
        return ",".join(replica.url for replica in self.replicas)

    def start_workers(self, count: int) -> None:
        engine = shlex.join(
            fap_argv(
                "engine", "--analyzer", "tests.e2e.analyzers:counted", "--engine", DEFAULT_ENGINE
            )
        )
        # The sandboxed engine sees the test analyzers and the signals directory, nothing else.
        signals = self.tmp / "signals"
        sandbox = engine_flags(REPO, writable=signals, env={"FAP_TEST_SIGNALS": str(signals)})
        for _ in range(count):
            worker = FapProcess(
                argv=fap_argv(
                    "work",
                    "--server",
                    self.servers,
                    "--concurrency",
                    "1",
                    "--engine-command",
                    engine,
                    *sandbox,
                ),
                log_path=self.tmp / f"worker-{len(self.workers)}.log",
                env={**self.env, "FAP_TOKEN": self.processor_token},
            )
            self.workers.append(worker.start())

    def upload(self, server: str, files: list[Path], results: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            fap_argv("upload", *map(str, files), "--json", "--results", str(results)),
            env={**os.environ, **self.env, "FAP_SERVER": server, "FAP_TOKEN": self.owner_token},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    def analyses(self) -> Counter[str]:
        log = self.tmp / "signals" / "analyses.log"
        return Counter(log.read_text().split()) if log.exists() else Counter()

    def uploads(self) -> list[dict[str, Any]]:
        with httpx.Client(base_url=self.replicas[-1].url, timeout=30) as http:
            answer = http.get(
                "/v1/uploads",
                params={"limit": 1000},
                headers={"Authorization": f"Bearer {self.owner_token}"},
            )
            assert answer.status_code == 200, answer.text
            uploads: list[dict[str, Any]] = answer.json()["uploads"]
            return uploads

    def logs(self) -> str:
        return "\n----\n".join(p.log()[-2000:] for p in [*self.replicas, *self.workers])


@pytest.fixture
def cluster(
    tmp_path: Path,
    start_server: Callable[..., ServerProcess],
    pg_url: str,
    s3_storage: Any,
) -> Iterator[Cluster]:
    """Two replicas on one PostgreSQL database and one bucket."""
    (tmp_path / "signals").mkdir()
    backends = (
        "--db",
        pg_url,
        "--storage",
        s3_storage.url,
        "--lease-seconds",
        "8",
        "--heartbeat-seconds",
        "2",
    )
    first = start_server(*backends, env=s3_storage.env)
    second = start_server(*backends, env=s3_storage.env)  # joins the organisation the first made
    env = {
        "FAP_HOME": str(tmp_path / "home"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "FAP_TEST_SIGNALS": str(tmp_path / "signals"),
    }
    # Only the replica that created the organisation wrote the local tokens.
    cluster = Cluster(
        replicas=[first, second],
        tmp=tmp_path,
        env=env,
        owner_token=first.owner_token,
        processor_token=first.processor_token,
    )
    yield cluster
    stop_all(cluster.workers)


def _corpus(folder: Path, count: int) -> list[Path]:
    folder.mkdir()
    rng = random.Random(count)
    files = []
    for i in range(count):
        path = folder / f"file-{i:03d}.bin"
        path.write_bytes(os.urandom(rng.randint(0, 96 * KiB)))
        files.append(path)
    return files


def _finish(client: subprocess.Popen[str]) -> list[dict[str, Any]]:
    stdout, stderr = client.communicate(timeout=600)
    assert "Traceback" not in stderr, stderr
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert client.returncode == 0, stderr
    return lines


def _check_results(lines: list[dict[str, Any]], files: list[Path]) -> None:
    assert sorted(Path(line["file"]).name for line in lines) == sorted(p.name for p in files)
    for line in lines:
        assert line["status"] == "done", line
        result = json.loads(Path(line["result_path"]).read_text())
        original = Path(line["file"]).read_bytes()
        assert result["bytes"] == len(original)
        assert result["sha256"] == hashlib.sha256(original).hexdigest()


def test_300_files_through_two_replicas_and_four_processors_each_once(
    cluster: Cluster,
) -> None:
    files = _corpus(cluster.tmp / "files", 300)
    cluster.start_workers(4)
    results = cluster.tmp / "results"

    # Six clients, three on each replica: 50 files each.
    clients = [
        cluster.upload(cluster.replicas[i % 2].url, files[i * 50 : (i + 1) * 50], results)
        for i in range(6)
    ]
    lines = [line for client in clients for line in _finish(client)]

    _check_results(lines, files)
    uploads = cluster.uploads()
    assert len(uploads) == 300
    assert {u["state"] for u in uploads} == {"done"}
    assert all(u["attempts"] == 1 for u in uploads), cluster.logs()
    analyses = cluster.analyses()
    assert len(analyses) == 300 and set(analyses.values()) == {1}


def test_killing_a_replica_mid_run_loses_and_doubles_nothing(cluster: Cluster) -> None:
    files = _corpus(cluster.tmp / "files", 80)
    cluster.start_workers(2)
    results = cluster.tmp / "results"
    clients = [
        cluster.upload(cluster.servers, files[i * 40 : (i + 1) * 40], results) for i in range(2)
    ]

    wait_until(lambda: len(cluster.analyses()) >= 10, 120, f"the first results\n{cluster.logs()}")
    doomed = cluster.replicas[0]
    os.killpg(doomed.pid, signal.SIGKILL)
    cluster.replicas = cluster.replicas[1:]

    lines = [line for client in clients for line in _finish(client)]
    _check_results(lines, files)
    uploads = cluster.uploads()
    assert len(uploads) == 80, "a client retry must not create a second upload of one file"
    assert {u["state"] for u in uploads} == {"done"}
