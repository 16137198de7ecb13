"""``fap engine``: what it refuses before it listens — one line on stderr, exit code 3 — and the
name it serves an analyzer under. (The engine serving on a real socket: tests/integration.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import fap.engine.server
from fap.cli.app import app
from fap.engine import Analyzer
from fap.errors import EXIT_INPUT


@pytest.fixture(autouse=True)
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, Analyzer, str]]:
    """What ``fap engine`` would serve, instead of serving it: no test here listens, and one
    that expected a refusal in vain fails at once rather than serving until its timeout."""
    calls: list[tuple[Path, Analyzer, str]] = []
    monkeypatch.setattr(fap.engine.server, "serve_engine", lambda *args: calls.append(args))
    return calls


def _engine(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["engine", *args], terminal_width=200)
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            (),
            "fap engine needs a socket to listen on: pass --socket PATH or set FAP_ENGINE_SOCKET.",
        ),
        (
            ("--engine", "wordcount"),
            "The engine name 'wordcount' is not of the form NAME@VERSION (for example size@1)",
        ),
        # Any analyzer but the reference one is named: the reference analyzer's name would
        # have it answer the uploads that ask for the reference analyzer.
        (
            ("--analyzer", "tests.engines.analyzers:echo"),
            "fap engine --analyzer tests.engines.analyzers:echo needs --engine NAME@VERSION",
        ),
        # The name is checked before the module is imported (an import can take long).
        (("--analyzer", "tests.engines.broken:analyze", "--engine", "x y@1"), "'x y@1'"),
        (
            ("--analyzer", "no_such_module_here:analyze", "--engine", "x@1"),
            "'no_such_module_here' cannot be found",
        ),
        (
            ("--analyzer", "tests.engines.broken:analyze", "--engine", "x@1"),
            "failed to import: RuntimeError: this module cannot be imported.",
        ),
        (("--analyzer", "tests.engines.analyzers:nothing", "--engine", "x@1"), "has no 'nothing'"),
        (
            ("--analyzer", "tests.engines.analyzers:MARKERS_ENV", "--engine", "x@1"),
            "is not a function",
        ),
        (
            ("--analyzer", "fap.engine.protocol:is_engine_name", "--engine", "x@1"),
            "takes (text); an analyzer takes two positional arguments, (stream, meta).",
        ),
    ],
    ids=[
        "no-socket",
        "bad-name",
        "analyzer-unnamed",
        "name-first",
        "no-module",
        "import-fails",
        "no-function",
        "not-callable",
        "wrong-signature",
    ],
)
def test_what_cannot_serve_is_refused_in_one_line_with_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], says: str
) -> None:
    monkeypatch.delenv("FAP_ENGINE_SOCKET", raising=False)
    socket = () if not args else ("--socket", str(tmp_path / "e.sock"))
    code, stderr = _engine(*socket, *args)
    assert code == EXIT_INPUT, stderr
    assert stderr.startswith("error: "), stderr
    assert says in stderr
    assert stderr.count("\n") == 1, stderr
    assert not (tmp_path / "e.sock").exists()


def test_an_analyzer_is_served_under_the_name_it_is_given(
    tmp_path: Path, served: list[tuple[Path, Analyzer, str]]
) -> None:
    code, stderr = _engine(
        "--socket", str(tmp_path / "e.sock"),
        "--analyzer", "tests.engines.analyzers:echo", "--engine", "echo@2",
    )  # fmt: skip
    assert code == 0, stderr
    assert [name for _, _, name in served] == ["echo@2"]
    assert " WARNING " not in stderr
