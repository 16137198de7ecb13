"""Loading an analyzer by ``module:function`` and checking engine names: one clear sentence each,
before the engine listens, for everything that would otherwise fail on every file."""

from __future__ import annotations

import re
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fap.engine import EngineSetupError, check_engine_name, load_analyzer
from fap.engine.reference import analyze

# write_module(source) -> the name of a fresh module holding ``source``, importable for the test.
WriteModule = Callable[[str], str]


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WriteModule]:
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def write(source: str) -> str:
        name = f"analyzer_{uuid.uuid4().hex[:12]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


def test_loads_the_reference_analyzer() -> None:
    assert load_analyzer("fap.engine.reference:analyze") is analyze


def test_loads_a_method_by_its_dotted_path(write_module: WriteModule) -> None:
    module = write_module(
        """
        class Counter:
            @staticmethod
            def analyze(stream, meta):
                return {"bytes": len(stream.read())}
        """
    )
    assert load_analyzer(f"{module}:Counter.analyze").__name__ == "analyze"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("fap.engine.reference", "not of the form module:function"),
        (":analyze", "not of the form module:function"),
        ("fap.engine.reference:", "not of the form module:function"),
        ("no_such_module_here:analyze", "'no_such_module_here' cannot be found; check its name"),
        ("fap.engine.no_such_module:analyze", "'fap.engine.no_such_module' cannot be found"),
        ("fap.engine.reference:nothing", "has no 'nothing'"),
        ("fap.engine.reference:BLOCK", "is not a function: it is of type int"),
        (
            "tests.engines.broken:analyze",
            "'tests.engines.broken' failed to import: RuntimeError: this module cannot be imported.",
        ),
        ("examples/python/wordcount.py:analyze", "names a file; name its module instead"),
        ("wordcount.py:analyze", "names a file"),
    ],
)
def test_a_bad_analyzer_spec_says_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(EngineSetupError, match=_literal(says)):
        load_analyzer(spec)


@pytest.mark.parametrize(
    ("source", "says"),
    [
        (
            "def analyze(stream):\n    return 1\n",
            "takes (stream); an analyzer takes two positional",
        ),
        (
            "def analyze(stream, meta, options):\n    return 1\n",
            "takes (stream, meta, options); an analyzer takes two positional arguments",
        ),
        ("def analyze(*, stream, meta):\n    return 1\n", "takes (*, stream, meta)"),
        (
            "from typing import BinaryIO\ndef analyze(stream: BinaryIO) -> dict:\n    return {}\n",
            "takes (stream);",  # annotations left out of the sentence
        ),
        ("async def analyze(stream, meta):\n    return 1\n", "is an async function"),
        ("def analyze(stream, meta):\n    yield 1\n", "is a generator function"),
    ],
    ids=["one-argument", "three-arguments", "keyword-only", "annotated", "async", "generator"],
)
def test_a_function_the_engine_cannot_call_is_refused_at_start(
    write_module: WriteModule, source: str, says: str
) -> None:
    module = write_module(source)
    with pytest.raises(EngineSetupError, match=_literal(says)):
        load_analyzer(f"{module}:analyze")


@pytest.mark.parametrize(
    "source",
    [
        "def analyze(stream, meta, options=None):\n    return 1\n",
        "def analyze(*args):\n    return 1\n",
        "def analyze(stream, meta, /, **extra):\n    return 1\n",
    ],
    ids=["a-default", "star-args", "star-star-extra"],
)
def test_any_function_callable_as_f_of_stream_and_meta_is_fine(
    write_module: WriteModule, source: str
) -> None:
    module = write_module(source)
    assert callable(load_analyzer(f"{module}:analyze"))


@pytest.mark.parametrize(
    ("source", "says"),
    [
        # A dependency that is missing is not the analyzer that is missing.
        (
            "import no_such_dependency_here\n",
            "failed to import: ModuleNotFoundError: No module named 'no_such_dependency_here'.",
        ),
        ("def analyze(stream, meta)\n", "failed to import: SyntaxError:"),
        ("raise SystemExit('no GPU here')\n", "failed to import: SystemExit: no GPU here."),
        ("raise ValueError('first line\\nsecond line')\n", "ValueError: first line."),
    ],
    ids=["missing-dependency", "syntax-error", "system-exit", "two-line-message"],
)
def test_a_module_that_fails_to_import_says_how_in_one_line(
    write_module: WriteModule, source: str, says: str
) -> None:
    module = write_module(source)
    with pytest.raises(EngineSetupError, match=_literal(says)) as caught:
        load_analyzer(f"{module}:analyze")
    assert "\n" not in str(caught.value)


def test_the_current_directory_is_searched_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"here_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text("def analyze(stream, meta):\n    return 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        assert callable(load_analyzer(f"{name}:analyze"))
        assert sys.path[-1] == str(tmp_path)
    finally:
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    "name", ["size@1", "my-engine@2.0.1", "a_b@2026-11-30", "model@1.0+cuda", "X@y"]
)
def test_engine_names_are_name_at_version(name: str) -> None:
    assert check_engine_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["size", "size@", "@1", "si ze@1", "size@1@2", "", "-size@1", "size@+1", "a" * 101 + "@1"],
)
def test_other_engine_names_are_refused(name: str) -> None:
    with pytest.raises(EngineSetupError, match="NAME@VERSION"):
        check_engine_name(name)


def _literal(text: str) -> str:
    return re.escape(text)
