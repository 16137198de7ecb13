"""``fap upload FILE…``: send files for analysis, wait for the results, write them out."""

from __future__ import annotations

import json
import os
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
from fap.engine.protocol import ENGINE_NAME_RULE, is_engine_name
from fap.errors import EXIT_INPUT, InputError, JobsFailed

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn, TaskID

    from fap.client import BatchFile, FileOutcome
    from fap.transfer.schedule import BandwidthSchedule

__all__ = (
    "BwlimitOption",
    "EngineOption",
    "NoDedupOption",
    "ResultsOption",
    "check_engine",
    "emit_json",
    "human",
    "parse_rate",
    "progress_columns",
    "upload",
    "warn",
)


def check_engine(value: str | None) -> str | None:
    """``--engine``: refused here, in the words of a flag, before any file is read or sent."""
    if value is None:
        return None
    if not is_engine_name(value):
        raise typer.BadParameter(
            f"{value[:100]!r} is not NAME@VERSION (for example size@1): {ENGINE_NAME_RULE}."
        )
    return value


def parse_rate(value: str | None) -> BandwidthSchedule | None:
    """``--bwlimit``: one rate, or a timetable of rates; None when nothing is limited."""
    if value is None:
        return None
    from fap.transfer.schedule import BandwidthSchedule

    try:
        schedule = BandwidthSchedule.parse(value)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="'--bwlimit'") from None
    return None if schedule.unlimited else schedule


ResultsOption = Annotated[
    Path,
    typer.Option(
        "--results",
        metavar="DIR",
        envvar="FAP_RESULTS",
        help="Directory the decrypted results are written to.",
        file_okay=False,
    ),
]
EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        metavar="NAME@VERSION",
        envvar="FAP_ENGINE",
        help="The engine to analyse with, NAME@VERSION (default: the organisation's).",
        callback=check_engine,
        show_default=False,
    ),
]


BwlimitOption = Annotated[
    str | None,
    typer.Option(
        "--bwlimit",
        "--limit-rate",
        metavar="RATE",
        envvar="FAP_BWLIMIT",
        help="Cap the upload rate, in bytes per second (K, M, G suffixes: 8M), or follow a "
        'timetable of HH:MM,RATE entries in local time, RATE a rate or off: "08:00,4M 18:00,off" '
        "(each rate holds from its time to the next entry's; the last one's runs past midnight). "
        "--limit-rate is the same.",
        show_default=False,
    ),
]


NoDedupOption = Annotated[
    bool,
    typer.Option(
        "--no-dedup",
        envvar="FAP_NO_DEDUP",
        help="Have every file analysed anew. By default a file you had analysed already (the "
        "same name, content and engine, its result still kept on the server and sealed to "
        "the devices you have now) is answered with that result, and nothing is sent.",
    ),
]


def warn(message: str) -> None:
    # A message quotes paths (FAP_HOME, a file's): text, not markup.
    err_console.print(f"[yellow]warning:[/] {escape(message)}", markup=True, highlight=False)


def upload(
    files: Annotated[
        list[str],
        typer.Argument(
            help="The files to upload, and with --recursive directories. A lone - reads the "
            "list from stdin, one path a line (blank lines skipped), each taken as if named "
            "here (a file named - is ./-).",
            show_default=False,
            metavar="FILE...",
        ),
    ],
    server: ServerOption = None,
    org: OrgOption = None,
    results: ResultsOption = Path("results"),
    engine: EngineOption = None,
    json_output: JsonOption = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Return once the files are uploaded.")
    ] = False,
    recursive: Annotated[
        bool,
        typer.Option(
            "--recursive",
            "-r",
            help="Upload every file below each directory named; results mirror their paths: "
            "RESULTS/<path below the directory>.result.json. Hidden and temporary files, and "
            "links out of the directory, are skipped, as fap watch skips them.",
        ),
    ] = False,
    null: Annotated[
        bool,
        typer.Option(
            "--null", "-0", help="The list read from stdin is NUL-separated (find -print0)."
        ),
    ] = False,
    fail_fast: Annotated[
        bool,
        typer.Option(
            "--fail-fast",
            help="Stop at the first file that fails: start no other and cancel those in "
            "flight. Every file left without its result is reported failed (not sent, or not "
            "awaited), so a pipeline sees what was not analysed. A file that cannot be read "
            "stops the upload before anything is sent.",
        ),
    ] = False,
    retry_for: RetryForOption = None,
    bwlimit: BwlimitOption = None,
    no_dedup: NoDedupOption = False,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Upload files for analysis, wait for their results and write each one to the results dir.

    A result is named after its file: RESULTS/<file name>.result.json. Two files whose results
    would share a name are not both sent. Exit codes: 0 when every file got its result (with
    --no-wait: was uploaded); 3 when no file could be read; 4 without a valid token (FAP_TOKEN);
    5 when the server does not answer; 7 when some file got no result.
    """
    setup_logging(verbose, client=True)
    rate = parse_rate(bwlimit)
    # "-" as typed: a Path would make ./- (a file of that name) the same.
    if "-" in files and len(files) > 1:
        raise typer.BadParameter(
            "- reads the list of files from stdin: give it alone.", param_hint="FILE..."
        )
    if files == ["-"]:
        paths = _read_list(null=null)
    elif null:
        raise typer.BadParameter(
            "it is for a list read from stdin: give - as the only FILE.", param_hint="'--null'"
        )
    else:
        paths = [Path(file) for file in files]
    readable, refused = _choose(paths, recursive=recursive, results=results)
    for outcome in refused:
        err_console.print(
            f"[bold red]error:[/] {escape(outcome.error or '')}", markup=True, highlight=False
        )
        if json_output:
            emit_json(outcome)
    if not readable:
        raise typer.Exit(EXIT_INPUT)
    total = len(readable) + len(refused)
    if fail_fast and refused:
        _stop_before_sending(readable, json_output=json_output)
        unread = f"{len(refused)} of {total} files cannot be sent"
        die(JobsFailed(f"{unread}, so with --fail-fast none was sent."))

    outcomes = run(
        _upload(
            readable,
            server=server,
            org=org,
            token=token,
            retry_for=retry_for,
            results=results,
            engine=engine,
            wait=not no_wait,
            json_output=json_output,
            bwlimit=rate,
            fail_fast=fail_fast,
            dedup=not no_dedup,
        )
    )
    wanted = "uploaded" if no_wait else "done"
    missed = len(refused) + sum(outcome.status != wanted for outcome in outcomes)
    if missed:
        what = "were not uploaded" if no_wait else "got no result"
        die(JobsFailed(f"{missed} of {total} files {what}."))


def _read_list(*, null: bool) -> list[Path]:
    """The paths on stdin: one a line (blank lines skipped), or NUL-separated."""
    data = sys.stdin.buffer.read()
    parts = (
        [part for part in data.split(b"\0") if part]
        if null
        else [line for line in data.splitlines() if line.strip()]
    )
    if not parts:
        die(InputError("No files were named on stdin (- reads their list from there)."))
    # Bytes as the file system has them: a name that is not UTF-8 still names its file.
    return [Path(os.fsdecode(part)) for part in parts]


def _choose(
    paths: list[Path], *, recursive: bool, results: Path
) -> tuple[list[BatchFile], list[FileOutcome]]:
    """The files to send, each with the name its result carries, and those refused, with why."""
    from fap.client import BatchFile, FileOutcome, check_file, files_in

    readable: list[BatchFile] = []
    refused: list[FileOutcome] = []
    names: set[str] = set()

    def take(file: BatchFile) -> None:
        problem = check_file(file.path)
        if problem is None and file.name in names:
            # A second x.txt would overwrite the first's result.
            problem = (
                f"{file.path}: another file named {file.name} is in this upload and its result "
                "would be overwritten; upload it separately or use fap watch."
            )
        if problem:
            refused.append(FileOutcome(file=str(file.path), error=problem))
        else:
            names.add(file.name)
            readable.append(file)

    # Results written into a directory being uploaded are not uploaded in their turn.
    exclude = (results.resolve(),)
    for path in paths:
        if not (recursive and path.is_dir()):
            take(BatchFile(path, path.name))
            continue
        found = files_in(path, exclude=exclude)
        for file in found:
            take(file)
        if not found:
            problem = (
                f"{path} cannot be read."
                if not os.access(path, os.R_OK | os.X_OK)
                else f"{path} holds no file to upload (hidden and temporary files are skipped)."
            )
            refused.append(FileOutcome(file=str(path), error=problem))
    return readable, refused


def _stop_before_sending(files: list[BatchFile], *, json_output: bool) -> None:
    """--fail-fast met a file it cannot read: every other file's last word is that it was not sent."""
    from fap.client import NOT_SENT, FileOutcome

    reporter = _Reporter(None, json_output=json_output)
    for file in files:
        reporter.finished(FileOutcome(file=str(file.path), error=NOT_SENT))


async def _upload(
    files: list[BatchFile],
    *,
    server: str | None,
    org: str | None,
    token: str | None,
    retry_for: float | None,
    results: Path,
    engine: str | None,
    wait: bool,
    json_output: bool,
    bwlimit: BandwidthSchedule | None,
    fail_fast: bool,
    dedup: bool,
) -> list[FileOutcome]:
    from fap.client import load_settings, open_runtime, upload_files

    settings = load_settings(server=server, org=org, token=token, retry_for=retry_for, warn=warn)
    progress: Progress | None = None
    if err_console.is_terminal:
        # Imported for a terminal alone: rich's progress bars cost every scripted run ~15 ms.
        from rich.progress import Progress

        progress = Progress(*progress_columns(), console=err_console, transient=False)
    reporter = _Reporter(progress, json_output=json_output)
    async with open_runtime(settings, warn=warn, bwlimit=bwlimit) as runtime:
        sending = upload_files(
            runtime,
            files,
            results_dir=results,
            engine=engine,
            wait=wait,
            reporter=reporter,
            fail_fast=fail_fast,
            dedup=dedup,
        )
        if progress is None:
            return await sending
        with progress:
            return await sending


def progress_columns() -> tuple[ProgressColumn, ...]:
    """A bar per file: its name, the bar, bytes stored of its size, the rate."""
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TransferSpeedColumn

    return (
        # A description holds a file's name: shown as it is, never read as markup.
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )


def emit_json(outcome: FileOutcome) -> None:
    sys.stdout.write(json.dumps(outcome.as_dict()) + "\n")
    sys.stdout.flush()


def human(outcome: FileOutcome) -> str:
    if outcome.status == "done":
        return f"{outcome.file}: done, result in {outcome.result_path}"
    if outcome.status == "uploaded":
        return f"{outcome.file}: uploaded as {outcome.upload_id}"
    return f"{outcome.file}: failed: {outcome.error}"


class _Reporter:
    """A progress bar per file on a terminal; plain lines otherwise.

    Every line holds a file's name, which may look like rich markup (``[red]x``): all of them
    are printed as text (``markup=False``), never parsed.
    """

    def __init__(self, progress: Progress | None, *, json_output: bool) -> None:
        self._progress = progress
        self._json = json_output
        self._tasks: dict[str, TaskID] = {}

    def started(self, file: str, size: int) -> None:
        if self._progress is not None:
            self._tasks[file] = self._progress.add_task(Path(file).name, total=size)

    def advanced(self, file: str, raw_bytes: int) -> None:
        if self._progress is not None and file in self._tasks:
            self._progress.advance(self._tasks[file], raw_bytes)

    def uploaded(self, outcome: FileOutcome) -> None:
        if self._progress is not None and outcome.file in self._tasks:
            name = Path(outcome.file).name
            self._progress.update(self._tasks[outcome.file], description=f"{name} (analysing)")
        elif self._progress is None:
            # A line a file, thousands of them for a folder: written as they are, as stdout's
            # are, not rendered by rich (which costs a folder of small files a tenth of its time).
            sys.stderr.write(f"uploaded {outcome.file} as {outcome.upload_id}\n")
            sys.stderr.flush()

    def finished(self, outcome: FileOutcome) -> None:
        if self._progress is not None and outcome.file in self._tasks:
            name = Path(outcome.file).name
            self._progress.update(
                self._tasks[outcome.file], description=f"{name} ({outcome.status})"
            )
        if self._json:
            emit_json(outcome)
            if outcome.status == "failed":
                err_console.print(human(outcome), markup=False)
        elif self._progress is not None:
            self._progress.console.print(human(outcome), markup=False, highlight=False)
        else:
            sys.stdout.write(human(outcome) + "\n")
            sys.stdout.flush()
