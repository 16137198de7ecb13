"""Live views: what ``fap watch`` and ``fap up`` show on a terminal, and the plain lines elsewhere.

On a terminal (stdout and stderr both) a board on stderr holds a bar per file in flight and a
status line beneath; results and failures are printed above it as they land, with where each
result was written. Anywhere else — a pipe, a file, ``--json`` — the lines are today's plain ones,
never a colour or a cursor movement.

``fap watch --events`` tells a process that supervises it (``fap up``) every step of every file,
one JSON object per line on stdout; the supervisor replays them into its own view (``replay``):

    {"event": "started", "file": F, "size": N}       F is hashed and about to be sent: N bytes
    {"event": "advanced", "file": F, "bytes": N}     N more bytes of F are stored
    {"event": "uploaded", <outcome>}                 every chunk of F is stored; its result is due
    {"event": "finished", "earlier": B, <outcome>}   F is done or failed (B: in an earlier run)
    {"event": "retrying", "message": M}              a passing problem; the work is kept

``<outcome>`` is the fields of a ``fap watch --json`` line (``FileOutcome.as_dict``). A reader
skips a kind it does not know, so a newer watcher may tell more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.text import Text

from fap.cli.common import err_console
from fap.cli.listing import shown
from fap.cli.upload import emit_json, human, progress_columns, warn

if TYPE_CHECKING:
    from rich.live import Live
    from rich.progress import TaskID

    from fap.client import FileOutcome, FolderReporter
    from fap.supervise import LocalPipeline

__all__ = (
    "FileBoard",
    "FolderEvents",
    "FolderLines",
    "FolderLive",
    "UpView",
    "folder_reporter",
    "on_terminal",
    "replay",
    "until_interrupted",
)


log = logging.getLogger(__name__)

# How often ``fap up`` asks its server for the workers online. Every question is a line in the
# server's access log, and workers come and go seldom on one machine.
STATUS_EVERY_SECONDS = 5.0


def on_terminal() -> bool:
    """A live view only where a person reads both streams: a result line must not go to a
    terminal when stdout was sent to a file, nor a bar into a pipe."""
    return err_console.is_terminal and sys.stdout.isatty()


async def until_interrupted(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` until it ends, or until Ctrl-C (or SIGTERM) cancels it: a stop the user asked
    for, so a clean one — every ``with`` in ``work`` unwinds (a live view is put away, the
    terminal left as it was) and the command exits 0, without "interrupted"."""
    import signal

    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    asked = False

    def stop() -> None:
        nonlocal asked
        asked = True
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    try:
        await task
    except asyncio.CancelledError:
        if not asked:
            raise
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


class FileBoard:
    """A bar per file in flight and a status line beneath; lines printed above it as they land.

    Renderable as it is (a test prints it into a console); ``with board:`` shows it live. Files
    are named by the string their reporter uses; ``root`` shortens those under it for the bars.
    """

    def __init__(self, console: Console, *, root: Path | None = None) -> None:
        from rich.progress import Progress

        self.console = console
        self.root = root
        self.headline: str | None = None  # what the whole is doing, first on the status line
        self.workers: int | None = None  # online, when someone asks the server
        # Never started: the board's own Live renders it, beside the status line.
        self._progress = Progress(*progress_columns(), console=console)
        self._tasks: dict[str, TaskID] = {}
        self._done = 0
        self._failed = 0
        self._live: Live | None = None
        self._handlers: list[tuple[logging.StreamHandler[Any], Any]] = []

    def __rich__(self) -> RenderableType:
        return Group(self._progress, self._status())

    def _status(self) -> Text:
        parts = [self.headline] if self.headline else []
        if self.workers is not None:
            parts.append(f"workers online: {self.workers}")
        parts.append(f"{len(self._tasks)} in flight")
        parts.append(f"{self._done} done")
        if self._failed:
            parts.append(f"{self._failed} failed")
        return Text(" · ".join(parts), style="dim")

    def _name(self, file: str) -> str:
        if self.root is not None:
            with contextlib.suppress(ValueError):
                return shown(Path(file).relative_to(self.root).as_posix())
        return shown(file)

    def started(self, file: str, size: int) -> None:
        name = self._name(file)
        if file in self._tasks:  # sent again (it changed, or the server went away): from zero
            self._progress.reset(self._tasks[file], total=size, description=name)
        else:
            self._tasks[file] = self._progress.add_task(name, total=size)

    def advanced(self, file: str, raw_bytes: int) -> None:
        if file in self._tasks:
            self._progress.advance(self._tasks[file], raw_bytes)

    def analysing(self, file: str) -> None:
        if file in self._tasks:
            self._progress.update(self._tasks[file], description=f"{self._name(file)} (analysing)")

    def landed(self, file: str, line: str, *, failed: bool) -> None:
        """``file`` is done or failed: its bar goes, its line is printed above."""
        if (task := self._tasks.pop(file, None)) is not None:
            self._progress.remove_task(task)
        if failed:
            self._failed += 1
        else:
            self._done += 1
        self.say(line, style="red" if failed else "green")

    def say(self, line: str, *, style: str = "") -> None:
        """One line above the board. Text, never markup: it holds file names and messages, whose
        control characters are shown escaped, so that a name cannot repaint the terminal."""
        self.console.print(Text(shown(line), style=style), highlight=False, soft_wrap=True)

    def __enter__(self) -> FileBoard:
        from rich.live import Live

        self._live = Live(self, console=self.console, refresh_per_second=4)
        self._live.start()
        self._log_above()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handler, stream in self._handlers:
            handler.setStream(stream)
        self._handlers.clear()
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _log_above(self) -> None:
        """Log lines (``-v``) are printed above the board too: the handler that wrote to stderr
        writes to the live's stand-in for it, which would otherwise cut through the bars."""
        proxy = sys.stderr
        original = getattr(proxy, "rich_proxied_file", None)
        if original is None:
            return
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is original:
                self._handlers.append((handler, handler.setStream(proxy)))


class FolderLines:
    """Plain lines, as ``fap watch`` always wrote them: a line per file as it finishes (JSON with
    ``json_output``) on stdout, the steps on the way on stderr."""

    def __init__(self, *, json_output: bool) -> None:
        self._json = json_output

    def started(self, file: str, size: int) -> None:
        pass

    def advanced(self, file: str, raw_bytes: int) -> None:
        pass

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
        err_console.print(Text.assemble(("waiting:", "yellow"), f" {message} Retrying."))


class FolderLive:
    """The same steps on a board: a bar per file, its line above once it lands."""

    def __init__(self, board: FileBoard) -> None:
        self.board = board

    def started(self, file: str, size: int) -> None:
        self.board.started(file, size)

    def advanced(self, file: str, raw_bytes: int) -> None:
        self.board.advanced(file, raw_bytes)

    def uploaded(self, outcome: FileOutcome) -> None:
        self.board.analysing(outcome.file)

    def finished(self, outcome: FileOutcome, *, earlier: bool) -> None:
        line = human(outcome) + (" (earlier)" if earlier else "")
        self.board.landed(outcome.file, line, failed=outcome.status != "done")

    def retrying(self, message: str) -> None:
        self.board.say(f"waiting: {message} Retrying.", style="yellow")


class FolderEvents:
    """Every step as a JSON line on stdout (the module's docstring has the format)."""

    def started(self, file: str, size: int) -> None:
        _emit({"event": "started", "file": file, "size": size})

    def advanced(self, file: str, raw_bytes: int) -> None:
        _emit({"event": "advanced", "file": file, "bytes": raw_bytes})

    def uploaded(self, outcome: FileOutcome) -> None:
        _emit({"event": "uploaded", **outcome.as_dict()})

    def finished(self, outcome: FileOutcome, *, earlier: bool) -> None:
        _emit({"event": "finished", "earlier": earlier, **outcome.as_dict()})

    def retrying(self, message: str) -> None:
        _emit({"event": "retrying", "message": message})


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def replay(line: str, reporter: FolderReporter) -> bool:
    """Tell ``reporter`` the step one ``--events`` line holds; False for a line that is none."""
    from fap.client import FileOutcome

    try:
        event = json.loads(line)
        kind = event.pop("event")
        if kind == "started":
            reporter.started(str(event["file"]), int(event["size"]))
        elif kind == "advanced":
            reporter.advanced(str(event["file"]), int(event["bytes"]))
        elif kind == "retrying":
            reporter.retrying(str(event["message"]))
        elif kind in ("uploaded", "finished"):
            earlier = bool(event.pop("earlier", False))
            outcome = FileOutcome(**event)
            if kind == "uploaded":
                reporter.uploaded(outcome)
            else:
                reporter.finished(outcome, earlier=earlier)
    except (ValueError, TypeError, KeyError, AttributeError):
        return False  # not JSON, not an object, or an event without its fields
    return True


@contextlib.contextmanager
def folder_reporter(
    *, json_output: bool, events: bool = False, root: Path | None = None
) -> Iterator[FolderReporter]:
    """How ``fap watch`` reports: events for a supervisor, JSON or plain lines, or a live board."""
    if events:
        yield FolderEvents()
    elif json_output or not on_terminal():
        yield FolderLines(json_output=json_output)
    else:
        with FileBoard(err_console, root=root) as board:
            yield FolderLive(board)


class UpView:
    """``fap up``'s view of its pipeline (a ``fap.supervise.PipelineView``): the watcher's files
    on a board, or in plain lines off a terminal; the workers online; the children's warnings."""

    def __init__(self, *, live: bool) -> None:
        self._board = FileBoard(err_console) if live else None
        self._folder: FolderReporter = (
            FolderLive(self._board) if self._board else FolderLines(json_output=False)
        )
        self._workers: int | None = None

    def __enter__(self) -> UpView:
        if self._board is not None:
            self._board.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._board is not None:
            self._board.__exit__(exc_type, exc, tb)

    def _say(self, line: str, *, style: str = "") -> None:
        if self._board is not None:
            self._board.say(line, style=style)
        else:
            err_console.print(Text(line), soft_wrap=True)

    def starting(self, log_file: Path) -> None:
        if self._board is not None:
            self._board.headline = "starting the server, a worker and the watcher"
        self._say(f"fap up: the server, worker and watcher log to {log_file}", style="dim")

    def up(self, pipeline: LocalPipeline) -> None:
        if self._board is not None:
            self._board.root = pipeline.inbox
            self._board.headline = f"watching {pipeline.inbox}"
        self._say(
            f"fap is up: drop files into {pipeline.inbox}, results appear in {pipeline.results} "
            f"(server {pipeline.url}); Ctrl-C stops"
        )

    def notice(self, child: str, line: str) -> None:
        self._say(f"{child}: {line}", style="red" if line.startswith("error") else "yellow")

    def echo(self, child: str, line: str) -> None:
        self._say(f"{child}: {line}", style="dim")

    def event(self, line: str) -> bool:
        return replay(line, self._folder)

    def workers_online(self, count: int) -> None:
        if count == self._workers:
            return
        self._workers = count
        if self._board is not None:
            self._board.workers = count
        else:
            self._say(f"workers online: {count}")

    async def follow(self, url: str, token: str) -> None:
        from fap.client import connect, fetch_status, load_settings
        from fap.errors import FapError

        settings = load_settings(
            server=url, org=None, token=token, retry_for=STATUS_EVERY_SECONDS, warn=warn
        )
        async with connect(settings, warn=warn) as session:
            while True:
                try:
                    report = await fetch_status(session)
                except FapError as error:  # the count waits for the next answer; files go on
                    log.debug("the server's status is not known: %s", error)
                else:
                    self.workers_online(len(report.workers))
                await asyncio.sleep(STATUS_EVERY_SECONDS)
