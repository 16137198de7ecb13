"""``fap work``: a processor that leases jobs, drives its engine and seals the results."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from fap.cli.common import QuietOption, TokenOption, VerboseOption, die, run, setup_logging
from fap.errors import EXIT_INTERRUPTED, ConfigError

__all__ = ("work",)


def work(
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            metavar="URL",
            envvar="FAP_SERVER",
            help="The fap server's URL, or its replicas' URLs comma-separated, tried in turn "
            "when one does not answer.",
            show_default=False,
        ),
    ] = None,
    token: TokenOption = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            metavar="N",
            envvar="FAP_CONCURRENCY",
            min=1,
            help="Jobs worked at once (default: the number of cores).",
            show_default=False,
        ),
    ] = None,
    engine_command: Annotated[
        str | None,
        typer.Option(
            "--engine-command",
            metavar="COMMAND",
            envvar="FAP_ENGINE_COMMAND",
            help="The engine to start, as a shell-quoted command line; it must listen on the "
            "unix socket named by FAP_ENGINE_SOCKET (default: this installation's fap engine).",
            show_default=False,
        ),
    ] = None,
    job_timeout: Annotated[
        float | None,
        typer.Option(
            "--job-timeout",
            metavar="SECONDS",
            envvar="FAP_JOB_TIMEOUT",
            min=1,
            help="Seconds the engine may take over one file before it counts as hung and is "
            "restarted (default: 3600; waits for the uploader do not count).",
            show_default=False,
        ),
    ] = None,
    retry_for: Annotated[
        float | None,
        typer.Option(
            "--retry-for",
            metavar="SECONDS",
            envvar="FAP_RETRY_FOR",
            min=0,
            help="Seconds one request keeps retrying an unreachable server before the worker "
            "logs it and starts over (default: 30). The worker itself never gives up.",
            show_default=False,
        ),
    ] = None,
    verbose: VerboseOption = False,
    quiet: QuietOption = False,
) -> None:
    """Lease jobs from the server, analyse them with the engine, and send back sealed results.

    Opens no port: it only calls out to the server and the object store. The first SIGTERM or
    Ctrl-C stops leasing and finishes the jobs in flight; the second stops at once.
    """
    from fap.config import WorkerSettings, build
    from fap.errors import FapError
    from fap.worker import run_worker

    setup_logging(verbose, quiet)
    try:
        command = shlex.split(engine_command) if engine_command is not None else None
    except ValueError as error:
        die(ConfigError(f"--engine-command cannot be parsed: {error}."))
    if command == []:
        die(ConfigError("--engine-command is empty; name the engine to start."))
    try:
        settings = build(
            WorkerSettings,
            server=server,
            token=token,
            concurrency=concurrency,
            engine_command=command,
            job_timeout=job_timeout,
            retry_for=retry_for,
        )
    except FapError as error:
        die(error)
    if run(run_worker(settings)):
        raise typer.Exit(EXIT_INTERRUPTED)
