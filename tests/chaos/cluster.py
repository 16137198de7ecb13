"""The deployment the chaos test runs: every process of it, each one killable and restartable.

Two ``fap serve`` replicas on a private PostgreSQL and a private SeaweedFS (private because the
test stops them: the shared ones serve other tests), three ``fap work`` processors naming both
replicas, and one ``fap watch`` naming both replicas too. A killed process is started again with
the same command line (a replica on the same port, which clients and workers know it by), its
output in a new log file, so every life of every process can be read after a failure.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from tests.chaos.corpus import CHUNK
from tests.e2e.conftest import REPO
from tests.support.postgres import PrivateServer
from tests.support.processes import FapProcess, ServerProcess, fap_argv, free_port, wait_until
from tests.support.seaweedfs import S3Storage, SeaweedFS

__all__ = ("Cluster", "UploadRow")

# Leases short enough that a killed processor's job is leased again within seconds; the heartbeat
# well inside it, so a busy two-core machine does not make a live processor's lease lapse.
LEASE_SECONDS = "5"
HEARTBEAT_SECONDS = "1"
# A kill of a processor costs its job an attempt (the lease lapses), and so does an S3 outage: a
# worker that cannot GET a chunk for ~8 s abandons the job, once per lease while the outage lasts.
# One kill and one 30 s outage can spend the default 3 (seen in the soak). The test is about losing
# and doubling work, not about the attempt budget: that must not be what runs out.
MAX_ATTEMPTS = "20"
# The watcher takes a file once it has not changed for this long (files arrive whole anyway).
SETTLE_SECONDS = 0.5


@dataclass(frozen=True)
class UploadRow:
    """One upload as the server's database holds it."""

    id: str
    name: str
    state: str
    attempts: int
    lapses: int
    error: str | None


@dataclass
class Role:
    """Every life of one process: the current one is the last."""

    name: str
    lives: list[FapProcess] = field(default_factory=list)

    @property
    def current(self) -> FapProcess:
        return self.lives[-1]


@dataclass
class Cluster:
    tmp: Path
    postgres: PrivateServer
    db_url: str  # as asyncpg takes it; the servers get the same database as postgresql+asyncpg
    weed: SeaweedFS
    storage: S3Storage
    inbox: Path
    results: Path
    replicas: list[Role] = field(default_factory=list)
    processors: list[Role] = field(default_factory=list)
    watcher: Role = field(default_factory=lambda: Role("watch"))
    ports: dict[str, int] = field(default_factory=dict)

    # -- starting ------------------------------------------------------------------------------

    def start(self, processors: int = 3) -> Cluster:
        for name in ("serve-a", "serve-b"):
            self.ports[name] = free_port()
            self.replicas.append(Role(name))
            # One after the other: the first migrates the database and writes the local tokens.
            self._start_replica(self.replicas[-1])
        home = self.tmp / "watch-home"
        home.mkdir(mode=0o700)
        (home / "config.toml").write_text(
            f"[client]\nchunk_size = {CHUNK}\nsettle_seconds = {SETTLE_SECONDS}\n"
        )
        for n in range(processors):
            self.processors.append(Role(f"work-{n}"))
            self._start_processor(self.processors[-1])
        self._start_watcher()
        return self

    @property
    def servers(self) -> str:
        """Both replicas, as clients and processors configured for failover name them."""
        return ",".join(f"http://127.0.0.1:{port}" for port in self.ports.values())

    @property
    def tokens(self) -> Path:
        """The first replica's data dir, where the local owner's and processor's tokens are."""
        return self.tmp / "serve-a"

    def _log(self, role: Role) -> Path:
        logs = self.tmp / "logs"
        logs.mkdir(exist_ok=True)
        return logs / f"{role.name}.{len(role.lives)}.log"

    def _env(self, home: Path) -> dict[str, str]:
        return {
            "FAP_HOME": str(home),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }

    def _start_replica(self, role: Role) -> None:
        port = self.ports[role.name]
        data = self.tmp / role.name
        argv = fap_argv(
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--db",
            self.db_url.replace("postgresql://", "postgresql+asyncpg://", 1),
            "--storage",
            self.storage.url,
            "--lease-seconds",
            LEASE_SECONDS,
            "--heartbeat-seconds",
            HEARTBEAT_SECONDS,
            "--max-attempts",
            MAX_ATTEMPTS,
        )
        env = {**self._env(self.tmp / f"{role.name}-home"), **self.storage.env}
        replica = ServerProcess(
            argv=argv, log_path=self._log(role), env=env, port=port, data_dir=data
        )
        role.lives.append(replica)
        replica.start().wait_ready()

    def _start_processor(self, role: Role) -> None:
        token = (self.tokens / "local-processor.token").read_text().strip()
        argv = fap_argv("work", "--server", self.servers, "--concurrency", "1")
        env = {**self._env(self.tmp / f"{role.name}-home"), "FAP_TOKEN": token}
        role.lives.append(FapProcess(argv=argv, log_path=self._log(role), env=env).start())

    def _start_watcher(self) -> None:
        token = (self.tokens / "local-owner.token").read_text().strip()
        argv = fap_argv("watch", str(self.inbox), "--results", str(self.results))
        env = {
            **self._env(self.tmp / "watch-home"),
            "FAP_SERVER": self.servers,
            "FAP_TOKEN": token,
        }
        log = self._log(self.watcher)
        self.watcher.lives.append(FapProcess(argv=argv, log_path=log, env=env).start())

    # -- chaos -----------------------------------------------------------------------------------

    def kill_processor(self, index: int) -> None:
        """SIGKILL a processor (and its engine, in its process group), then start it again."""
        role = self.processors[index]
        role.current.kill_hard()
        self._start_processor(role)

    def kill_replica(self, index: int) -> None:
        """SIGKILL a replica; it is started again by :meth:`restart_replica`."""
        self.replicas[index].current.kill_hard()

    def restart_replica(self, index: int) -> None:
        self._start_replica(self.replicas[index])

    def kill_watcher(self) -> None:
        """SIGKILL the watcher; it is started again by :meth:`restart_watcher`."""
        self.watcher.current.kill_hard()

    def restart_watcher(self) -> None:
        self._start_watcher()

    # -- looking -------------------------------------------------------------------------------

    def uploads(self) -> list[UploadRow]:
        """Every upload in the server's database: the ground truth of what was created."""

        rows = self._query("SELECT id, name, state, attempts, lapses, error FROM uploads")
        return [UploadRow(**row) for row in rows]

    def busy_processors(self) -> list[int]:
        """The processors holding a lease now (a worker's id names its pid: HOST-PID-RANDOM)."""
        rows = self._query("SELECT worker_id FROM uploads WHERE state = 'leased'")
        pids = {int(row["worker_id"].rsplit("-", 2)[1]) for row in rows if row["worker_id"]}
        return [n for n, role in enumerate(self.processors) if role.current.pid in pids]

    def uploads_in_flight(self) -> int:
        """Uploads the watcher is sending now: created, not every chunk stored yet."""
        rows = self._query(
            "SELECT count(*) AS n FROM uploads WHERE state = 'pending' OR chunk_count > "
            "(SELECT count(*) FROM chunks WHERE chunks.upload_id = uploads.id)"
        )
        count: int = rows[0]["n"]
        return count

    def _query(self, sql: str) -> list[dict[str, Any]]:
        async def fetch() -> list[dict[str, Any]]:
            connection = await asyncpg.connect(self.db_url, timeout=10)
            try:
                return [dict(row) for row in await connection.fetch(sql)]
            finally:
                await connection.close()

        return asyncio.run(fetch())

    def processes(self) -> Iterator[FapProcess]:
        for role in [*self.replicas, *self.processors, self.watcher]:
            yield from role.lives

    def exited(self) -> list[str]:
        """The roles whose current process is not running: none should be, outside a kill."""
        roles = [*self.replicas, *self.processors, self.watcher]
        return [role.name for role in roles if role.lives and not role.current.alive()]

    def logs(self) -> list[Path]:
        """Every log of every life of every process, PostgreSQL's and SeaweedFS's too."""
        return [
            *(process.log_path for process in self.processes()),
            self.postgres.root / "log",
            self.weed.log_path,
        ]

    def log_tails(self, chars: int = 3000) -> str:
        """The end of the current log of each role, for a failure message."""
        roles = [*self.replicas, *self.processors, self.watcher]
        return "\n".join(
            f"---- {role.name} (life {len(role.lives)})\n{role.current.log()[-chars:]}"
            for role in roles
            if role.lives
        )

    # -- stopping ------------------------------------------------------------------------------

    def stop_watcher(self) -> int | None:
        """A graceful stop (SIGTERM): the watcher closes its journal and exits 0.

        Once it says it is watching: a watcher started by the last kill may still be importing,
        and SIGTERM then ends it as it ends any process that has not taken the signal yet."""
        watcher = self.watcher.current
        wait_until(lambda: "watching " in watcher.log(), 60, f"the watcher\n{watcher.log()}")
        return watcher.stop()

    def stop(self) -> None:
        """Every process, all at once: each one's graceful stop takes a second or more, and
        none depends on another to stop."""
        lives = list(self.processes())
        with ThreadPoolExecutor(max_workers=len(lives) or 1) as pool:
            list(pool.map(FapProcess.stop, lives))
