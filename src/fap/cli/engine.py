"""``fap engine``: serve an analyzer on a unix socket (the worker starts it; people rarely do)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from fap.cli.common import die, setup_logging
from fap.engine.protocol import DEFAULT_ENGINE, SOCKET_ENV
from fap.errors import ConfigError

__all__ = ("engine",)


def engine(
    socket: Annotated[
        Path | None,
        typer.Option(
            "--socket",
            metavar="PATH",
            envvar=SOCKET_ENV,
            help="The unix socket to listen on (the worker passes FAP_ENGINE_SOCKET).",
            show_default=False,
        ),
    ] = None,
    analyzer: Annotated[
        str,
        typer.Option(
            "--analyzer",
            metavar="MODULE:FUNCTION",
            envvar="FAP_ENGINE_ANALYZER",
            help="The analyzer to run, as module:function; its module must be on PYTHONPATH.",
        ),
    ] = "fap.engine.reference:analyze",
    name: Annotated[
        str,
        typer.Option(
            "--engine",
            metavar="NAME@VERSION",
            envvar="FAP_ENGINE_NAME",
            help="The NAME@VERSION this engine reports; uploads ask for an engine by it.",
        ),
    ] = DEFAULT_ENGINE,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
) -> None:
    """Serve an analyzer over the engine protocol on a unix socket; no network listener."""
    from fap.engine import EngineSetupError, check_engine_name, load_analyzer
    from fap.engine.server import serve_engine

    if socket is None:
        die(
            ConfigError(
                "fap engine needs a socket to listen on: pass --socket PATH or set FAP_ENGINE_SOCKET."
            )
        )
    setup_logging(verbose)
    if not verbose:  # the engine says itself when it listens and stops; uvicorn's lines repeat it
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    try:
        serve_engine(socket, load_analyzer(analyzer), check_engine_name(name))
    except EngineSetupError as error:
        die(ConfigError(str(error)))
