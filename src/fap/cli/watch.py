"""``fap watch DIR``: upload every file that settles in a directory; write results beside."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from fap.cli.common import (
    JsonOption,
    OrgOption,
    RetryForOption,
    ServerOption,
    TokenOption,
    VerboseOption,
    die,
    err_console,
    run,
    setup_logging,
)
from fap.cli.upload import (
    BwlimitOption,
    EngineOption,
    ResultsOption,
    emit_json,
    human,
    parse_rate,
    warn,
)
from fap.errors import InputError, JobsFailed

if TYPE_CHECKING:
    from fap.client import FileOutcome, FolderSummary

__all__ = ("watch",)


def watch(
    directory: Annotated[
        Path,
        typer.Argument(
            help="The directory to watch.", show_default=False, metavar="DIR", readable=False
        ),
    ],
    server: ServerOption = None,
    org: OrgOption = None,
    results: ResultsOption = Path("results"),
    once: Annotated[
        bool,
        typer.Option("--once", help="Upload what is there, wait for the results, then exit."),
    ] = False,
    engine: EngineOption = None,
    json_output: JsonOption = False,
    retry_for: RetryForOption = 30.0,
    bwlimit: BwlimitOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Watch a directory: upload each file once it settles, write its result to the results dir.

    Results mirror the directory: RESULTS/<relative path>.result.json. A journal in the fap home
    remembers every file, so a restart neither repeats nor loses work. With --once, exits 0 only
    if every file got a result, else 7.
    """
    setup_logging(verbose, client=True)
    rate = parse_rate(bwlimit)
    if not directory.is_dir():
        problem = "does not exist" if not directory.exists() else "is not a directory"
        die(InputError(f"{directory} {problem}; fap watch needs a directory."))
    summary = run(
        _watch(
            directory,
            server=server,
            org=org,
            token=token,
            retry_for=retry_for,
            results=results,
            engine=engine,
            once=once,
            bwlimit=rate,
            reporter=_Lines(json_output=json_output),
        )
    )
    if summary is not None and summary.failed:
        total = len(summary.outcomes)
        die(JobsFailed(f"{len(summary.failed)} of {total} files got no result."))


async def _watch(
    directory: Path,
    *,
    server: str | None,
    org: str | None,
    token: str | None,
    retry_for: float,
    results: Path,
    engine: str | None,
    once: bool,
    bwlimit: int | None,
    reporter: _Lines,
) -> FolderSummary | None:
    """The summary of a ``--once`` run; None when a watch was stopped by SIGTERM."""
    from fap.client import (
        CALL_BUDGET_SECONDS,
        JOURNAL_NAME,
        FolderSync,
        Journal,
        load_settings,
        open_runtime,
    )

    if not once:  # the watch itself waits for the server, for as long as it takes
        retry_for = min(retry_for, CALL_BUDGET_SECONDS)
    settings = load_settings(server=server, org=org, token=token, retry_for=retry_for, warn=warn)
    stopping = _stop_on_sigterm()
    try:
        async with (
            open_runtime(settings, warn=warn, bwlimit=bwlimit) as runtime,
            Journal(settings.home / JOURNAL_NAME, settings.server) as journal,
        ):
            sync = FolderSync(
                runtime, journal, directory, results, engine=engine, reporter=reporter
            )
            if not once:
                err_console.print(
                    f"watching {directory}; results go to {results}", markup=False, highlight=False
                )
            return await sync.run(once=once)
    except asyncio.CancelledError:
        if stopping.is_set():
            return None  # a graceful stop: the journal holds whatever is unfinished
        raise


def _stop_on_sigterm() -> asyncio.Event:
    """SIGTERM cancels the watch, which then closes its journal and connections in order."""
    stopping = asyncio.Event()
    task = asyncio.current_task()
    if task is None:
        return stopping

    def stop() -> None:
        stopping.set()
        task.cancel()

    # Some loops take no signal handlers (Windows, a loop in a thread): SIGTERM then just ends.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop)
    return stopping


class _Lines:
    """One line per file as it finishes (JSON with --json) on stdout; progress on stderr."""

    def __init__(self, *, json_output: bool) -> None:
        self._json = json_output

    def uploaded(self, outcome: FileOutcome) -> None:
        err_console.print(
            f"uploaded {outcome.file} as {outcome.upload_id}", markup=False, highlight=False
        )

    def finished(self, outcome: FileOutcome, *, earlier: bool) -> None:
        if self._json:
            emit_json(outcome)
            return
        line = human(outcome)
        sys.stdout.write(f"{line} (earlier)\n" if earlier else f"{line}\n")
        sys.stdout.flush()

    def retrying(self, message: str) -> None:
        err_console.print(
            f"[yellow]waiting:[/] {escape(message)} Retrying.", markup=True, highlight=False
        )
