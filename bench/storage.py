"""The S3 server every tool writes to: SeaweedFS (``weed server -s3``), on the host's loopback or
inside the benchmark's network namespace.

The tests' launcher (tests/support/seaweedfs.py) binds 127.0.0.1 only; here weed must bind the
namespace's address, so it is started with the same flags on a chosen address. Its readiness
check and its S3 client are the tests' own.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from tests.support.seaweedfs import REGION, free_twin_ports, s3_client, weed_binary

from bench.network import Namespace

__all__ = ("Bucket", "S3Server", "running_s3")

_GRPC_OFFSET = 10000
_PROBE = "fap-bench-probe"
# A bucket grows 7 volumes by default; 1 keeps a run's data small (as the tests do).
_MASTER_TOML = "[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 2\ncopy_3 = 3\ncopy_other = 1\n"


@dataclass(frozen=True)
class Bucket:
    """A bucket and the admin key that writes it; the key never reaches the report."""

    name: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str = REGION

    def storage_url(self, prefix: str) -> str:
        """``fap serve --storage``: the bucket, a prefix, the endpoint."""
        return f"s3://{self.name}/{prefix}?endpoint={self.endpoint}&region={self.region}"

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS environment: what fap serve and every peer tool read their key from."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def object_size(self, key: str) -> int | None:
        """The stored size of ``key``, or None when it is not there: a tool that exits 0 but
        stored nothing (or something else) is a failed run."""
        client = s3_client(self.endpoint, self.access_key, self.secret_key)
        try:
            size: int = client.head_object(Bucket=self.name, Key=key)["ContentLength"]
        except client.exceptions.ClientError:
            return None
        return size

    def count_under(self, prefix: str) -> int:
        """Objects stored under ``prefix``: the small-file runs check that every file arrived."""
        client = s3_client(self.endpoint, self.access_key, self.secret_key)
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sum(len(page.get("Contents", [])) for page in pages)


@dataclass
class S3Server:
    """One weed server with its S3 gateway on ``address``, inside ``namespace`` when given."""

    directory: Path
    address: str = "127.0.0.1"
    namespace: Namespace | None = None
    access_key: str = field(default_factory=lambda: f"FAPBENCH{secrets.token_hex(6).upper()}")
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.address}:{self.ports['s3']}"

    def start(self) -> S3Server:
        if self.namespace is None:
            master, volume, filer, s3 = free_twin_ports(4)
        else:
            # A namespace of our own: every port is free in it.
            master, volume, filer, s3 = 9333, 8080, 8888, 8333
        self.ports = {"master": master, "volume": volume, "filer": filer, "s3": s3}
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
            *(self.namespace.exec_prefix() if self.namespace else []),
            str(weed_binary()),
            "server",
            f"-dir={data}",
            f"-ip={self.address}",
            f"-ip.bind={self.address}",
            f"-master.port={master}",
            "-master.telemetry=false",
            "-master.electionTimeout=1s",
            "-master.volumeSizeLimitMB=256",
            f"-volume.port={volume}",
            "-volume.max=200",
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
        with (self.directory / "weed.log").open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=self.directory,  # where weed finds master.toml
                env={**os.environ, "TMPDIR": str(self.directory)},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 60.0) -> S3Server:
        """Ready once a signed PUT is stored: the S3 port answers and the volume server joined."""
        deadline = time.monotonic() + timeout
        client = s3_client(self.endpoint, self.access_key, self.secret_key)
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"weed exited early; see {self.directory / 'weed.log'}")
            try:
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                    client.create_bucket(Bucket=_PROBE)
                client.put_object(Bucket=_PROBE, Key="probe", Body=b"ok")
                return self
            except (BotoCoreError, ClientError) as error:
                last = str(error).splitlines()[0] if str(error) else type(error).__name__
            time.sleep(0.2)
        raise RuntimeError(f"weed was not ready after {timeout:g} s: {last}")

    def new_bucket(self, name: str) -> Bucket:
        s3_client(self.endpoint, self.access_key, self.secret_key).create_bucket(Bucket=name)
        return Bucket(name, self.endpoint, self.access_key, self.secret_key)

    def stop(self) -> None:
        """SIGTERM, a short grace, SIGKILL of the group; its gRPC sockets in /tmp go too."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(2.0)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10.0)
        for port in self.ports.values():
            for twin in (port, port + _GRPC_OFFSET):
                # weed puts them in /tmp whatever TMPDIR says.
                for stale in Path("/tmp").glob(f"seaweedfs-*-{twin}.sock"):  # noqa: S108
                    stale.unlink(missing_ok=True)


@contextlib.contextmanager
def running_s3(
    directory: Path, namespace: Namespace | None = None, timeout: float = 60.0
) -> Iterator[S3Server]:
    """A ready S3 server, always stopped."""
    directory.mkdir(parents=True, exist_ok=True)
    server = S3Server(
        directory, address=namespace.address if namespace else "127.0.0.1", namespace=namespace
    )
    try:
        yield server.start().wait_ready(timeout)
    finally:
        server.stop()
