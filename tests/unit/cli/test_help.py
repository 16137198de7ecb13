"""Every command's ``--help`` works: exit 0, a usage line, and no markup read into the help text.

The commands are found by walking the Typer app, so a command added tomorrow is covered today.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperGroup
from typer.testing import CliRunner

from fap import __version__
from fap.api import API_VERSION
from fap.cli.app import app


def _command_paths(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """``()``, ``("serve",)``, ``("results", "get")``…: every command and group, hidden ones too."""
    paths = [path]
    if isinstance(command, TyperGroup):  # typer carries its own click: no click.Group here
        for name, sub in sorted(command.commands.items()):
            paths += _command_paths(sub, (*path, name))
    return paths


COMMANDS = _command_paths(typer.main.get_command(app))


def test_the_walk_finds_every_kind_of_command() -> None:
    # The walk itself can fail: top level, plain commands and a group's subcommands all appear.
    assert {(), ("serve",), ("work",), ("up",), ("results",), ("results", "get")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(("fap", *path)))
def test_help_exits_0_with_a_usage_and_a_description(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert result.output.startswith(f"Usage: {' '.join(('fap', *path))} "), result.output
    assert "Options:" in result.output
    assert len(result.output.splitlines()) > 4, result.output


def test_help_text_is_printed_as_written_not_as_markup() -> None:
    # "[/PREFIX]" once read as a closing rich tag: --help crashed with MarkupError.
    result = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0, repr(result.exception)
    assert "s3://BUCKET[/PREFIX]?endpoint=URL&region=R" in result.output


def test_options_show_plain_metavars() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200)
    for shown in ("--port PORT", "--data-dir DIR", "--storage URL", "--lease-seconds SECONDS"):
        assert shown in result.output


# An option or argument rendered as click's default metavar: "--results <directory>",
# "--limit <int range>", "--provider <microsoft|google|oidc>". Prose may quote "<relative path>".
_ANGLE_METAVAR = re.compile(r"(?m)^\s*(?:-\w, )?--?[\w-]+(?:, --?[\w-]+)*[ =]<[^>]+>")


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(("fap", *path)))
def test_help_shows_plain_metavars(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, repr(result.exception)
    usage = result.output.splitlines()[0]
    angled = _ANGLE_METAVAR.findall(result.output) + re.findall(r"<[^>]+>", usage)
    assert angled == [], "name these metavars plainly (DIR, N, NAME@VERSION…)"


def test_the_metavar_check_catches_click_defaults() -> None:
    assert _ANGLE_METAVAR.search("  --results <directory>   Directory the results go to.")
    assert _ANGLE_METAVAR.search("  -n, --limit <int range>  How many.")
    assert not _ANGLE_METAVAR.search("  --results DIR   Results go to RESULTS/<relative path>.")


def test_version_names_the_release_and_the_api_it_speaks() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"fap {__version__} (API {API_VERSION})\n"


def test_shell_completion_completes_commands_in_a_real_process() -> None:
    # What an installed completion script runs on each TAB, in bash's words.
    done = subprocess.run(
        [str(Path(sys.executable).with_name("fap"))],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={
            **os.environ,
            "_FAP_COMPLETE": "complete_bash",
            "COMP_WORDS": "fap config s",
            "COMP_CWORD": "2",
        },
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["set"]
    shown = CliRunner().invoke(app, ["--help"], terminal_width=200).output
    assert "--install-completion" in shown and "--show-completion" in shown


def test_fap_help_in_a_real_process() -> None:
    # The installed entry point as a user runs it, its imports, a real process's stdout.
    done = subprocess.run(
        [str(Path(sys.executable).with_name("fap")), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "80"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith("Usage: fap ")
    for name in ("up", "upload", "watch", "serve", "work", "results", "keys"):
        assert f"\n  {name} " in done.stdout, done.stdout
