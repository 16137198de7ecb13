"""A real PostgreSQL for the tests.

Most tests get a fresh database of their own on the shared server (``FAP_TEST_POSTGRES``, by default
the one ``scripts/ensure-postgres.sh`` provides on 127.0.0.1:5432 with trust auth), dropped after
the test. The test that restarts PostgreSQL gets a private server instead (:class:`PrivateServer`):
restarting the shared one would break every other test using it at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import asyncpg
from sqlalchemy.engine import make_url

from tests.support.processes import free_port

__all__ = (
    "ADMIN_ENV",
    "PostgresUnreachable",
    "PrivateServer",
    "activity",
    "admin_url",
    "async_url",
    "create_database",
    "drop_database",
    "statements",
    "statistics",
)

T = TypeVar("T")

ADMIN_ENV = "FAP_TEST_POSTGRES"
_DEFAULT_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
_CONNECT_TIMEOUT = 5.0
# Who runs a private server when the tests run as root (PostgreSQL refuses to run as root).
_OWNER = "postgres"


class PostgresUnreachable(Exception):
    """No PostgreSQL answers where the tests were told to find one."""


def admin_url() -> str:
    """Where the tests create their databases: a role that may CREATE and DROP DATABASE."""
    return os.environ.get(ADMIN_ENV) or _DEFAULT_ADMIN


def async_url(admin: str, database: str) -> str:
    """The URL ``fap serve --db`` takes for ``database`` on the server of ``admin``."""
    url = make_url(admin).set(drivername="postgresql+asyncpg", database=database)
    return url.render_as_string(hide_password=False)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end from synchronous code, even while an event loop runs here
    (a sync fixture of an async test): then on a thread with a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


async def _connect(admin: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(admin, timeout=_CONNECT_TIMEOUT)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise PostgresUnreachable(
            f"PostgreSQL does not answer at {_shown(admin)} ({error}); run "
            f"scripts/ensure-postgres.sh or point {ADMIN_ENV} at a server."
        ) from error


def create_database(admin: str) -> str:
    """A new, empty database ``fap_test_<random>``; answer its name."""
    name = f"fap_test_{uuid4().hex[:16]}"

    async def create() -> None:
        connection = await _connect(admin)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    run(create())
    return name


def drop_database(admin: str, name: str) -> None:
    """Drop the database, ending whatever connections to it are left first."""

    async def drop() -> None:
        connection = await _connect(admin)
        try:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    run(drop())


def statistics(admin: str, name: str) -> dict[str, int]:
    """The database's counters of work done: transactions, and rows read by queries."""

    async def read() -> dict[str, int]:
        connection = await _connect(admin)
        try:
            row = await connection.fetchrow(
                "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, "
                "tup_updated, tup_deleted FROM pg_stat_database WHERE datname = $1",
                name,
            )
        finally:
            await connection.close()
        assert row is not None, f"no statistics for database {name}"
        return {key: int(value) for key, value in row.items()}

    return run(read())


def statements(admin: str, name: str) -> dict[str, int]:
    """Statements run on the database so far, by text, with how many times each ran
    (pg_stat_statements, which counts each statement as it ends)."""

    async def read() -> dict[str, int]:
        connection = await _connect(admin)
        try:
            await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            rows = await connection.fetch(
                "SELECT query, sum(calls)::bigint AS calls FROM pg_stat_statements "
                "JOIN pg_database ON pg_database.oid = dbid WHERE datname = $1 GROUP BY query",
                name,
            )
        finally:
            await connection.close()
        return {row["query"]: int(row["calls"]) for row in rows}

    return run(read())


def activity(admin: str, name: str) -> dict[int, tuple[str, str]]:
    """Every session on the database: pid -> (application, when its state last changed)."""

    async def read() -> dict[int, tuple[str, str]]:
        connection = await _connect(admin)
        try:
            rows = await connection.fetch(
                "SELECT pid, application_name, state_change::text AS changed "
                "FROM pg_stat_activity WHERE datname = $1",
                name,
            )
        finally:
            await connection.close()
        return {row["pid"]: (row["application_name"], row["changed"]) for row in rows}

    return run(read())


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@dataclass
class PrivateServer:
    """A throwaway PostgreSQL server of the test's own (initdb in a temporary directory, trust
    auth, a free port on 127.0.0.1), to stop and start at will."""

    root: Path
    port: int
    bindir: Path
    settings: dict[str, str]

    @classmethod
    @contextlib.contextmanager
    def running(cls, **settings: str) -> Iterator[PrivateServer]:
        """A new server with these settings (``-c NAME=VALUE``), stopped and deleted after."""
        bindir = _server_bindir()
        # Not under pytest's tmp_path: the server may run as another user (root may not run it),
        # who must reach the directory.
        root = Path(tempfile.mkdtemp(prefix="fap-pg-"))
        server = cls(root=root, port=free_port(), bindir=bindir, settings=settings)
        try:
            if os.geteuid() == 0:
                shutil.chown(root, _OWNER)
            server._initdb()
            server.start()
            yield server
        finally:
            with contextlib.suppress(PostgresUnreachable):
                server.stop()
            shutil.rmtree(root, ignore_errors=True)

    @property
    def admin(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        settings = {
            "listen_addresses": "127.0.0.1",
            "fsync": "off",  # a throwaway server: speed over durability
            "full_page_writes": "off",
            **self.settings,
        }
        options = f"-p {self.port} -k {self.root} " + " ".join(
            f"-c {name}={value}" for name, value in settings.items()
        )
        self._pg_ctl("start", "-w", "-t", "30", "-l", str(self.root / "log"), "-o", options)

    def stop(self) -> None:
        """A fast shutdown, as a restart does: sessions are ended, the server exits cleanly."""
        if (self.root / "data" / "postmaster.pid").exists():
            self._pg_ctl("stop", "-w", "-t", "30", "-m", "fast")

    def _initdb(self) -> None:
        self._as_owner(
            str(self.bindir / "initdb"),
            "-D",
            str(self.root / "data"),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def _pg_ctl(self, *args: str) -> None:
        self._as_owner(str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), *args)

    def _as_owner(self, *argv: str) -> None:
        """Run ``argv``; as the postgres user when we are root."""
        command = list(argv)
        if os.geteuid() == 0:
            command = ["runuser", "-u", _OWNER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().replace("\n", " ")
            raise PostgresUnreachable(f"{Path(argv[0]).name} {argv[1]} failed: {said}")


def _server_bindir() -> Path:
    """Where initdb and pg_ctl are: on PATH, or Debian's /usr/lib/postgresql/VERSION/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    if not candidates:
        raise PostgresUnreachable(
            "PostgreSQL's server programs (initdb, pg_ctl) are not installed; run "
            "scripts/ensure-postgres.sh."
        )
    return Path(candidates[-1]).parent
