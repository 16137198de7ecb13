"""A server pays at start-up only for what its settings use: the AWS SDK (a third of a second of
imports) is loaded by a server whose storage or secrets are in AWS, never by the embedded one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.seaweedfs import S3Storage

REPO = Path(__file__).resolve().parents[3]

# A fresh interpreter: this one has imported everything some other test needed.
_START = """
import asyncio, json, sys
from pathlib import Path
from tests.unit.server.harness import settings_for_tests
from fap.server.app import create_app

async def main():
    app = create_app(settings_for_tests(Path(sys.argv[1]), storage=sys.argv[2]))
    async with app.lifespan():
        pass

asyncio.run(main())
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("botocore", "aiobotocore"))))
"""


def _sdk_modules_after_start(
    tmp_path: Path, storage: str, env: dict[str, str] | None = None
) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _START, str(tmp_path / "data"), storage],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    modules: list[str] = json.loads(done.stdout.splitlines()[-1])
    return modules


@pytest.mark.parametrize("storage", ["", "file://{tmp}/blobs"])
def test_an_embedded_server_starts_without_the_aws_sdk(tmp_path: Path, storage: str) -> None:
    assert _sdk_modules_after_start(tmp_path, storage.format(tmp=tmp_path)) == []


def test_a_server_on_s3_storage_loads_it(tmp_path: Path, s3_storage: S3Storage) -> None:
    """The check above can fail: the same start on S3 storage does load the SDK."""
    modules = _sdk_modules_after_start(tmp_path, s3_storage.url, s3_storage.env)
    assert "aiobotocore.session" in modules
