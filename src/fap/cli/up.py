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
    log_file: Annotated[
        Path | None,
        typer.Option(
            "--log-file",
            metavar="FILE",
            envvar="FAP_LOG_FILE",
            help="Where the server, worker and watcher log (appended to). Default: FAP_HOME/up.log.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Run serve, one worker and the watcher here; show results as they arrive; Ctrl-C stops all.

    On a terminal: a bar per file in flight, each result or failure as it lands, the workers
    online. Elsewhere: plain lines. What the server, worker and watcher log goes to the log file
    (with -v: to the terminal too); their warnings and errors are shown, one line each.
    """
    from fap.cli.live import UpView, on_terminal
    from fap.config import fap_home
    from fap.supervise import LocalPipeline, run_local_pipeline

    setup_logging(verbose, client=True)
    pipeline = LocalPipeline(
        inbox=inbox.resolve(),
        results=results.resolve(),
        data_dir=(data_dir or fap_home() / "server").resolve(),
        port=port,
        log_file=(log_file or fap_home() / "up.log").resolve(),
        verbose=verbose,
    )
    with UpView(live=on_terminal()) as view:
        run(run_local_pipeline(pipeline, view))
