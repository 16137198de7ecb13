"""``fap config``: settings in config.toml listed with their source, read, set once checked
against the settings, and unset — the file left as it was whenever a value does not fit."""

from __future__ import annotations

import dataclasses
import json
import stat
import tomllib
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperGroup
from typer.testing import CliRunner, Result

from fap.cli.app import app
from fap.client.settings_file import ENV_VARS, ROLES
from fap.config import ClientSettings, ServerSettings, WorkerSettings, build
from fap.errors import EXIT_INPUT


@pytest.fixture
def home(fap_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fap home of its own, and none of the FAP_* variables a developer's shell may hold."""
    for name in set(ENV_VARS.values()) - {"FAP_HOME"}:
        monkeypatch.delenv(name, raising=False)
    return fap_home


def fap(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, ["config", *args], env=env, terminal_width=200)


def config_file(home: Path) -> Path:
    return home / "config.toml"


def listed(env: dict[str, str] | None = None) -> dict[str, dict[str, object]]:
    done = fap("list", "--json", env=env)
    assert done.exit_code == 0, done.output
    return {line["key"]: line for line in map(json.loads, done.stdout.splitlines())}


def test_set_writes_the_value_and_commands_read_it_back(home: Path) -> None:
    done = fap("set", "client.server", "http://fap.example:8700")
    assert done.exit_code == 0, done.output
    assert tomllib.loads(config_file(home).read_text()) == {
        "client": {"server": "http://fap.example:8700"}
    }
    assert build(ClientSettings).server == "http://fap.example:8700"
    got = fap("get", "client.server")
    assert (got.exit_code, got.stdout) == (0, "http://fap.example:8700\n")


def test_the_file_is_private_and_so_is_a_home_it_creates(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = tmp_path / "new" / "home"
    monkeypatch.setenv("FAP_HOME", str(fresh))
    assert fap("set", "server.port", "8801").exit_code == 0
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    assert stat.S_IMODE(config_file(fresh).stat().st_mode) == 0o600
    assert [p.name for p in fresh.iterdir()] == ["config.toml"]  # no temporary file left


def test_values_are_stored_as_their_settings_type(home: Path) -> None:
    for key, value in [
        ("server.port", "8801"),
        ("server.lease_seconds", "12"),
        ("worker.require_sandbox", "yes"),
        ("server.keep_results", "7d"),
        ("worker.engine_memory", "2G"),
    ]:
        assert fap("set", key, value).exit_code == 0, key
    assert tomllib.loads(config_file(home).read_text()) == {
        "server": {"port": 8801, "lease_seconds": 12.0, "keep_results": "7d"},
        "worker": {"require_sandbox": True, "engine_memory": "2G"},
    }
    server = build(ServerSettings)
    assert (server.port, server.keep_results) == (8801, 7 * 86400.0)
    assert build(WorkerSettings).engine_memory == 2 * 1024**3


def test_lists_take_several_values_and_an_engine_command_one_command_line(home: Path) -> None:
    assert (
        fap("set", "server.oidc", "https://a.example=one", "https://b.example=two").exit_code == 0
    )
    assert fap("set", "worker.engine_command", "fap engine --analyzer 'my pkg:run'").exit_code == 0
    assert build(ServerSettings).oidc == ("https://a.example=one", "https://b.example=two")
    assert build(WorkerSettings).engine_command == ("fap", "engine", "--analyzer", "my pkg:run")


def test_text_that_toml_must_escape_reads_back_as_written(home: Path) -> None:
    name = 'a "quoted" \\ back\tslash\nnew line, é and \x01'
    assert fap("set", "client.org", name).exit_code == 0
    assert build(ClientSettings).org == name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("server.port", "eighty"), "server.port to 'eighty', which is not a whole number."),
        (("server.lease_seconds", "nan"), "server.lease_seconds to 'nan', which is not a number"),
        (("worker.require_sandbox", "maybe"), "worker.require_sandbox must be true or false"),
        (("server.keep_results", "7x"), "server.keep_results must be a duration"),
        (("worker.engine_memory", "lots"), "worker.engine_memory must be a size"),
        # ServerSettings' own check, in __post_init__
        (("server.client_latest", "v2"), "The newest client release must be digits and dots"),
        (("server.port", "1", "2"), "server.port takes one value, not 2."),
        (("client.sever", "http://x"), "fap has no setting client.sever"),
        (("sever", "http://x"), "Name a setting as SECTION.KEY"),
        (("engine.name", "x"), "fap has no setting engine.name"),
    ],
)
def test_a_value_that_does_not_fit_is_one_line_and_leaves_the_file_alone(
    home: Path, args: tuple[str, ...], message: str
) -> None:
    assert fap("set", "client.server", "http://fap.example").exit_code == 0
    before = config_file(home).read_bytes()
    done = fap("set", *args)
    assert done.exit_code == EXIT_INPUT
    assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert config_file(home).read_bytes() == before
    assert [p.name for p in home.iterdir()] == ["config.toml"]


def test_a_token_is_never_written_to_the_file_nor_shown(home: Path) -> None:
    token = "fap_user_" + "s" * 40
    done = fap("set", "client.token", token)
    assert done.exit_code == EXIT_INPUT
    assert "A token does not belong in config.toml" in done.stderr
    assert token not in done.output
    assert not config_file(home).exists()
    env = {"FAP_TOKEN": token}
    assert listed(env)["client.token"] == {
        "key": "client.token",
        "value": "[hidden]",
        "source": "env",
        "env": "FAP_TOKEN",
    }
    for shown in (fap("list", env=env), fap("get", "worker.token", env=env)):
        assert shown.exit_code == 0 and token not in shown.output


def test_a_password_in_a_database_url_is_not_shown(home: Path) -> None:
    assert fap("set", "server.db", "postgresql+asyncpg://fap:hunter2secret@db/fap").exit_code == 0
    for done in (fap("get", "server.db"), fap("list")):
        assert "hunter2secret" not in done.output
        assert "postgresql+asyncpg://fap:" in done.output


def test_list_shows_every_setting_with_its_source(home: Path) -> None:
    assert fap("set", "server.port", "8801").exit_code == 0
    settings = listed({"FAP_SERVER": "http://from-env:1"})
    every = {f"{s}.{f.name}" for s, cls in ROLES.items() for f in dataclasses.fields(cls)}
    assert set(settings) == every
    assert settings["server.port"]["value"] == 8801
    assert settings["server.port"]["source"] == "file"
    assert (settings["client.server"]["value"], settings["client.server"]["source"]) == (
        "http://from-env:1",
        "env",
    )
    assert (settings["server.host"]["value"], settings["server.host"]["source"]) == (
        "127.0.0.1",
        "default",
    )


def test_list_off_a_terminal_is_one_tab_separated_line_per_setting(home: Path) -> None:
    assert fap("set", "server.port", "8801").exit_code == 0
    done = fap("list", env={"FAP_PORT": "9000"})
    assert "server.port\t9000\tenv FAP_PORT\n" in done.stdout
    assert "server.host\t127.0.0.1\tdefault\n" in done.stdout


def test_set_says_when_a_variable_overrides_the_file(home: Path) -> None:
    done = fap("set", "server.port", "8801", env={"FAP_PORT": "9000"})
    assert done.exit_code == 0
    assert "FAP_PORT is set here" in done.stderr


def test_unset_brings_the_default_back_and_drops_an_empty_table(home: Path) -> None:
    assert fap("set", "server.port", "8801").exit_code == 0
    assert fap("set", "client.org", "acme").exit_code == 0
    done = fap("unset", "server.port")
    assert done.exit_code == 0
    assert tomllib.loads(config_file(home).read_text()) == {"client": {"org": "acme"}}
    assert listed()["server.port"]["source"] == "default"
    again = fap("unset", "server.port")
    assert again.exit_code == 0
    assert "server.port is not set in" in again.stderr


def test_unset_takes_out_a_value_the_settings_refuse(home: Path) -> None:
    config_file(home).write_text('[server]\nport = "eighty"\nhost = "0.0.0.0"\n')
    assert fap("set", "server.host", "::1").exit_code == EXIT_INPUT
    assert fap("unset", "server.port").exit_code == 0
    assert fap("set", "server.host", "::1").exit_code == 0
    assert tomllib.loads(config_file(home).read_text()) == {"server": {"host": "::1"}}


def test_unset_takes_out_a_misspelt_key_that_keeps_set_from_working(home: Path) -> None:
    config_file(home).write_text('[client]\nsever = "http://a"\n')
    refused = fap("set", "client.org", "acme")
    assert refused.exit_code == EXIT_INPUT
    assert "client.sever, which fap does not know" in refused.stderr
    assert fap("unset", "client.sever").exit_code == 0
    assert fap("set", "client.org", "acme").exit_code == 0
    assert fap("unset", "client.nothing").exit_code == EXIT_INPUT  # neither known nor there


def test_a_file_that_is_not_toml_is_left_alone(home: Path) -> None:
    config_file(home).write_text("[client\nserver = ")
    before = config_file(home).read_bytes()
    for args in (("set", "client.org", "acme"), ("unset", "client.org"), ("list",)):
        done = fap(*args)
        assert done.exit_code == EXIT_INPUT, args
        assert "cannot be read" in done.stderr
    assert config_file(home).read_bytes() == before


def test_tables_and_settings_fap_config_does_not_edit_are_kept(home: Path) -> None:
    config_file(home).write_text(
        '# mine\ntitle = "desk"\n[client]\nserver = "http://a"\n[team]\nnames = ["x", "y"]\n'
    )
    assert fap("set", "client.org", "acme").exit_code == 0
    assert tomllib.loads(config_file(home).read_text()) == {
        "title": "desk",
        "client": {"server": "http://a", "org": "acme"},
        "team": {"names": ["x", "y"]},
    }


def test_each_variable_named_is_one_a_command_reads() -> None:
    # The env column must not name a variable no option reads (FAP_HOME and FAP_TOKEN_FILE are
    # read by the client library itself, for every command).
    read: set[str] = set()

    def walk(command: object) -> None:
        for param in getattr(command, "params", []):
            envvar = getattr(param, "envvar", None)
            read.update([envvar] if isinstance(envvar, str) else envvar or [])
        if isinstance(command, TyperGroup):
            for sub in command.commands.values():
                walk(sub)

    walk(typer.main.get_command(app))
    assert set(ENV_VARS.values()) - {"FAP_HOME", "FAP_TOKEN_FILE"} <= read
