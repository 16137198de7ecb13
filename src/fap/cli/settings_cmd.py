"""``fap config``: the settings in ``config.toml`` in the fap home, listed, read and changed.

Settings are named ``SECTION.KEY`` (``client.server``, ``server.port``, ``worker.concurrency``),
one section per role. ``set`` checks the value against the role's settings before the file
changes; a token is never written to the file, nor shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from fap.cli.common import JsonOption, die
from fap.cli.upload import warn
from fap.errors import FapError

if TYPE_CHECKING:
    from fap.client import Setting

__all__ = ("app",)

app = typer.Typer(
    name="config",
    help="Show and change the settings in config.toml in the fap home (FAP_HOME).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

KeyArgument = Annotated[
    str,
    typer.Argument(
        metavar="KEY",
        help="The setting, as SECTION.KEY: client.server, server.port… (fap config list).",
        show_default=False,
    ),
]

_HIDDEN = "[hidden]"


@app.command("list")
def list_(json_output: JsonOption = False) -> None:
    """Show every setting with the value commands use and where it comes from: default, file
    (config.toml) or env (a FAP_* variable, named). Flags given to a command win over all three."""
    import os

    from fap.cli.listing import write_json, write_rows
    from fap.client import config_path, list_settings

    path = config_path()
    try:
        settings = list_settings(path, os.environ)
    except FapError as error:
        die(error)
    if json_output:
        write_json(_json(item) for item in settings)
        return
    write_rows(
        f"Settings ({path})",
        ("key", "value", "from"),
        [(item.key, _text(item), _source(item)) for item in settings],
    )


@app.command("get")
def get(key: KeyArgument) -> None:
    """Print the value of one setting that commands use (from a FAP_* variable, config.toml or
    the default)."""
    import os
    import sys

    from fap.client import config_path, get_setting

    try:
        item = get_setting(config_path(), key, os.environ)
    except FapError as error:
        die(error)
    sys.stdout.write(_text(item) + "\n")


@app.command("set")
def set_(
    key: KeyArgument,
    values: Annotated[
        list[str],
        typer.Argument(
            metavar="VALUE...",
            help="The value; a list takes one or more (worker.engine_command takes one command "
            "line, or its words).",
            show_default=False,
        ),
    ],
) -> None:
    """Set KEY to VALUE in config.toml, once the value is checked against the settings; a value
    that does not fit leaves the file as it was. Comments in the file are not kept."""
    import os

    from fap.cli.listing import say
    from fap.client import ENV_VARS, config_path, set_setting

    path = config_path()
    try:
        set_setting(path, key, values)
    except FapError as error:
        die(error)
    say(f"{key} set in {path}.")
    env = ENV_VARS.get(key)
    if env is not None and os.environ.get(env):
        warn(f"{env} is set here, and commands take it over {key} in the file.")


@app.command("unset")
def unset(key: KeyArgument) -> None:
    """Remove KEY from config.toml, so that its default (or its FAP_* variable) applies."""
    from fap.cli.common import err_console
    from fap.cli.listing import say
    from fap.client import config_path, unset_setting

    path = config_path()
    try:
        removed = unset_setting(path, key)
    except FapError as error:
        die(error)
    if removed:
        say(f"{key} removed from {path}.")
    else:
        err_console.print(f"{key} is not set in {path}.", markup=False)


def _text(item: Setting) -> str:
    """A value as one line of text: lists as shell words; secrets hidden; URLs without queries."""
    import shlex

    from fap.client import SECRET_SETTINGS
    from fap.logs import redact

    value = item.value
    if value is None:
        return ""
    if item.key in SECRET_SETTINGS:
        return _HIDDEN
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return redact(shlex.join(str(part) for part in value))
    return redact(str(value))


def _source(item: Setting) -> str:
    return f"env {item.env}" if item.source == "env" else item.source


def _json(item: Setting) -> dict[str, Any]:
    from fap.client import SECRET_SETTINGS
    from fap.logs import redact

    value: Any = item.value
    if item.key in SECRET_SETTINGS and value is not None:
        value = _HIDDEN
    elif isinstance(value, str):
        value = redact(value)
    elif isinstance(value, list):
        value = [redact(part) if isinstance(part, str) else part for part in value]
    return {"key": item.key, "value": value, "source": item.source, "env": item.env}
