"""What an analyzer is: a function of a byte stream and the file's metadata, answering JSON.

An analyzer is any importable function ``analyze(stream, meta)`` (``docs/engines.md``)::

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
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from fap.engine.errors import EngineSetupError, one_line
from fap.engine.protocol import ENGINE_NAME_RULE, is_engine_name

__all__ = ("Analyzer", "FileMeta", "check_engine_name", "load_analyzer")

_EXAMPLE = "for example fap.engine.reference:analyze"


@dataclass(frozen=True, slots=True)
class FileMeta:
    """What the uploader announced about the file whose bytes the stream carries."""

    upload_id: str
    name: str  # as the uploader gave it: a base name, or a path relative to a watched directory
    size: int  # the stream holds exactly this many bytes
    sha256: str  # lowercase hex of the original bytes


class Analyzer(Protocol):
    def __call__(self, stream: BinaryIO, meta: FileMeta, /) -> object: ...


def load_analyzer(spec: str) -> Analyzer:
    """The function named by ``module:function`` (``module:Class.method`` works too), checked to
    be one an engine can call as ``function(stream, meta)``; EngineSetupError says what is wrong.

    The module is found on ``sys.path`` (PYTHONPATH, installed packages) and then, as uvicorn and
    gunicorn do, in the current directory — searched last, so that a file there cannot shadow
    the standard library or an installed package.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise EngineSetupError(
            f"The analyzer {spec!r} is not of the form module:function ({_EXAMPLE})."
        )
    if "/" in module_name or os.sep in module_name or Path(module_name).suffix == ".py":
        raise EngineSetupError(
            f"The analyzer {spec!r} names a file; name its module instead, with the module's "
            "directory on PYTHONPATH (for a file dir/wordcount.py: PYTHONPATH=dir and "
            "wordcount:analyze)."
        )
    _search_current_directory()
    target = _import(module_name)
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise EngineSetupError(
                f"The analyzer module {module_name!r} has no {attribute!r}."
            ) from None
    _check_callable(spec, target)
    analyzer: Analyzer = target  # type: ignore[assignment]  # checked just above
    return analyzer


def check_engine_name(name: str) -> str:
    """Answer ``name`` if it has the form NAME@VERSION, else raise EngineSetupError."""
    if not is_engine_name(name):
        raise EngineSetupError(
            f"The engine name {name[:100]!r} is not of the form NAME@VERSION "
            f"(for example size@1): {ENGINE_NAME_RULE}."
        )
    return name


def _search_current_directory() -> None:
    here = str(Path.cwd())
    # "" stands for the current directory: python -m and python -c put it first already.
    if "" not in sys.path and here not in sys.path:
        sys.path.append(here)


def _import(module_name: str) -> object:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if module_name == missing or module_name.startswith(f"{missing}."):
            raise EngineSetupError(
                f"The analyzer module {module_name!r} cannot be found; check its name, and "
                "that its directory is on PYTHONPATH or is the current directory."
            ) from error
        # The module is there, but something it imports is not.
        raise EngineSetupError(
            f"The analyzer module {module_name!r} failed to import: {one_line(error)}."
        ) from error
    # Foreign code may raise anything while it is imported, SystemExit and SyntaxError included;
    # the engine cannot start either way, and says why in one line rather than a traceback.
    except (Exception, SystemExit) as error:
        raise EngineSetupError(
            f"The analyzer module {module_name!r} failed to import: {one_line(error)}."
        ) from error


def _check_callable(spec: str, target: object) -> None:
    """Refuse what the engine could call only to fail on every file."""
    if not callable(target):
        raise EngineSetupError(
            f"The analyzer {spec!r} is not a function: it is of type {type(target).__name__}."
        )
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        raise EngineSetupError(
            f"The analyzer {spec!r} is an async function; an analyzer is a plain function "
            "(each analysis runs in a thread of its own, where blocking reads are fine)."
        )
    if inspect.isgeneratorfunction(target):
        raise EngineSetupError(
            f"The analyzer {spec!r} is a generator function; an analyzer returns its result."
        )
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return  # no signature to read (some builtins): the first analysis will tell
    try:
        signature.bind(None, None)
    except TypeError:
        raise EngineSetupError(
            f"The analyzer {spec!r} takes {_parameters(signature)}; an analyzer takes two "
            "positional arguments, (stream, meta)."
        ) from None


def _parameters(signature: inspect.Signature) -> str:
    """``(stream)``, ``(stream, meta, options)``: the parameters without their annotations."""
    plain = signature.replace(
        parameters=[
            p.replace(annotation=p.empty, default=p.default) for p in signature.parameters.values()
        ],
        return_annotation=signature.empty,
    )
    return str(plain)
