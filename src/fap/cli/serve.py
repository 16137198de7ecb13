"""``fap serve``: the server — organisations, tokens, presigned URLs, the job queue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fap.cli.common import QuietOption, VerboseOption, die, run, setup_logging

__all__ = ("serve",)


def serve(
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            metavar="HOST",
            envvar="FAP_HOST",
            help="The address to listen on (default: 127.0.0.1).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            metavar="PORT",
            envvar="FAP_PORT",
            min=1,
            max=65535,
            help="The port to listen on (default: 8700).",
            show_default=False,
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            envvar="FAP_DATA_DIR",
            help="Where the database, the blobs and the local tokens live (default: ./fap-data).",
            show_default=False,
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            metavar="URL",
            envvar="FAP_PUBLIC_URL",
            help="The URL clients and workers reach this server at, for presigned blob URLs "
            "(default: http://HOST:PORT).",
            show_default=False,
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            envvar="FAP_DB",
            help="The state store: sqlite:///PATH or postgresql+asyncpg://USER@HOST/DB "
            "(default: SQLite in the data dir).",
            show_default=False,
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            metavar="URL",
            envvar="FAP_STORAGE",
            help="The object store: file:///PATH or s3://BUCKET[/PREFIX]?endpoint=URL&region=R, "
            "credentials from the standard AWS chain (default: blobs/ in the data dir).",
            show_default=False,
        ),
    ] = None,
    secrets: Annotated[
        str | None,
        typer.Option(
            "--secrets",
            metavar="URL",
            envvar="FAP_SECRETS",
            help="Also read server secrets from aws-sm://SECRET_ID[?region=R] "
            "(AWS Secrets Manager).",
            show_default=False,
        ),
    ] = None,
    lease_seconds: Annotated[
        float | None,
        typer.Option(
            "--lease-seconds",
            metavar="SECONDS",
            envvar="FAP_LEASE_SECONDS",
            min=0.1,
            help="How long a lease lasts without a heartbeat (default: 30).",
            show_default=False,
        ),
    ] = None,
    heartbeat_seconds: Annotated[
        float | None,
        typer.Option(
            "--heartbeat-seconds",
            metavar="SECONDS",
            envvar="FAP_HEARTBEAT_SECONDS",
            min=0.05,
            help="How often workers are told to heartbeat (default: 10).",
            show_default=False,
        ),
    ] = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(
            "--max-attempts",
            metavar="N",
            envvar="FAP_MAX_ATTEMPTS",
            min=1,
            help="Leases a job gets before it fails for good (default: 3).",
            show_default=False,
        ),
    ] = None,
    cleanup_every: Annotated[
        str | None,
        typer.Option(
            "--cleanup-every",
            metavar="DURATION",
            envvar="FAP_CLEANUP_EVERY",
            help="How often the clean-up runs: 90s, 15m, 1h… (default: 5m; 0 turns it off).",
            show_default=False,
        ),
    ] = None,
    abandon_after: Annotated[
        str | None,
        typer.Option(
            "--abandon-after",
            metavar="DURATION",
            envvar="FAP_ABANDON_AFTER",
            help="Fail an unfinished upload once no chunk came for this long: 12h, 3d… "
            "(default: 24h; 0 never).",
            show_default=False,
        ),
    ] = None,
    keep_results: Annotated[
        str | None,
        typer.Option(
            "--keep-results",
            metavar="DURATION",
            envvar="FAP_KEEP_RESULTS",
            help="Delete sealed results this long after the analysis: 7d, 90d… "
            "(default: 30d; 0 keeps them).",
            show_default=False,
        ),
    ] = None,
    oidc: Annotated[
        list[str] | None,
        typer.Option(
            "--oidc",
            metavar="ISSUER=CLIENT_ID",
            envvar="FAP_OIDC",
            help="Trust this identity provider for signing in (repeatable; FAP_OIDC holds the "
            "same, comma-separated). The kind (Microsoft, Google, any OIDC) comes from the issuer.",
            show_default=False,
        ),
    ] = None,
    client_latest: Annotated[
        str | None,
        typer.Option(
            "--client-latest",
            metavar="X.Y.Z",
            envvar="FAP_CLIENT_LATEST",
            help="The newest fap release, which older clients are told of once a day "
            "(default: this server's own version).",
            show_default=False,
        ),
    ] = None,
    verbose: VerboseOption = False,
    quiet: QuietOption = False,
) -> None:
    """Run the fap server.

    The first start creates organisation "local" and writes its owner's and a processor's tokens
    to DATA_DIR/local-owner.token and DATA_DIR/local-processor.token. SIGTERM or Ctrl-C stops it.
    """
    from fap.config import ServerSettings, build
    from fap.errors import EXIT_INTERRUPTED, ConfigError, FapError
    from fap.server import serve as serve_forever

    setup_logging(verbose, quiet)
    try:
        settings = build(
            ServerSettings,
            host=host,
            port=port,
            data_dir=data_dir,
            public_url=public_url,
            db=db,
            storage=storage,
            secrets=secrets,
            lease_seconds=lease_seconds,
            heartbeat_seconds=heartbeat_seconds,
            max_attempts=max_attempts,
            cleanup_seconds=_duration(cleanup_every, "--cleanup-every"),
            abandon_after=_duration(abandon_after, "--abandon-after"),
            keep_results=_duration(keep_results, "--keep-results"),
            oidc=tuple(oidc) if oidc else None,
            client_latest=client_latest,
        )
        settings.trusted_issuers  # noqa: B018 (checked now: a bad --oidc is one sentence)
    except FapError as error:
        die(error)
    if settings.heartbeat_seconds >= settings.lease_seconds:
        die(
            ConfigError(
                f"--heartbeat-seconds ({settings.heartbeat_seconds:g}) must be shorter than "
                f"--lease-seconds ({settings.lease_seconds:g}), or every lease would lapse."
            )
        )
    if run(serve_forever(settings)):
        raise typer.Exit(EXIT_INTERRUPTED)


def _duration(text: str | None, flag: str) -> float | None:
    from fap.durations import parse_duration

    return None if text is None else parse_duration(text, flag)
