"""fap — File Analysis Pipeline."""

import sys
from types import ModuleType
from typing import cast

# The one place the version is written: the build reads it from here (pyproject.toml).
__version__ = "0.1.0"

# httpx imports its own command line (and with it pygments and rich's syntax highlighting: tens of
# milliseconds on every start of every fap command) whenever click and rich are importable, as
# they are for fap's CLI; fap never runs it. A None entry in sys.modules makes that one import
# fail, and httpx then defines a stand-in for its command line instead.
sys.modules.setdefault("httpx._main", cast("ModuleType", None))

__all__ = ("__version__",)
