"""What the access commands print: user text as written, never as markup, one row per line."""

from __future__ import annotations

import io

import pytest

from fap.cli.listing import shown, write_fields, write_rows


class _Output(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def _stdout(monkeypatch: pytest.MonkeyPatch, *, tty: bool) -> _Output:
    """stdout, a terminal or not. Set in the test itself: pytest puts its own capture back in
    place between a fixture's setup and the test's call."""
    out = _Output(tty)
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("FORCE_COLOR", "1")  # styles on: markup read into a name would show
    monkeypatch.delenv("NO_COLOR", raising=False)
    return out


def test_control_characters_are_shown_escaped_and_nothing_is_a_dash() -> None:
    assert shown("[red]x") == "[red]x"
    assert shown("a\tb\nc\x1b[31m") == "a\\tb\\nc\\x1b[31m"
    assert shown("naïve 東京") == "naïve 東京"
    assert (shown(None), shown("")) == ("-", "-")


def test_a_table_on_a_terminal_prints_names_literally(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _stdout(monkeypatch, tty=True)
    write_rows("2 tokens", ("id", "name"), [("t1", "[red]x"), ("t2", "[/]two\nlines")])
    output = terminal.getvalue()
    assert "\x1b[3m2 tokens" in output and "\t" not in output  # a styled table, not plain lines
    assert "[red]x" in output
    assert "[/]two\\nlines" in output
    assert "\x1b[31m" not in output  # no red: the name was not read as markup


def test_fields_on_a_terminal_print_values_literally(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _stdout(monkeypatch, tty=True)
    write_fields("Organisation", [("name", "[bold]acme")])
    assert "[bold]acme" in terminal.getvalue()


def test_plain_lines_are_one_row_each_tab_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = _stdout(monkeypatch, tty=False)
    write_rows("ignored", ("id", "name"), [("t1", "a\tb"), ("t2", "")])
    assert pipe.getvalue() == "t1\ta\\tb\nt2\t-\n"


def test_plain_fields_are_name_colon_value(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = _stdout(monkeypatch, tty=False)
    write_fields("ignored", [("name", "local"), ("plan", "")])
    assert pipe.getvalue() == "name: local\nplan: -\n"
