"""``fap upload FILE…``: send files for analysis, wait for the results, write them out."""

from __future__ import annotations

import json
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
from fap.errors import EXIT_INPUT, JobsFailed

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn, TaskID

    from fap.client import FileOutcome

__all__ = (
    "BwlimitOption",
    "EngineOption",
    "ResultsOption",
    "check_engine",
    "emit_json",
    "human",
    "parse_rate",
    "progress_columns",
    "upload",
    "warn",
)

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def check_engine(value: str | None) -> str | None:
    """``--engine``: refused here, in the words of a flag, before any file is read or sent."""
    if value is None:
        return None
    if not is_engine_name(value):
        raise typer.BadParameter(
            f"{value[:100]!r} is not NAME@VERSION (for example size@1): {ENGINE_NAME_RULE}."
        )
    return value


def parse_rate(value: str | None) -> int | None:
    """``--bwlimit``: bytes per second, with an optional K, M or G (binary) suffix."""
    if value is None:
        return None
    text = value.strip().upper()
    text = text.removesuffix("IB") if text.endswith("IB") else text.removesuffix("B")
    unit = text[-1] if text and text[-1] in "KMG" else ""
    number = text[: len(text) - len(unit)]
    try:
        rate = float(number) * _UNITS[unit]
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a rate in bytes per second (e.g. 8M)."
        ) from None
    if rate <= 0:
        raise typer.BadParameter("The bandwidth limit must be above zero.")
    return int(rate)


ResultsOption = Annotated[
    Path,
    typer.Option(
        "--results",
        envvar="FAP_RESULTS",
        help="Directory the decrypted results are written to.",
        file_okay=False,
    ),
]
EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
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
        help="Cap the upload rate, in bytes per second (K, M, G suffixes: 8M); --limit-rate is "
        "the same.",
        show_default=False,
    ),
]


def warn(message: str) -> None:
    # A message quotes paths (FAP_HOME, a file's): text, not markup.
    err_console.print(f"[yellow]warning:[/] {escape(message)}", markup=True, highlight=False)


def upload(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="The files to upload.", show_default=False, metavar="FILE...", readable=False
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
    retry_for: RetryForOption = 30.0,
    bwlimit: BwlimitOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Upload files for analysis, wait for their results and write each one to the results dir.

    Exits 0 only if every file got a result (with --no-wait: was uploaded), else 7.
    """
    from fap.client import FileOutcome, check_file

    setup_logging(verbose, client=True)
    rate = parse_rate(bwlimit)
    readable: list[Path] = []
    refused: list[FileOutcome] = []
    names: set[str] = set()
    for path in files:
        problem = check_file(path)
        if problem is None and path.name in names:
            # Results are named after the file: a second x.txt would overwrite the first's.
            problem = (
                f"{path}: another file named {path.name} is in this upload and its result "
                "would be overwritten; upload it separately or use fap watch."
            )
        if problem:
            refused.append(FileOutcome(file=str(path), error=problem))
            err_console.print(
                f"[bold red]error:[/] {escape(problem)}", markup=True, highlight=False
            )
            if json_output:
                emit_json(refused[-1])
        else:
            names.add(path.name)
            readable.append(path)
    if not readable:
        raise typer.Exit(EXIT_INPUT)

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
        )
    )
    wanted = "uploaded" if no_wait else "done"
    missed = len(refused) + sum(outcome.status != wanted for outcome in outcomes)
    if missed:
        what = "were not uploaded" if no_wait else "got no result"
        die(JobsFailed(f"{missed} of {len(files)} files {what}."))


async def _upload(
    files: list[Path],
    *,
    server: str | None,
    org: str | None,
    token: str | None,
    retry_for: float,
    results: Path,
    engine: str | None,
    wait: bool,
    json_output: bool,
    bwlimit: int | None,
) -> list[FileOutcome]:
    from rich.progress import Progress

    from fap.client import load_settings, open_runtime, upload_files

    settings = load_settings(server=server, org=org, token=token, retry_for=retry_for, warn=warn)
    progress: Progress | None = None
    if err_console.is_terminal:
        progress = Progress(*progress_columns(), console=err_console, transient=False)
    reporter = _Reporter(progress, json_output=json_output)
    async with open_runtime(settings, warn=warn, bwlimit=bwlimit) as runtime:
        if progress is None:
            return await upload_files(
                runtime, files, results_dir=results, engine=engine, wait=wait, reporter=reporter
            )
        with progress:
            return await upload_files(
                runtime, files, results_dir=results, engine=engine, wait=wait, reporter=reporter
            )


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
            err_console.print(f"uploaded {outcome.file} as {outcome.upload_id}", markup=False)

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
