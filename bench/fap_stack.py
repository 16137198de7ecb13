"""A real fap deployment for the benchmark: ``fap serve`` with its blobs in the S3 bucket, and
``fap work`` processors, all on the host; the client's presigned PUTs go to S3 over the link.

The server and the processors are the tests' own process wrappers (terminate, wait, kill; ready
once /healthz answers). The benchmark watches the queue through the public API (``GET
/v1/status``) with httpx rather than by spawning ``fap status``: a poll must cost the machine
nothing, or it would slow what it measures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.support.processes import FapProcess, ServerProcess, fap_argv, free_port

from bench.storage import Bucket
from fap.api import API_VERSION, API_VERSION_HEADER, STATUS

__all__ = ("FapStack",)

# Jobs in these states still cost a processor CPU: a measurement waits until there are none.
_BUSY_STATES = ("queued", "leased")


@dataclass
class FapStack:
    """One server on a fresh data dir, storing under ``prefix`` in ``bucket``."""

    directory: Path
    bucket: Bucket
    prefix: str
    base_env: dict[str, str]
    server: ServerProcess | None = None
    workers: list[FapProcess] = field(default_factory=list)

    def start(self) -> FapStack:
        self.directory.mkdir(parents=True, exist_ok=True)
        port = free_port()
        data = self.directory / "data"
        self.server = ServerProcess(
            argv=fap_argv(
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data),
                "--storage",
                self.bucket.storage_url(self.prefix),
            ),
            log_path=self.directory / "server.log",
            env={**self.base_env, **self.bucket.env, "FAP_HOME": str(self.directory / "srv")},
            port=port,
            data_dir=data,
        )
        try:
            self.server.start().wait_ready()
        except (RuntimeError, TimeoutError):
            self.server.stop()
            raise
        return self

    def secrets(self) -> list[str]:
        """The tokens this server wrote: the report must hold none of them."""
        if self.server is None or not (self.server.data_dir / "local-owner.token").exists():
            return []
        return [self.server.owner_token, self.server.processor_token]

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def client_env(self, home: Path) -> dict[str, str]:
        """A desktop client of this server: its own FAP_HOME, the owner's token, no keyring.
        It holds no storage key: it only ever sees presigned URLs."""
        assert self.server is not None
        env = {
            key: value
            for key, value in self.base_env.items()
            if not key.startswith("AWS_")  # the client must not need them
        }
        return {
            **env,
            "FAP_HOME": str(home),
            "FAP_SERVER": self.server.url,
            "FAP_TOKEN": self.server.owner_token,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        }

    def start_workers(self, count: int) -> list[FapProcess]:
        """``count`` processors, each with its default concurrency (one slot per core)."""
        assert self.server is not None
        started = []
        for _ in range(count):
            index = len(self.workers)
            worker = FapProcess(
                argv=fap_argv("work", "--server", self.server.url),
                log_path=self.directory / f"worker-{index}.log",
                env={
                    **self.base_env,
                    "FAP_HOME": str(self.directory / f"worker-{index}"),
                    "FAP_TOKEN": self.server.processor_token,
                },
            ).start()
            self.workers.append(worker)
            started.append(worker)
        return started

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()

    def status(self) -> dict[str, object]:
        """The organisation's StatusReport, as the API answers it."""
        assert self.server is not None
        answer = httpx.get(
            f"{self.url}{STATUS}",
            headers={
                "Authorization": f"Bearer {self.server.owner_token}",
                API_VERSION_HEADER: API_VERSION,
            },
            timeout=10.0,
        )
        answer.raise_for_status()
        report: dict[str, object] = answer.json()
        return report

    def jobs(self) -> dict[str, int]:
        jobs = self.status().get("jobs", {})
        assert isinstance(jobs, dict)
        return {str(state): int(count) for state, count in jobs.items()}

    def wait_settled(self, timeout: float) -> bool:
        """Wait until no job is queued or leased (the processors are idle); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.jobs()
            if sum(jobs.get(state, 0) for state in _BUSY_STATES) == 0:
                return True
            time.sleep(0.25)
        return False

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10.0).text

    def stop(self) -> None:
        self.stop_workers()
        if self.server is not None:
            self.server.stop()
