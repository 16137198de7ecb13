"""A worker against the real server app in-process, with real engine processes on real unix
sockets. The server's clock is the test's: a lease lapses only when a test moves it."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.engines.analyzers import MARKERS_ENV
from tests.support.app_transport import AppTransport
from tests.support.processes import fap_argv
from tests.unit.server.harness import BASE, Server, running_server
from tests.unit.worker.pipeline import ENGINE, Pipeline

from fap.api import ApiSession
from fap.backoff import Backoff
from fap.transfer import Retries
from fap.worker import EngineProcess, JobServices, Worker
from fap.worker.completions import CompletionSender
from fap.worker.engine_process import start_engines

REPO = Path(__file__).resolve().parents[3]
# The object store retried as a worker does — as many attempts before it only goes on while the
# lease is held — but milliseconds apart: an outage longer than that budget takes no time.
BLOB_RETRIES = Retries(backoff=Backoff(first=0.01, cap=0.05))


def engine_command(analyzer: str) -> list[str]:
    return fap_argv("engine", "--engine", ENGINE, "--analyzer", analyzer)


def server_with(**overrides: Any) -> pytest.MarkDecorator:
    """Run a test against a server with these settings (a short heartbeat, more attempts)."""
    name = ",".join(f"{key}={value}" for key, value in overrides.items())
    return pytest.mark.parametrize("server", [overrides], indirect=True, ids=[name])


@dataclass
class Running:
    """A worker running in a task of the test's, with its engines."""

    worker: Worker
    engines: list[EngineProcess]
    task: asyncio.Task[bool]

    @property
    def engine(self) -> EngineProcess:
        [engine] = self.engines
        return engine


# running_worker(analyzer, concurrency=…, job_timeout=…, prefetch=…, retry_for=…): a worker
# serving until the block ends.
Start = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture
def markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where test analyzers leave files; the engine process inherits the environment."""
    path = tmp_path / "markers"
    path.mkdir()
    monkeypatch.setenv(MARKERS_ENV, str(path))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    return path


@pytest.fixture
async def server(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    # One attempt per job unless a test asks for more: a failure the worker reports is then the
    # job's end, and the test sees that attempt's reason as the upload's error.
    overrides: dict[str, Any] = {"max_attempts": 1, **getattr(request, "param", {})}
    async with running_server(tmp_path / "data", **overrides) as running:
        yield running


@pytest.fixture
def pipeline(server: Server) -> Pipeline:
    return Pipeline(server, AppTransport(server.app))


@pytest.fixture
def running_worker(pipeline: Pipeline, markers: Path) -> Start:
    @asynccontextmanager
    async def start(
        analyzer: str = "fap.engine.reference:analyze",
        *,
        concurrency: int = 1,
        job_timeout: float = 60.0,
        prefetch: int = 2,
        retry_for: float = 0.3,
        completions_together: bool = True,
    ) -> AsyncIterator[Running]:
        executor = ThreadPoolExecutor(max_workers=2)
        engines = [
            EngineProcess(engine_command(analyzer), label=f"slot {n}") for n in range(concurrency)
        ]
        wire = pipeline.wire
        try:
            async with (
                # A short retry budget by default: a server that does not answer is given up on
                # at once. A test of a lost answer gives the session room to send again.
                ApiSession(
                    BASE, pipeline.server.processor, transport=wire, retry_for=retry_for
                ) as session,
                # The local blob store's URLs are the app's own: they go over the same wire.
                httpx.AsyncClient(transport=wire) as blobs,
                contextlib.AsyncExitStack() as stack,
            ):
                for engine in engines:
                    stack.push_async_exit(engine)
                await start_engines(engines)
                completions = CompletionSender(session) if completions_together else None
                if completions is not None:
                    stack.push_async_callback(completions.aclose)
                services = JobServices(
                    session=session,
                    blobs=blobs,
                    executor=executor,
                    prefetch=prefetch,
                    job_timeout=job_timeout,
                    blob_retries=BLOB_RETRIES,
                    completions=completions,
                )
                worker = Worker(services, engines, worker_id="test-worker")
                task = asyncio.create_task(worker.run())
                try:
                    yield Running(worker, engines, task)
                except BaseException:
                    worker.abort()  # the test failed: no draining jobs that may never end
                    raise
                finally:
                    worker.stop()
                    await asyncio.wait_for(task, 30)
        finally:
            executor.shutdown()

    return start
