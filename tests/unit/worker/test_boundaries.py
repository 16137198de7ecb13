"""The worker talks to the server over HTTP only: it imports neither the server nor the client."""

from __future__ import annotations

import subprocess
import sys


def test_the_worker_imports_no_server_client_or_cli() -> None:
    code = (
        "import sys, fap.worker;"
        "print(sorted(m for m in sys.modules"
        " if m.split('.')[:2] in (['fap', 'server'], ['fap', 'client'], ['fap', 'cli'])))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
