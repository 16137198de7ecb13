"""``fap results list`` and ``fap results get UPLOAD_ID``: the caller's uploads and their results."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from fap.cli.common import JsonOption, OrgOption, RetryForOption, ServerOption, TokenOption, run
from fap.cli.upload import warn

if TYPE_CHECKING:
    from fap.api import UploadInfo

__all__ = ("app",)

app = typer.Typer(
    name="results",
    help="Your uploads and their results.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command("list")
def list_(
    server: ServerOption = None,
    org: OrgOption = None,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, help="How many uploads to show.")
    ] = 100,
    json_output: JsonOption = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """List your uploads, newest first: id, name, state, engine, time."""
    uploads = run(_list(server=server, org=org, token=token, retry_for=retry_for, limit=limit))
    if json_output:
        import msgspec

        for upload in uploads:
            sys.stdout.write(msgspec.json.encode(upload).decode() + "\n")
    elif sys.stdout.isatty():
        _render_rich(uploads)
    else:
        for upload in uploads:
            sys.stdout.write(
                "\t".join(
                    (upload.id, upload.name, upload.state, upload.engine, _when(upload.created_at))
                )
                + "\n"
            )


@app.command("get")
def get(
    upload_id: Annotated[
        str, typer.Argument(help="The upload's id.", show_default=False, metavar="UPLOAD_ID")
    ],
    server: ServerOption = None,
    org: OrgOption = None,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Write the sealed (age) result to stdout, not the JSON."),
    ] = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """Download one upload's result and print the decrypted JSON (--raw: the age ciphertext)."""
    data = run(_get(upload_id, server=server, org=org, token=token, retry_for=retry_for, raw=raw))
    # --raw: the age ciphertext; else the decrypted JSON exactly as the engine wrote it.
    sys.stdout.buffer.write(data if raw or data.endswith(b"\n") else data + b"\n")
    sys.stdout.buffer.flush()


async def _list(
    *, server: str | None, org: str | None, token: str | None, retry_for: float | None, limit: int
) -> list[UploadInfo]:
    from fap.client import connect, list_uploads, load_settings

    settings = load_settings(server=server, org=org, token=token, retry_for=retry_for, warn=warn)
    async with connect(settings, warn=warn) as session:
        return await list_uploads(session, limit=limit)


async def _get(
    upload_id: str,
    *,
    server: str | None,
    org: str | None,
    token: str | None,
    retry_for: float | None,
    raw: bool,
) -> bytes:
    from fap.client import download_sealed, load_settings, open_runtime
    from fap.crypto import open_sealed

    settings = load_settings(server=server, org=org, token=token, retry_for=retry_for, warn=warn)
    async with open_runtime(settings, warn=warn) as runtime:
        sealed = await download_sealed(runtime.session, runtime.blobs, upload_id)
        if raw:
            return sealed
        return open_sealed(sealed, await runtime.identity())


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _render_rich(uploads: list[UploadInfo]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from fap.api import JobState

    table = Table(title=f"{len(uploads)} uploads", title_justify="left")
    table.add_column("id", no_wrap=True)  # whole: it is what `fap results get` takes
    table.add_column("name", overflow="fold")
    for column in ("state", "engine", "created"):
        table.add_column(column, no_wrap=True)
    styles = {JobState.DONE: "green", JobState.FAILED: "red"}
    for upload in uploads:
        # Text, not str: a str cell is read as markup, and a name like "[red]x" would change it.
        table.add_row(
            Text(upload.id),
            Text(upload.name),
            Text(upload.state, style=styles.get(upload.state, "")),
            Text(upload.engine),
            _when(upload.created_at),
        )
    Console(highlight=False).print(table)
