"""A worker against the fake server, with a real engine process on a real unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.engines.analyzers import MARKERS_ENV
from tests.support.processes import fap_argv
from tests.unit.worker.fake_server import BASE, ENGINE, FakeServer

from fap.api import ApiSession
from fap.worker import EngineProcess, JobServices, Worker
from fap.worker.engine_process import start_engines

REPO = Path(__file__).resolve().parents[3]


def engine_command(analyzer: str) -> list[str]:
    return fap_argv("engine", "--engine", ENGINE, "--analyzer", analyzer)


@dataclass
class Running:
    worker: Worker
    engines: list[EngineProcess]
    task: asyncio.Task[bool]

    @property
    def engine(self) -> EngineProcess:
        [engine] = self.engines
        return engine


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
def fake() -> FakeServer:
    return FakeServer()


@pytest.fixture
def running_worker(
    fake: FakeServer, markers: Path
) -> Callable[..., AbstractAsyncContextManager[Running]]:
    @asynccontextmanager
    async def start(
        analyzer: str = "fap.engine.reference:analyze",
        *,
        concurrency: int = 1,
        job_timeout: float = 60.0,
        prefetch: int = 2,
    ) -> AsyncIterator[Running]:
        executor = ThreadPoolExecutor(max_workers=2)
        engines = [
            EngineProcess(engine_command(analyzer), label=f"slot {n}") for n in range(concurrency)
        ]
        try:
            async with (
                ApiSession(
                    BASE, "fap_processor_test", transport=fake.transport, retry_for=0.3
                ) as session,
                httpx.AsyncClient(transport=fake.transport) as blobs,
                contextlib.AsyncExitStack() as stack,
            ):
                for engine in engines:
                    stack.push_async_exit(engine)
                await start_engines(engines)
                services = JobServices(
                    session=session,
                    blobs=blobs,
                    executor=executor,
                    prefetch=prefetch,
                    job_timeout=job_timeout,
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
