"""``fap work`` as a processor runs it: a real process, its own engine, a real ``fap serve``."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from tests.support.engine_sandbox import engine_flags
from tests.support.processes import FapProcess, ServerProcess, fap_argv, free_port, wait_until
from tests.support.uploads import send_chunk

from fap.api import UploadCreate, UploadCreated, UploadInfo
from fap.crypto import DeviceIdentity, open_sealed
from fap.engine.protocol import DEFAULT_ENGINE
from fap.transfer import encode_chunk

REPO = Path(__file__).resolve().parents[2]
KiB = 1024


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


@pytest.fixture
def start_worker(tmp_path: Path, markers: Path) -> Iterator[Callable[..., FapProcess]]:
    started: list[FapProcess] = []

    def start(
        server: str, token: str, *extra: str, analyzer: str | None = None, concurrency: int = 1
    ) -> FapProcess:
        argv = fap_argv("work", "--server", server, "--concurrency", str(concurrency), *extra)
        if analyzer:
            # In the reference engine's stead: the organisations ask for it.
            engine = fap_argv("engine", "--analyzer", analyzer, "--engine", DEFAULT_ENGINE)
            argv += ["--engine-command", subprocess.list2cmdline(engine)]
            # The sandboxed engine sees the test analyzers and the markers, nothing else.
            markers_env = {"FAP_TEST_MARKERS": str(markers)}
            argv += engine_flags(REPO, writable=markers, env=markers_env)
        worker = FapProcess(
            argv=argv,
            log_path=tmp_path / f"worker-{len(started)}.log",
            env={
                "FAP_TOKEN": token,
                "FAP_TEST_MARKERS": str(markers),
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
                ),
            },
        )
        started.append(worker)
        worker.start()
        wait_until(
            lambda: len(_engine_pids(worker)) == concurrency, 30, f"the engines\n{worker.log()}"
        )
        return worker

    yield start
    for worker in started:
        worker.stop()


def _engine_pids(worker: FapProcess) -> list[int]:
    """The engines' pids, from the worker's log: one engine per slot."""
    if not worker.alive():
        raise RuntimeError(f"fap work exited early:\n{worker.log()}")
    return [
        int(pid)
        for pid in re.findall(r"Engine \S+ for slot \d is ready \(pid (\d+)\)", worker.log())
    ]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone too: it runs nothing and only waits for its parent to reap it. The
    # process may end between the two looks.
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


class Uploader:
    """The test plays the desktop client through the public API."""

    def __init__(self, server: ServerProcess) -> None:
        self.identity = DeviceIdentity.generate()
        self.api = httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {server.owner_token}"},
            timeout=30,
        )
        self.blobs = httpx.Client(timeout=30)
        device = {"name": "test", "recipient": self.identity.recipient}
        assert self.api.post("/v1/devices", json=device).status_code < 300

    def upload(self, data: bytes, name: str, chunk_size: int = 64 * KiB) -> str:
        create = UploadCreate(
            name=name,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            chunk_size=chunk_size,
        )
        answer = self.api.post("/v1/uploads", content=msgspec.json.encode(create))
        assert answer.status_code == 201, answer.text
        created = msgspec.json.decode(answer.content, type=UploadCreated)
        for seq in range(created.upload.chunk_count):
            chunk = encode_chunk(seq, data[seq * chunk_size : (seq + 1) * chunk_size])
            send_chunk(self.api, self.blobs, created.upload.id, chunk)
        return created.upload.id

    def info(self, upload_id: str) -> UploadInfo:
        answer = self.api.get(f"/v1/uploads/{upload_id}")
        return msgspec.json.decode(answer.content, type=UploadInfo)

    def finished(self, upload_id: str) -> bool:
        return self.info(upload_id).state in ("done", "failed")

    def result(self, upload_id: str) -> dict[str, object]:
        url = self.api.get(f"/v1/uploads/{upload_id}/result").json()["url"]
        sealed = self.blobs.get(url).content
        opened: dict[str, object] = json.loads(open_sealed(sealed, self.identity))
        return opened

    def close(self) -> None:
        self.api.close()
        self.blobs.close()


@pytest.fixture
def uploader(server: ServerProcess) -> Iterator[Uploader]:
    client = Uploader(server)
    yield client
    client.close()


def test_a_worker_analyses_uploads_and_seals_each_result_for_its_uploader(
    server: ServerProcess, uploader: Uploader, start_worker: Callable[..., FapProcess]
) -> None:
    start_worker(server.url, server.processor_token)
    files = {"notes.txt": b"hello\n" * 5000, "noise.bin": os.urandom(200 * KiB), "empty": b""}
    ids = {name: uploader.upload(data, name) for name, data in files.items()}
    for name, upload_id in ids.items():
        wait_until(lambda: uploader.finished(upload_id), 60, f"{name} to be analysed")  # noqa: B023
        assert uploader.info(upload_id).state == "done", uploader.info(upload_id).error
        result = uploader.result(upload_id)
        assert result["bytes"] == len(files[name])
        assert result["sha256"] == hashlib.sha256(files[name]).hexdigest()


@pytest.mark.parametrize(
    ("signum", "group"),
    [(signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["sigterm-to-the-worker", "ctrl-c-to-worker-and-engine"],
)
def test_a_signal_drains_the_job_in_flight_then_stops_the_engine(
    server: ServerProcess,
    uploader: Uploader,
    start_worker: Callable[..., FapProcess],
    markers: Path,
    signum: signal.Signals,
    group: bool,
) -> None:
    worker = start_worker(
        server.url,
        server.processor_token,
        analyzer="tests.engines.analyzers:wait_for_release",
        concurrency=2,
    )
    engines = _engine_pids(worker)
    upload_id = uploader.upload(b"in flight\n" * 100, "in-flight.txt")
    wait_until((markers / f"{upload_id}.read").exists, 60, "the engine to read the file")

    if group:  # as a terminal's Ctrl-C does: the engine is in the worker's process group
        os.killpg(worker.pid, signum)
    else:
        os.kill(worker.pid, signum)
    wait_until(lambda: "leasing no more jobs" in worker.log(), 10, "the worker to drain")
    assert worker.alive()
    (markers / f"{upload_id}.release").touch()

    assert worker.process.wait(30) == 0, worker.log()  # type: ignore[union-attr]
    assert uploader.info(upload_id).state == "done"
    assert uploader.result(upload_id) == {"bytes": 1000}
    assert all(_gone(pid) for pid in engines)
    assert "Traceback" not in worker.log()


def test_a_second_signal_stops_at_once_and_leaves_no_engine(
    server: ServerProcess,
    uploader: Uploader,
    start_worker: Callable[..., FapProcess],
    markers: Path,
) -> None:
    worker = start_worker(
        server.url, server.processor_token, analyzer="tests.engines.analyzers:wait_for_release"
    )
    engines = _engine_pids(worker)
    upload_id = uploader.upload(b"abandoned\n", "abandoned.txt")
    wait_until((markers / f"{upload_id}.read").exists, 60, "the engine to read the file")

    worker.process.send_signal(signal.SIGINT)  # type: ignore[union-attr]
    wait_until(lambda: "leasing no more jobs" in worker.log(), 10, "the worker to drain")
    worker.process.send_signal(signal.SIGINT)  # type: ignore[union-attr]

    assert worker.process.wait(30) == 130, worker.log()  # type: ignore[union-attr]
    assert uploader.info(upload_id).state == "leased"  # the lease lapses back to the queue
    assert all(_gone(pid) for pid in engines)


def test_an_engine_dies_with_its_worker_even_on_kill_9(
    server: ServerProcess, start_worker: Callable[..., FapProcess]
) -> None:
    worker = start_worker(server.url, server.processor_token, concurrency=2)
    engines = _engine_pids(worker)

    os.kill(worker.pid, signal.SIGKILL)  # the worker alone, not its process group

    wait_until(lambda: all(_gone(pid) for pid in engines), 10, "the orphaned engines to die")


def test_an_unreachable_server_is_retried_until_sigterm(
    start_worker: Callable[..., FapProcess],
) -> None:
    worker = start_worker(
        f"http://127.0.0.1:{free_port()}", "fap_processor_nobody", "--retry-for", "0.5"
    )
    engines = _engine_pids(worker)
    wait_until(lambda: "did not answer" in worker.log(), 60, "the worker to log the outage")
    assert worker.alive()

    worker.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    assert worker.process.wait(30) == 0, worker.log()  # type: ignore[union-attr]
    assert all(_gone(pid) for pid in engines)


def _work(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("FAP_TOKEN", "FAP_SERVER")}
    return subprocess.run(
        fap_argv("work", *args),
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_a_token_it_says_so() -> None:
    done = _work("--server", "http://127.0.0.1:9", env={})
    assert done.returncode == 4
    assert "needs a processor token: set FAP_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_a_server_it_says_so() -> None:
    done = _work(env={"FAP_TOKEN": "fap_processor_x"})
    assert done.returncode == 3
    assert "pass --server URL or set FAP_SERVER" in done.stderr


def test_an_engine_that_cannot_start_is_one_sentence_and_exit_8() -> None:
    done = _work(
        "--server",
        "http://127.0.0.1:9",
        "--engine-command",
        "/nonexistent/engine --flag",
        env={"FAP_TOKEN": "fap_processor_x"},
    )
    assert done.returncode == 8
    assert "The engine command '/nonexistent/engine --flag' cannot be started" in done.stderr
    assert "Traceback" not in done.stderr
