"""``fap engine`` as the worker runs it: a real process on a unix socket, spoken to over HTTP/1.1."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.support.processes import FapProcess, fap_argv, wait_until

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


def _env() -> dict[str, str]:
    """The test analyzers importable, as an engine's own module would be."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


@dataclass
class Engine:
    process: FapProcess
    path: Path

    def client(self) -> httpx.Client:
        transport = httpx.HTTPTransport(uds=str(self.path))
        return httpx.Client(transport=transport, base_url="http://engine", timeout=30)

    def answering(self) -> bool:
        if not self.process.alive():
            raise RuntimeError(f"fap engine exited early:\n{self.process.log()}")
        # Probe with a plain socket first: httpx's sync unix transport leaks the socket of a
        # refused connection, which the warnings-as-errors policy would report.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.path))
            except OSError:
                return False
        with self.client() as client:
            return client.get("/v1/info").status_code == 200


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # AF_UNIX paths hold ~107 bytes: pytest's tmp_path is too long for comfort.
    path = Path(tempfile.mkdtemp(prefix="fap-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_engine(tmp_path: Path, socket_dir: Path) -> Iterator[Callable[..., Engine]]:
    started: list[Engine] = []

    def start(*args: str) -> Engine:
        path = socket_dir / f"e{len(started)}.sock"
        process = FapProcess(
            argv=fap_argv("engine", "--socket", str(path), *args),
            log_path=tmp_path / f"engine-{len(started)}.log",
            env=_env(),
        ).start()
        engine = Engine(process, path)
        started.append(engine)
        wait_until(engine.answering, 30, "fap engine to answer /v1/info")
        return engine

    yield start
    for engine in started:
        engine.process.stop()


def _headers(data: bytes, name: str = "file.bin", upload_id: str = "u-1") -> dict[str, str]:
    return {
        "Fap-Upload-Id": upload_id,
        "Fap-File-Name": name,
        "Fap-File-Size": str(len(data)),
        "Fap-File-Sha256": hashlib.sha256(data).hexdigest(),
    }


def _pieces(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """An iterator body, which httpx sends with chunked transfer encoding, as the worker does."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_info_answers_on_a_socket_only_its_user_can_use(
    start_engine: Callable[..., Engine],
) -> None:
    engine = start_engine()
    with engine.client() as client:
        assert client.get("/v1/info").json() == {"engine": "size@1", "protocol": 1}
    assert stat.S_IMODE(engine.path.stat().st_mode) == 0o600


def test_analyzes_an_empty_file(start_engine: Callable[..., Engine]) -> None:
    engine = start_engine()
    with engine.client() as client:
        answer = client.post("/v1/analyze", content=_pieces(b""), headers=_headers(b""))
    assert answer.status_code == 200, answer.text
    assert answer.json()["bytes"] == 0
    assert answer.json()["sha256"] == hashlib.sha256(b"").hexdigest()


def test_analyzes_a_multi_mib_streamed_body(start_engine: Callable[..., Engine]) -> None:
    engine = start_engine()
    data = os.urandom(6 * MiB + 17)
    with engine.client() as client:
        answer = client.post("/v1/analyze", content=_pieces(data), headers=_headers(data))
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["bytes"] == len(data)
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert result["looks_like_text"] is False


def test_serves_analyses_side_by_side(start_engine: Callable[..., Engine]) -> None:
    engine = start_engine()
    files = [os.urandom(MiB + n) for n in range(3)]
    with engine.client() as client:
        answers = [
            client.post("/v1/analyze", content=_pieces(d), headers=_headers(d)) for d in files
        ]
    assert [a.json()["bytes"] for a in answers] == [len(d) for d in files]


def test_missing_or_bad_headers_are_a_400(start_engine: Callable[..., Engine]) -> None:
    engine = start_engine()
    data = b"twelve bytes"
    with engine.client() as client:
        missing = client.post("/v1/analyze", content=data, headers={"Fap-Upload-Id": "u"})
        bad_size = client.post(
            "/v1/analyze", content=data, headers={**_headers(data), "Fap-File-Size": "twelve"}
        )
        short = client.post(
            "/v1/analyze", content=_pieces(data), headers={**_headers(data), "Fap-File-Size": "13"}
        )
        # The engine still serves well-formed requests afterwards.
        fine = client.post("/v1/analyze", content=data, headers=_headers(data))
    assert missing.status_code == 400
    assert "header is missing" in missing.json()["error"]
    assert bad_size.status_code == 400
    assert "Fap-File-Size" in bad_size.json()["error"]
    assert short.status_code == 400
    assert "12 bytes where Fap-File-Size announced 13" in short.json()["error"]
    assert fine.status_code == 200


def test_a_custom_analyzer_from_pythonpath_under_its_own_engine_name(
    start_engine: Callable[..., Engine],
) -> None:
    engine = start_engine("--analyzer", "tests.engines.analyzers:echo", "--engine", "echo@2")
    data = b"hello"
    with engine.client() as client:
        assert client.get("/v1/info").json()["engine"] == "echo@2"
        answer = client.post(
            "/v1/analyze",
            content=_pieces(data),
            headers=_headers(data, name="r%C3%A9sum%C3%A9.txt", upload_id="up-9"),
        )
    assert answer.json()["name"] == "résumé.txt"
    assert answer.json()["upload_id"] == "up-9"
    assert answer.json()["read"] == 5


def test_an_analyzer_that_raises_is_a_500_and_the_engine_lives_on(
    start_engine: Callable[..., Engine],
) -> None:
    engine = start_engine("--analyzer", "tests.engines.analyzers:fail", "--engine", "fail@1")
    data = os.urandom(3 * MiB)  # fails after one byte: the engine answers before the body ends
    with engine.client() as client:
        answer = client.post("/v1/analyze", content=_pieces(data), headers=_headers(data))
        assert answer.status_code == 500
        assert answer.json() == {
            "error": "The analyzer raised ValueError: this analyzer always fails."
        }
        assert client.get("/v1/info").status_code == 200


def test_sigterm_stops_the_engine_and_removes_its_socket(
    start_engine: Callable[..., Engine],
) -> None:
    engine = start_engine()
    assert engine.process.process is not None
    engine.process.process.send_signal(signal.SIGTERM)
    assert engine.process.process.wait(15) == 0
    assert not engine.path.exists()


def test_the_socket_may_come_from_the_environment(socket_dir: Path, tmp_path: Path) -> None:
    path = socket_dir / "env.sock"
    process = FapProcess(
        argv=fap_argv("engine"),
        log_path=tmp_path / "engine.log",
        env={**_env(), "FAP_ENGINE_SOCKET": str(path)},
    ).start()
    try:
        engine = Engine(process, path)
        wait_until(engine.answering, 30, "fap engine to answer on FAP_ENGINE_SOCKET")
    finally:
        process.stop()


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "FAP_ENGINE_SOCKET"}
    return subprocess.run(
        fap_argv("engine", *args),
        env={**full, **_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_a_socket_it_says_so_and_exits_non_zero() -> None:
    done = _run()
    assert done.returncode == 3
    assert "--socket PATH or set FAP_ENGINE_SOCKET" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_analyzer_is_one_sentence_and_a_non_zero_exit(socket_dir: Path) -> None:
    done = _run(
        "--socket", str(socket_dir / "x.sock"),
        "--analyzer", "nowhere_to_be_found:run", "--engine", "nowhere@1",
    )  # fmt: skip
    assert done.returncode == 3
    assert "cannot be found" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_socket_another_engine_listens_on_is_refused(
    start_engine: Callable[..., Engine],
) -> None:
    engine = start_engine()
    done = _run("--socket", str(engine.path))
    assert done.returncode == 3
    assert "already listening" in done.stderr
    assert engine.answering()
