"""A config file that gives a setting a value of the wrong kind is refused in one sentence that
names it, for every setting of every role — never a traceback from deep inside."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fap.config import ClientSettings, ServerSettings, WorkerSettings, build
from fap.errors import ConfigError

ROLES = {"client": ClientSettings, "server": ServerSettings, "worker": WorkerSettings}
# A value of a kind no setting takes, written as TOML: a table.
WRONG = "{ nested = 1 }"


def every_setting() -> list[tuple[str, str]]:
    return [
        (section, field.name)
        for section, cls in ROLES.items()
        for field in dataclasses.fields(cls)
        if field.init
    ]


@pytest.mark.parametrize(("section", "name"), every_setting())
def test_a_value_of_the_wrong_kind_is_refused_by_name(
    tmp_path: Path, section: str, name: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[{section}]\n{name} = {WRONG}\n")

    with pytest.raises(ConfigError) as refused:
        build(ROLES[section], config)

    assert f"{section}.{name}" in str(refused.value)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('retry_for = "soon"', "client.retry_for to 'soon', which is not a number"),
        ("server = 5", "client.server to 5, which is not text"),
        ("home = true", "client.home to True, which is not a path (text)"),
        ("parallel_puts = 2.5", "client.parallel_puts to 2.5, which is not a whole number"),
    ],
)
def test_the_refusal_says_what_the_setting_takes(tmp_path: Path, line: str, words: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[client]\n{line}\n")

    with pytest.raises(ConfigError) as refused:
        build(ClientSettings, config)

    assert words in str(refused.value)


def test_values_of_the_right_kind_still_load(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[worker]\nconcurrency = 3\nengine_mounts = ["/opt/model"]\n')

    settings = build(WorkerSettings, config)

    assert (settings.concurrency, settings.engine_mounts) == (3, ("/opt/model",))
