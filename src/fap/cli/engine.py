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

REFERENCE_ANALYZER = "fap.engine.reference:analyze"


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
            help="The analyzer to run, as module:function: a function (stream, meta) that "
            "answers JSON, in a module on PYTHONPATH or in the current directory.",
        ),
    ] = REFERENCE_ANALYZER,
    name: Annotated[
        str | None,
        typer.Option(
            "--engine",
            metavar="NAME@VERSION",
            envvar="FAP_ENGINE_NAME",
            help=f"The NAME@VERSION this engine reports; uploads ask for an engine by it. "
            f"Needed with --analyzer: only the reference analyzer is {DEFAULT_ENGINE}.",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
) -> None:
    """Serve an analyzer over the engine protocol on a unix socket; no network listener.

    The worker (fap work) starts its engine itself; run fap engine by hand to try an analyzer
    with curl --unix-socket. See docs/engines.md.
    """
    from fap.engine import EngineSetupError, check_engine_name, load_analyzer
    from fap.engine.server import serve_engine

    if socket is None:
        die(
            ConfigError(
                "fap engine needs a socket to listen on: pass --socket PATH or set FAP_ENGINE_SOCKET."
            )
        )
    if name is None and analyzer != REFERENCE_ANALYZER:
        # Named by default as the reference analyzer, it would answer the uploads that ask for
        # the reference analyzer with results of its own.
        die(
            ConfigError(
                f"fap engine --analyzer {analyzer} needs --engine NAME@VERSION: the name uploads "
                f"ask for this analyzer by ({DEFAULT_ENGINE} is the reference analyzer's)."
            )
        )
    setup_logging(verbose)
    if not verbose:  # the engine says itself when it listens and stops; uvicorn's lines repeat it
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    try:
        engine_name = check_engine_name(
            name or DEFAULT_ENGINE
        )  # before the import, which may take a while
        function = load_analyzer(analyzer)
    except EngineSetupError as error:
        die(ConfigError(str(error)))
    try:
        serve_engine(socket, function, engine_name)
    except EngineSetupError as error:
        die(ConfigError(str(error)))
