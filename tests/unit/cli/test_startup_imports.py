"""A client command imports what it uses and nothing of the server's: every module loaded costs
every start of every command (and every spawned ``fap`` in the tests) its import time.

Each command runs for real in a fresh interpreter, to the point where it fails on a file or a
server that is not there; the modules it loaded by then are compared with what no client command
needs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Server-side libraries, sign-in libraries only ``fap login`` needs, and what an unused part of a
# library drags in (httpx's command line: pygments; typer 0.29's coercion: pydantic).
NEVER_IMPORTED = (
    "aiobotocore",
    "alembic",
    "asyncpg",
    "botocore",
    "google",
    "litestar",
    "msal",
    "prometheus_client",
    "pydantic",
    "pygments",
    "sqlalchemy",
    "uvicorn",
)

_RUN = """
import atexit, sys
OUT = sys.argv[1]
def _dump():
    with open(OUT, "w") as out:
        out.write("\\n".join(sorted(n for n, m in sys.modules.items() if m is not None)))
atexit.register(_dump)
sys.argv = ["fap", *sys.argv[2:]]
from fap.cli.app import main
main()
"""


@pytest.mark.parametrize(
    "args",
    [
        ("upload", "missing.txt", "--no-wait"),
        ("results", "list"),
        ("status", "--json"),
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_client_command_imports_nothing_it_does_not_use(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    modules = tmp_path / "modules.txt"
    env = {
        "FAP_HOME": str(tmp_path / "home"),
        "FAP_SERVER": "http://127.0.0.1:9",  # nothing listens: the command ends at once
        "FAP_TOKEN": "fap_" + "0" * 40,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(modules), *args, "--retry-for", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    loaded = modules.read_text().split()
    assert "fap.cli.app" in loaded
    unwanted = sorted(
        name for name in loaded if name.split(".")[0] in NEVER_IMPORTED or name == "httpx._main"
    )
    assert unwanted == []
