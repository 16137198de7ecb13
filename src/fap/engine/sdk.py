"""What an analyzer is: a function of a byte stream and the file's metadata, answering JSON.

An analyzer is any importable callable ``analyze(stream, meta)``::

    def analyze(stream: BinaryIO, meta: FileMeta) -> dict[str, object]:
        total = 0
        while block := stream.read(1 << 20):
            total += len(block)
        return {"bytes": total}

``stream`` is a buffered, read-only binary stream of the file's original bytes, arriving while the
worker still fetches later chunks: read it front to back, in blocks; it cannot seek. ``meta`` says
what the uploader announced. The return value must be JSON-able (dicts, lists, str, int, finite
float, bool, None). An exception becomes the job's error; the analysis runs in a thread of its own.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from fap.engine.errors import EngineSetupError
from fap.engine.protocol import ENGINE_NAME_RULE, is_engine_name

__all__ = ("Analyzer", "FileMeta", "check_engine_name", "load_analyzer")


@dataclass(frozen=True, slots=True)
class FileMeta:
    """What the uploader announced about the file whose bytes the stream carries."""

    upload_id: str
    name: str
    size: int  # the stream holds exactly this many bytes
    sha256: str  # lowercase hex of the original bytes


class Analyzer(Protocol):
    def __call__(self, stream: BinaryIO, meta: FileMeta, /) -> object: ...


def load_analyzer(spec: str) -> Analyzer:
    """The callable named by ``module:function`` (``module:Class.method`` works too)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise EngineSetupError(
            f"The analyzer {spec!r} is not of the form module:function "
            "(for example fap.engine.reference:analyze)."
        )
    try:
        target: object = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise EngineSetupError(
            f"The analyzer module {module_name!r} cannot be found ({error}); "
            "check its name and that its directory is on PYTHONPATH."
        ) from error
    except Exception as error:  # foreign code may raise anything while it is imported
        raise EngineSetupError(
            f"The analyzer module {module_name!r} failed to import: "
            f"{type(error).__name__}: {error}."
        ) from error
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise EngineSetupError(
                f"The analyzer module {module_name!r} has no {attribute!r}."
            ) from None
    if not callable(target):
        raise EngineSetupError(f"The analyzer {spec!r} is not callable.")
    analyzer: Analyzer = target
    return analyzer


def check_engine_name(name: str) -> str:
    """Answer ``name`` if it has the form NAME@VERSION, else raise EngineSetupError."""
    if not is_engine_name(name):
        raise EngineSetupError(
            f"The engine name {name[:100]!r} is not of the form NAME@VERSION "
            f"(for example size@1): {ENGINE_NAME_RULE}."
        )
    return name
