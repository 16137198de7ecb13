"""``fap status``: workers online, the engine versions served and the jobs waiting for each, jobs
by state, queue depth."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from fap.cli.common import JsonOption, OrgOption, RetryForOption, ServerOption, TokenOption, run
from fap.cli.upload import warn

if TYPE_CHECKING:
    from fap.api import EngineStatus, StatusReport

__all__ = ("status",)


def status(
    server: ServerOption = None,
    org: OrgOption = None,
    json_output: JsonOption = False,
    retry_for: RetryForOption = 30.0,
    token: TokenOption = None,
) -> None:
    """Show the workers online, the engine versions they serve with the jobs waiting for each,
    jobs by state and the queue depth.

    --json prints the server's StatusReport: per engine NAME@VERSION, the processors serving it
    and the jobs waiting for it (``engines``), and the engine uploads use (``default_engine``).
    """
    import msgspec

    report = run(_status(server=server, org=org, token=token, retry_for=retry_for))
    if json_output:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    elif sys.stdout.isatty():
        _render_rich(report)
    else:
        sys.stdout.write(_render_plain(report))


async def _status(
    *, server: str | None, org: str | None, token: str | None, retry_for: float
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
    from rich.table import Table

    console = Console(highlight=False)
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
    console.print(workers)
    if report.engines:
        console.print(engines)
    console.print(jobs)
    console.print(f"Queue depth: {report.queue_depth}")
