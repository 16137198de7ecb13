"""An engine must be replaceable by one in any language: it imports no other fap role."""

from __future__ import annotations

import subprocess
import sys


def test_the_engine_imports_nothing_of_fap_but_itself() -> None:
    code = (
        "import sys, fap.engine, fap.engine.server, fap.engine.reference;"
        "print(sorted(m for m in sys.modules if m.startswith('fap.')"
        " and not m.startswith('fap.engine')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
