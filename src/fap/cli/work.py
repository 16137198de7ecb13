"""``fap work``: a processor that leases jobs, drives its engine and seals the results."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Annotated

import typer

from fap.cli.common import QuietOption, TokenOption, VerboseOption, die, run, setup_logging
from fap.errors import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, ConfigError

if TYPE_CHECKING:
    from fap.config import WorkerSettings

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
    engine_memory: Annotated[
        str | None,
        typer.Option(
            "--engine-memory",
            metavar="SIZE",
            envvar="FAP_ENGINE_MEMORY",
            help="Address space each engine process may use (512M, 2G; also the largest file it "
            "may write, and its /tmp); past it an allocation fails and the job fails with the "
            "limit (default: 4G; unlimited for none, as a CUDA engine needs).",
            show_default=False,
        ),
    ] = None,
    engine_cpu_seconds: Annotated[
        float | None,
        typer.Option(
            "--engine-cpu-seconds",
            metavar="SECONDS",
            envvar="FAP_ENGINE_CPU_SECONDS",
            min=0,
            help="CPU seconds the engine may use on one file, all its processes and threads "
            "together; past them it is stopped and the job fails (default: 3600; 0 for no limit).",
            show_default=False,
        ),
    ] = None,
    result_max_bytes: Annotated[
        str | None,
        typer.Option(
            "--result-max-bytes",
            metavar="SIZE",
            envvar="FAP_RESULT_MAX_BYTES",
            help="Largest JSON answer the engine may send for one file (bytes, or 1M, 64M…); a "
            "larger one is cut off and the job fails (default: 256M).",
            show_default=False,
        ),
    ] = None,
    engine_mount: Annotated[
        list[str] | None,
        typer.Option(
            "--engine-mount",
            metavar="PATH",
            envvar="FAP_ENGINE_MOUNT",
            help="Make PATH visible, read-only, at the same path inside the engine's sandbox: the "
            "analyzer's code, model weights (repeatable; FAP_ENGINE_MOUNT: space-separated).",
            show_default=False,
        ),
    ] = None,
    engine_env: Annotated[
        list[str] | None,
        typer.Option(
            "--engine-env",
            metavar="KEY=VALUE",
            envvar="FAP_ENGINE_ENV",
            help="Set KEY in the engine's environment, which holds nothing of the worker's: "
            "PYTHONPATH for the analyzer's code, say (repeatable; FAP_ENGINE_ENV: "
            "space-separated).",
            show_default=False,
        ),
    ] = None,
    engine_device: Annotated[
        list[str] | None,
        typer.Option(
            "--engine-device",
            metavar="PATH",
            envvar="FAP_ENGINE_DEVICE",
            help="Let the engine use this device node, a GPU's say (repeatable; "
            "FAP_ENGINE_DEVICE: space-separated).",
            show_default=False,
        ),
    ] = None,
    require_sandbox: Annotated[
        bool,
        typer.Option(
            "--require-sandbox",
            envvar="FAP_REQUIRE_SANDBOX",
            help="Refuse to start where bubblewrap cannot sandbox the engine (default: run it "
            "with its rlimits alone, and say so).",
        ),
    ] = False,
    check_sandbox: Annotated[
        bool,
        typer.Option(
            "--check-sandbox",
            envvar="FAP_CHECK_SANDBOX",
            help="Print what the engine sandbox gives on this machine (bubblewrap, namespaces, "
            "limits) and exit: 0 when it is the full sandbox, 3 when not. Needs no server.",
        ),
    ] = False,
    verbose: VerboseOption = False,
    quiet: QuietOption = False,
) -> None:
    """Lease jobs from the server, analyse them with the engine, and send back sealed results.

    Opens no port: it only calls out to the server and the object store. The first SIGTERM or
    Ctrl-C stops leasing and finishes the jobs in flight; the second stops at once. Each engine
    runs in a bubblewrap sandbox where bubblewrap works (docs/sandbox.md): no network, a
    read-only system, a private /tmp, nothing of the processor's files or environment.
    """
    from fap.config import WorkerSettings, build
    from fap.errors import FapError
    from fap.sizes import parse_size
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
            engine_memory=(
                None
                if engine_memory is None
                else parse_size(engine_memory, "--engine-memory", unlimited=True)
            ),
            engine_cpu_seconds=engine_cpu_seconds,
            result_max_bytes=(
                None
                if result_max_bytes is None
                else parse_size(result_max_bytes, "--result-max-bytes")
            ),
            engine_mounts=engine_mount or None,
            engine_env=engine_env or None,
            engine_devices=engine_device or None,
            require_sandbox=require_sandbox or None,
        )
    except FapError as error:
        die(error)
    if check_sandbox:
        raise typer.Exit(_check(settings))
    if run(run_worker(settings)):
        raise typer.Exit(EXIT_INTERRUPTED)


def _check(settings: WorkerSettings) -> int:
    """``--check-sandbox``: the report on stdout; 0 for the full sandbox, 3 for less."""
    from rich.console import Console
    from rich.markup import escape

    from fap.worker import check_sandbox

    report = run(check_sandbox(settings))
    console = Console(highlight=False, soft_wrap=True)
    for topic, text in report.lines():
        console.print(f"[bold]{topic + ':':<13}[/] {escape(text)}")
    return EXIT_OK if report.full else EXIT_INPUT
