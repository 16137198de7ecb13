"""``fap watch DIR``: upload every file that settles in a directory; write results beside."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

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
from fap.cli.live import folder_reporter
from fap.cli.upload import (
    BwlimitOption,
    EngineOption,
    NoDedupOption,
    ResultsOption,
    parse_rate,
    warn,
)
from fap.errors import InputError, JobsFailed

if TYPE_CHECKING:
    from fap.client import FolderReporter, FolderSummary, FolderSync
    from fap.transfer.schedule import BandwidthSchedule

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
    events: Annotated[
        bool,
        typer.Option(
            "--events",
            hidden=True,
            help="Every step of every file as JSON lines on stdout, for a process that runs "
            "this one (fap up); fap.cli.live has the format.",
        ),
    ] = False,
    status: Annotated[
        bool,
        typer.Option(
            "--status",
            help="Do not watch: show what the watcher of DIR is doing, running or stopped, as "
            "the journal says: files queued, uploading (chunks and bytes stored), waiting for a "
            "result, done and failed with the reason (with --json: one JSON line per file).",
        ),
    ] = False,
    retry_for: RetryForOption = None,
    bwlimit: BwlimitOption = None,
    no_dedup: NoDedupOption = False,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Watch a directory: upload each file once it settles, write its result to the results dir.

    Results mirror the directory: RESULTS/<relative path>.result.json. A journal in the fap home
    remembers every file, so a restart neither repeats nor loses work. With --once, exits 0 only
    if every file got a result, else 7. SIGTERM stops the watch within 10 s: no new file is
    taken, the chunks being sent land and are journalled, and the next run resumes from there
    (a second SIGTERM stops at once). fap retry sends failed files again.
    """
    setup_logging(verbose, client=True)
    if status:
        from fap.cli.watch_status import show_status

        show_status(directory, server=server, json_output=json_output)
        return
    rate = parse_rate(bwlimit)
    if not directory.is_dir():
        problem = "does not exist" if not directory.exists() else "is not a directory"
        die(InputError(f"{directory} {problem}; fap watch needs a directory."))
    with folder_reporter(json_output=json_output, events=events, root=directory) as reporter:
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
                reporter=reporter,
                dedup=not no_dedup,
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
    retry_for: float | None,
    results: Path,
    engine: str | None,
    once: bool,
    bwlimit: BandwidthSchedule | None,
    reporter: FolderReporter,
    dedup: bool,
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

    settings = load_settings(server=server, org=org, token=token, retry_for=retry_for, warn=warn)
    if not once:  # the watch itself waits for the server, for as long as it takes
        retry_for = min(settings.retry_for, CALL_BUDGET_SECONDS)
        settings = dataclasses.replace(settings, retry_for=retry_for)
    stopping = _stop_on_sigterm()
    try:
        async with (
            open_runtime(settings, warn=warn, bwlimit=bwlimit) as runtime,
            Journal(settings.home / JOURNAL_NAME, settings.server) as journal,
        ):
            sync = FolderSync(
                runtime, journal, directory, results, engine=engine, reporter=reporter, dedup=dedup
            )
            stopping.attach(sync)
            if not once:
                err_console.print(
                    f"watching {directory}; results go to {results}", markup=False, highlight=False
                )
            summary = await sync.run(once=once)
            # A graceful stop: the journal holds whatever is unfinished.
            return None if stopping.requested else summary
    except asyncio.CancelledError:
        if stopping.requested:
            return None
        raise


class _Stop:
    """What SIGTERM does to a watch. The first one stops it gracefully (``FolderSync.stop``: no
    new file, the chunks being PUT land and are journalled); one that comes before the watch
    has begun, or a second one, cancels it at once. Either way the journal and the connections
    close in order, and the exit is 0."""

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.requested = False
        self._task = task
        self._sync: FolderSync | None = None

    def attach(self, sync: FolderSync) -> None:
        self._sync = sync

    def __call__(self) -> None:
        again = self.requested
        self.requested = True
        if self._sync is not None and not again:
            err_console.print(
                "stopping: the chunks being sent land first (SIGTERM again stops at once)",
                markup=False,
                highlight=False,
            )
            self._sync.stop()
        elif self._task is not None:
            self._task.cancel()


def _stop_on_sigterm() -> _Stop:
    stop = _Stop(asyncio.current_task())
    # Some loops take no signal handlers (Windows, a loop in a thread): SIGTERM then just ends.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop)
    return stop
