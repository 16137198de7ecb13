"""``fap status``: workers online, the engine versions served and the jobs waiting for each, jobs
by state, queue depth."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fap.cli.common import JsonOption, OrgOption, RetryForOption, ServerOption, TokenOption, run
from fap.cli.upload import warn

if TYPE_CHECKING:
    from rich.console import RenderableType

    from fap.api import ApiSession, EngineStatus, StatusReport, UploadInfo

__all__ = ("status",)


def status(
    server: ServerOption = None,
    org: OrgOption = None,
    json_output: JsonOption = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            "-w",
            help="Refresh every second until Ctrl-C, with your most recent jobs: a live view on "
            "a terminal, else a snapshot a second (with --json: one JSON line each).",
        ),
    ] = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Not the server's status: what the watchers on this machine are doing, from "
            "their journal, as fap watch --status DIR shows it (of DIR, else of every watched "
            "directory).",
        ),
    ] = False,
    directory: Annotated[
        Path | None,
        typer.Argument(
            metavar="DIR", help="With --local: the watched directory.", show_default=False
        ),
    ] = None,
) -> None:
    """Show the workers online, the engine versions they serve with the jobs waiting for each,
    jobs by state and the queue depth.

    --json prints the server's StatusReport: per engine NAME@VERSION, the processors serving it
    and the jobs waiting for it (``engines``), and the engine uploads use (``default_engine``).
    """
    if local:
        from fap.cli.watch_status import show_status

        show_status(directory, server=server, json_output=json_output)
        return
    if directory is not None:
        raise typer.BadParameter("a directory goes with --local", param_hint="'DIR'")
    import msgspec

    if watch:
        from fap.cli.live import until_interrupted

        screen = _Screen(json_output=json_output)
        run(
            until_interrupted(
                _watch(screen, server=server, org=org, token=token, retry_for=retry_for)
            )
        )
        return
    report = run(_status(server=server, org=org, token=token, retry_for=retry_for))
    if json_output:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    elif sys.stdout.isatty():
        _render_rich(report)
    else:
        sys.stdout.write(_render_plain(report))


async def _status(
    *, server: str | None, org: str | None, token: str | None, retry_for: float | None
) -> StatusReport:
    from fap.client import connect, fetch_status, load_settings

    settings = load_settings(server=server, org=org, token=token, retry_for=retry_for, warn=warn)
    async with connect(settings, warn=warn) as session:
        return await fetch_status(session)


def _ago(timestamp: float) -> str:
    return f"{max(0.0, time.time() - timestamp):.0f} s ago"


def _jobs(report: StatusReport) -> list[tuple[str, int]]:
    from fap.api import JobState

    # The states this client knows, in the state machine's order; then any a newer server adds.
    known = [(state.value, report.jobs.get(state, 0)) for state in JobState]
    return known + sorted((s, n) for s, n in report.jobs.items() if s not in set(JobState))


def _engine_name(report: StatusReport, engine: EngineStatus) -> str:
    """The engine's name, marked when it is the one uploads use."""
    return f"{engine.engine} (default)" if engine.engine == report.default_engine else engine.engine


def _engine_line(engine: EngineStatus) -> str:
    count = len(engine.processors)
    served = f"{count} processor{'' if count == 1 else 's'}" if count else "no processor online"
    return f"{served}; {engine.waiting} waiting, {engine.running} running"


def _render_plain(report: StatusReport) -> str:
    lines = [f"workers online: {len(report.workers)}"]
    for worker in report.workers:
        engines = ", ".join(worker.engines) or "no engines"
        lines.append(
            f"  {worker.worker_id}: {engines}; {worker.active_jobs} active jobs; "
            f"last seen {_ago(worker.last_seen)}"
        )
    if report.engines:
        lines.append("engines:")
    for engine in report.engines:
        lines.append(f"  {_engine_name(report, engine)}: {_engine_line(engine)}")
    lines.append("jobs: " + ", ".join(f"{state} {count}" for state, count in _jobs(report)))
    lines.append(f"queue depth: {report.queue_depth}")
    return "\n".join(lines) + "\n"


def _render_rich(report: StatusReport) -> None:
    from rich.console import Console

    Console(highlight=False).print(_rich_view(report))


def _rich_view(report: StatusReport) -> RenderableType:
    from rich.console import Group
    from rich.table import Table

    workers = Table(title=f"Workers online: {len(report.workers)}", title_justify="left")
    for column in ("worker", "engines", "active jobs", "last seen"):
        workers.add_column(column)
    for worker in report.workers:
        workers.add_row(
            worker.worker_id,
            ", ".join(worker.engines),
            str(worker.active_jobs),
            _ago(worker.last_seen),
        )
    jobs = Table(title="Jobs", title_justify="left")
    jobs.add_column("state")
    jobs.add_column("count", justify="right")
    for state, count in _jobs(report):
        jobs.add_row(state, str(count))
    engines = Table(title="Engines", title_justify="left")
    for column in ("engine", "processors", "waiting", "running"):
        engines.add_column(column, justify="left" if column == "engine" else "right")
    for engine in report.engines:
        engines.add_row(
            _engine_name(report, engine),
            str(len(engine.processors)),
            str(engine.waiting),
            str(engine.running),
        )
    shown: list[RenderableType] = [workers]
    if report.engines:
        shown.append(engines)
    shown += [jobs, f"Queue depth: {report.queue_depth}"]
    return Group(*shown)


# --watch: how often the view is refreshed, and how many of the caller's newest jobs it shows.
REFRESH_SECONDS = 1.0
RECENT_JOBS = 8


async def _watch(
    screen: _Screen,
    *,
    server: str | None,
    org: str | None,
    token: str | None,
    retry_for: float | None,
) -> None:
    """A snapshot a second, until cancelled (by Ctrl-C: ``until_interrupted``)."""
    from fap.client import connect, fetch_status, load_settings

    settings = load_settings(server=server, org=org, token=token, retry_for=retry_for, warn=warn)
    async with connect(settings, warn=warn) as session:
        with screen:
            while True:
                report = await fetch_status(session)
                if not screen.show(report, await _recent(session)):
                    return
                await asyncio.sleep(REFRESH_SECONDS)


async def _recent(session: ApiSession) -> list[UploadInfo] | None:
    """The caller's newest jobs; None for a caller who may see the queue but not uploads."""
    from fap.client import list_uploads
    from fap.errors import AuthError, ServerError

    try:
        return await list_uploads(session, limit=RECENT_JOBS)
    except (AuthError, ServerError):
        return None


class _Screen:
    """Where --watch shows each snapshot: a live view on a terminal; else plain text or a JSON
    line (a StatusReport, as --json prints it) per snapshot, each written whole and flushed."""

    def __init__(self, *, json_output: bool) -> None:
        from rich.console import Console
        from rich.live import Live

        self._json = json_output
        self._live: Live | None = None
        if not json_output and sys.stdout.isatty():
            # The whole screen, as top and watch(1) take it: a view taller than the window is
            # cut at its foot rather than scrolled, and Ctrl-C gives the terminal back as it was.
            self._live = Live(console=Console(highlight=False), auto_refresh=False, screen=True)

    def __enter__(self) -> _Screen:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.stop()

    def show(self, report: StatusReport, recent: list[UploadInfo] | None) -> bool:
        """Show one snapshot; False once no one reads any more."""
        import msgspec

        if self._live is not None:
            self._live.update(_live_view(report, recent), refresh=True)
            return True
        if self._json:
            text = msgspec.json.encode(report).decode() + "\n"
        else:
            text = f"status at {_clock()}\n{_render_plain(report)}{_recent_plain(recent)}\n"
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader went away (| head): a quiet end, as for any filter
            # What is still buffered goes nowhere, rather than into a second error at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return False
        return True


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _recent_plain(recent: list[UploadInfo] | None) -> str:
    if not recent:
        return ""
    from fap.cli.listing import shown

    lines = ["recent jobs:"]
    for upload in recent:
        reason = f": {shown(upload.error)}" if upload.error else ""
        lines.append(f"  {shown(upload.name)}: {upload.state.value}{reason}")
    return "\n".join(lines) + "\n"


def _live_view(report: StatusReport, recent: list[UploadInfo] | None) -> RenderableType:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from fap.cli.listing import shown, when

    parts: list[RenderableType] = [_rich_view(report)]
    if recent:
        table = Table(title="Recent jobs", title_justify="left")
        for column in ("file", "engine", "state", "created", "reason"):
            table.add_column(column, overflow="fold")
        for upload in recent:
            # Names and reasons are the user's text: shown as written, never read as markup.
            table.add_row(
                Text(shown(upload.name)),
                Text(upload.engine),
                Text(upload.state.value),
                when(upload.created_at),
                Text(shown(upload.error)),
            )
        parts.append(table)
    parts.append(Text(f"refreshed {_clock()}; Ctrl-C quits", style="dim"))
    return Group(*parts)
