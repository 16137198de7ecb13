"""``fap up``: the whole pipeline on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fap.cli.common import VerboseOption, run, setup_logging


def up(
    inbox: Annotated[
        Path, typer.Argument(help="The folder to watch; created if missing.", metavar="DIR")
    ] = Path("inbox"),
    results: Annotated[
        Path,
        typer.Option(
            "--results", metavar="DIR", envvar="FAP_RESULTS", help="Where results are written."
        ),
    ] = Path("results"),
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            envvar="FAP_DATA_DIR",
            help="The server's data (database, blobs, local tokens). Default: FAP_HOME/server.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int,
        typer.Option(
            "--port", metavar="PORT", envvar="FAP_PORT", min=1, max=65535, help="The server's port."
        ),
    ] = 8700,
    verbose: VerboseOption = False,
) -> None:
    """Run serve, one worker and the watcher here; show results as they arrive; Ctrl-C stops all."""
    from fap.config import fap_home
    from fap.supervise import LocalPipeline, run_local_pipeline

    setup_logging(verbose)
    pipeline = LocalPipeline(
        inbox=inbox.resolve(),
        results=results.resolve(),
        data_dir=(data_dir or fap_home() / "server").resolve(),
        port=port,
        verbose=verbose,
    )
    run(run_local_pipeline(pipeline))
