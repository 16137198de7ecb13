"""Fixtures every test layer shares."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.moto import MotoServer, running_moto
from tests.support.oidc_provider import oidc_provider  # noqa: F401  (a fixture for every test)
from tests.support.postgres import (
    PostgresUnreachable,
    PrivateServer,
    admin_url,
    async_url,
    create_database,
    drop_database,
)
from tests.support.processes import ServerProcess, fap_argv, free_port, stop_all
from tests.support.seaweedfs import S3Storage, SeaweedFS, SeaweedFSError, running_seaweedfs


class _Figures:
    """Lines a test records as its ``figures`` property (``record_property("figures", line)``),
    printed together at the end of the run. Properties travel from pytest-xdist's workers to the
    controller, where a test's own prints never show."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.lines += [
                str(value) for name, value in report.user_properties if name == "figures"
            ]

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.lines:
            terminalreporter.section("figures")
            for line in self.lines:
                terminalreporter.write_line(line)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_Figures(), "fap-figures")


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """A command run in-process (typer's CliRunner) sets up fap's logging on the runner's own
    stderr, which is closed once it returns: the root logger's handlers and level are put back
    after each test, so no later test logs to a closed stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def fap_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated client state directory; no test touches the real user's."""
    home = tmp_path / "fap-home"
    home.mkdir()
    monkeypatch.setenv("FAP_HOME", str(home))
    # No OS keyring here: the device key falls back to a 0600 file under FAP_HOME.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    for name in ("FAP_TOKEN", "FAP_SERVER"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start ``fap serve`` processes on free ports; every one is stopped after the test."""
    started: list[ServerProcess] = []

    def start(
        *extra: str,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> ServerProcess:
        port = port or free_port()
        data = data_dir or tmp_path / f"server-{len(started)}"
        server = ServerProcess(
            argv=fap_argv("serve", "--port", str(port), "--data-dir", str(data), *extra),
            log_path=tmp_path / f"server-{len(started)}.log",
            env=env or {},
            port=port,
            data_dir=data,
        )
        started.append(server)
        return server.start().wait_ready()

    yield start
    stop_all(started)


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """One running ``fap serve`` with its data dir, URL and local tokens."""
    return start_server()


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """One S3 server (SeaweedFS) for the whole run, started by the first test that needs it."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running_seaweedfs())
        except SeaweedFSError as error:
            pytest.fail(f"SeaweedFS could not start: {error}", pytrace=False)
        yield server


@pytest.fixture
def s3_storage(seaweedfs: SeaweedFS) -> Iterator[S3Storage]:
    """A fresh bucket: ``.url`` for ``--storage``, ``.env`` for the server, the keys for tests."""
    storage = seaweedfs.new_bucket()
    yield storage
    seaweedfs.drop_bucket(storage)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test (``--db``), dropped after it. No PostgreSQL is a
    failure, never a skip: run scripts/ensure-postgres.sh, or set FAP_TEST_POSTGRES."""
    admin = admin_url()
    try:
        name = create_database(admin)
    except PostgresUnreachable as error:
        pytest.fail(str(error), pytrace=False)
    yield async_url(admin, name)
    drop_database(admin, name)


@pytest.fixture(scope="session")
def aws_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A real AWS API server (moto: Secrets Manager, IAM) for the run, standing in for LocalStack;
    tests keep apart by the names they create."""
    with running_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def private_postgres() -> Iterator[PrivateServer]:
    """A PostgreSQL server of this test's own, to restart at will or to measure alone: autovacuum
    off (nothing of its own happens in it) and pg_stat_statements loaded (every statement counted
    as it ends)."""
    settings = {"autovacuum": "off", "shared_preload_libraries": "pg_stat_statements"}
    try:
        with PrivateServer.running(**settings) as server:
            yield server
    except PostgresUnreachable as error:
        pytest.fail(str(error), pytrace=False)
