"""``fap work``'s sandbox options: --check-sandbox tells what this machine gives (exit 0 for the full
sandbox, 3 for less), --require-sandbox refuses to run without it, and a bad limit is one sentence."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fap.cli.app import app


@pytest.fixture
def no_bubblewrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH on which there is no bwrap: as on a machine without bubblewrap."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def _work(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["work", *args], env=env, terminal_width=200)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.output


def test_check_sandbox_tells_what_the_full_sandbox_gives_and_exits_0(fap_home: Path) -> None:
    if shutil.which("bwrap") is None:
        if os.environ.get("CI"):
            pytest.fail("bubblewrap is not installed: run scripts/install-system-deps.sh")
        pytest.skip("bubblewrap is not installed")
    code, output = _work("--check-sandbox", "--engine-memory", "512M", "--engine-cpu-seconds", "30")
    assert code == 0, output
    assert "bubblewrap:   /" in output and "(bubblewrap 0." in output
    assert "namespaces:   user yes, net yes, pid yes" in output
    assert "network:      none" in output
    assert "address space 512 MiB per process" in output
    assert "CPU 30 s a job" in output
    assert "processes and threads (RLIMIT_NPROC)" in output
    assert "sandbox:      full" in output
    expected = "nobody (uid" if os.geteuid() == 0 else "the worker's own"
    assert f"engine user:  {expected}" in output


@pytest.mark.usefixtures("no_bubblewrap")
def test_check_sandbox_without_bubblewrap_says_rlimits_alone_and_exits_3(fap_home: Path) -> None:
    code, output = _work("--check-sandbox")
    assert code == 3, output
    assert "bubblewrap:   not found (Debian: apt-get install bubblewrap)" in output
    assert "sandbox:      rlimits alone: bubblewrap (bwrap) is not installed" in output
    assert "address space 4 GiB per process" in output  # the defaults, still in force


@pytest.mark.usefixtures("no_bubblewrap")
def test_require_sandbox_without_bubblewrap_refuses_to_start_in_one_sentence(
    fap_home: Path,
) -> None:
    code, output = _work(
        "--server", "http://127.0.0.1:9", "--require-sandbox", env={"FAP_TOKEN": "fap_processor_x"}
    )
    assert code == 3, output
    [line] = output.strip().splitlines()
    assert line == (
        "error: The engine sandbox is required (--require-sandbox), but bubblewrap (bwrap) is not "
        "installed: install bubblewrap, or see fap work --check-sandbox."
    )


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (("--engine-memory", "lots"), "error: --engine-memory must be a size such as 512M, 2G"),
        (("--result-max-bytes", "0"), "error: --result-max-bytes must be a size of more than 0"),
        (("--engine-env", "NOVALUE"), "error: --engine-env takes KEY=VALUE"),
        (("--engine-env", "FAP_TOKEN=x"), "error: --engine-env cannot set FAP_TOKEN"),
        (("--engine-mount", "/nonexistent/models"), "error: --engine-mount /nonexistent/models:"),
    ],
)
def test_a_bad_sandbox_option_is_one_sentence_and_exit_3(
    fap_home: Path, args: tuple[str, ...], sentence: str
) -> None:
    code, output = _work("--check-sandbox", *args)
    assert code == 3, output
    assert output.startswith(sentence), output
    assert "Traceback" not in output


def test_the_options_and_their_environment_variables_are_in_the_help() -> None:
    result = CliRunner().invoke(app, ["work", "--help"], terminal_width=200)
    for option in (
        "--engine-memory SIZE",
        "--engine-cpu-seconds SECONDS",
        "--result-max-bytes SIZE",
        "--engine-mount PATH",
        "--engine-env KEY=VALUE",
        "--engine-device PATH",
        "--require-sandbox",
        "--check-sandbox",
    ):
        assert option in result.output, option
    for envvar in ("FAP_ENGINE_MEMORY", "FAP_ENGINE_CPU_SECONDS", "FAP_RESULT_MAX_BYTES"):
        assert envvar in result.output
    assert "default: 4G" in result.output and "default: 256M" in result.output
