"""The pipeline as users run it: ``fap serve``, ``fap work`` and client commands as real processes."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from fap.engine.protocol import DEFAULT_ENGINE
from tests.support.engine_sandbox import engine_flags
from tests.support.processes import FapProcess, ServerProcess, fap_argv, stop_all
from tests.support.seaweedfs import S3Storage
from tests.support.secrets_scan import SecretScan, logs_under

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

# Every role logs at its most revealing level in every e2e test, so the secret scan below sees
# the debug lines too.
VERBOSE = "--verbose"


@pytest.fixture(autouse=True)
def secret_scan(tmp_path: Path) -> Iterator[SecretScan]:
    """No e2e test's logs hold a secret. Set up before every other fixture, so it is torn down
    after them: every process has stopped and written its last line. Fixtures add what they know
    of (a PostgreSQL database, a bucket's keys) before they are torn down; the rest — tokens,
    keys, SQLite lease tokens, every ``*.log`` — is found under the test's tmp_path."""
    scan = SecretScan()
    yield scan
    scan.add_tree(tmp_path)
    scan.check(logs_under(tmp_path))


@dataclass
class Pipeline:
    server: ServerProcess
    tmp: Path
    home: Path
    signals: Path
    scan: SecretScan = field(default_factory=SecretScan)
    workers: list[FapProcess] = field(default_factory=list)
    db_url: str | None = None  # PostgreSQL, on the scale-out backend
    storage: S3Storage | None = None  # the bucket, on the scale-out backend

    @property
    def env(self) -> dict[str, str]:
        """What every child gets: an isolated FAP_HOME, no keyring, the test analyzers importable."""
        return {
            "FAP_HOME": str(self.home),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "FAP_TEST_SIGNALS": str(self.signals),
        }

    def start_worker(self, *extra: str, analyzer: str | None = None) -> FapProcess:
        argv = fap_argv("work", VERBOSE, "--server", self.server.url, "--concurrency", "2", *extra)
        if analyzer or "--engine-command" in extra:
            # The engine's sandbox shows it nothing of the worker's: the test analyzers come in.
            signals = {"FAP_TEST_SIGNALS": str(self.signals)}
            argv += engine_flags(REPO, writable=self.signals, env=signals)
        if analyzer:
            # In the reference engine's stead: the organisations ask for it.
            engine = fap_argv("engine", "--analyzer", analyzer, "--engine", DEFAULT_ENGINE)
            argv += ["--engine-command", shlex.join(engine)]
        worker = FapProcess(
            argv=argv,
            log_path=self.tmp / f"worker-{len(self.workers)}.log",
            env={**self.env, "FAP_TOKEN": self.server.processor_token},
        )
        self.workers.append(worker)
        return worker.start()

    def fap(
        self, *args: str, token: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run one client command to its end, as a user would from a shell."""
        env = {**os.environ, **self.env, "FAP_SERVER": self.server.url}
        env["FAP_TOKEN"] = token if token is not None else self.server.owner_token
        done = subprocess.run(
            fap_argv(*args),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        self._keep_log(args, done.stderr)
        return done

    def _keep_log(self, args: tuple[str, ...], stderr: str | bytes) -> None:
        """A client command's stderr is its log: kept beside the others for the secret scan.
        (Its stdout is its output: ``fap keys export`` prints the device key there, by design.)"""
        text = stderr if isinstance(stderr, str) else stderr.decode(errors="replace")
        number = len(list(self.tmp.glob("client-*.log")))
        (self.tmp / f"client-{number}-{args[0] if args else 'fap'}.log").write_text(text)

    def fap_bytes(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        """Run one client command whose stdout is binary (``results get --raw``)."""
        env = {**os.environ, **self.env, "FAP_SERVER": self.server.url}
        env["FAP_TOKEN"] = self.server.owner_token
        done = subprocess.run(
            fap_argv(*args), env=env, capture_output=True, timeout=300, check=False
        )
        self._keep_log(args, done.stderr)
        return done

    def api(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {token or self.server.owner_token}"},
            timeout=30,
        )

    def stored(self) -> Iterator[tuple[str, bytes]]:
        """Everything the server keeps, wherever it keeps it: data dir, database, bucket."""
        for path in self.server.data_dir.rglob("*"):
            if path.is_file():
                yield str(path), path.read_bytes()
        if self.db_url:
            plain = self.db_url.replace("postgresql+asyncpg://", "postgresql://")
            dump = subprocess.run(
                ["pg_dump", "--data-only", plain], capture_output=True, check=True
            )
            yield "database", dump.stdout
        if self.storage:
            client = self.storage.client()
            for key in self.storage.stored_keys():
                body = client.get_object(Bucket=self.storage.bucket, Key=key)["Body"]
                yield f"s3://{self.storage.bucket}/{key}", body.read()

    def upload(self, *args: str) -> list[dict[str, Any]]:
        """``fap upload ARGS --json``: one decoded line per file; the exit code is checked by the caller."""
        done = self.fap("upload", *args, "--json")
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        assert "Traceback" not in done.stderr, done.stderr
        return lines


@pytest.fixture(params=["embedded", "scale-out"])
def pipeline(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    start_server: Callable[..., ServerProcess],
    secret_scan: SecretScan,
) -> Iterator[Pipeline]:
    """A server with short leases (so lapses show in seconds), and no worker yet — on each
    backend: the embedded defaults (SQLite, blobs in the data dir) and the scale-out one
    (PostgreSQL, an S3 server). The same tests, the same code paths."""
    home = tmp_path / "home"
    signals = tmp_path / "signals"
    home.mkdir()
    signals.mkdir()
    args = [VERBOSE, "--lease-seconds", "4", "--heartbeat-seconds", "1", "--max-attempts", "2"]
    db_url: str | None = None
    storage: S3Storage | None = None
    env: dict[str, str] = {}
    if request.param == "scale-out":
        db_url = request.getfixturevalue("pg_url")
        storage = request.getfixturevalue("s3_storage")
        args += ["--db", db_url, "--storage", storage.url]
        env = storage.env
    server = start_server(*args, env=env)
    pipe = Pipeline(
        server=server,
        tmp=tmp_path,
        home=home,
        signals=signals,
        db_url=db_url,
        storage=storage,
        scan=secret_scan,
    )
    yield pipe
    stop_all(pipe.workers)
    # Before the database and the bucket go with their fixtures.
    secret_scan.add_env(env)
    if db_url:
        secret_scan.add_database(db_url)


def server_log_tail(pipe: Pipeline) -> str:
    logs = [pipe.server.log(), *(w.log() for w in pipe.workers)]
    return "\n----\n".join(log[-3000:] for log in logs)
