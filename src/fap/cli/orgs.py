"""``fap org``: your organisations — create, list, show, delete —, who may join one by signing in,
and the engine version its uploads use (``fap org engine show``, ``fap org engine set``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from fap.cli.common import (
    JsonOption,
    OrgOption,
    RetryForOption,
    ServerOption,
    TokenOption,
    die,
    err_console,
)
from fap.cli.listing import say, shown, when, write_fields, write_json, write_rows
from fap.cli.remote import Remote, call, call_in_org
from fap.cli.upload import check_engine, warn
from fap.errors import EXIT_FAILURE, InputError

if TYPE_CHECKING:
    from fap.api import ApiSession, EngineStatus, OrgAccessInfo, OrgInfo, Role, StatusReport

__all__ = ("app",)

app = typer.Typer(
    name="org",
    help="Your organisations, and who may join one by signing in.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

engine_app = typer.Typer(
    name="engine",
    help="The engine version (NAME@VERSION) the organisation's uploads use when they name none.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(engine_app, name="engine")

NameArgument = Annotated[
    str, typer.Argument(metavar="NAME", help="The organisation's name.", show_default=False)
]


@app.command("create")
def create(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME",
            help="Its name: lower-case letters, digits and dashes.",
            show_default=False,
        ),
    ],
    server: ServerOption = None,
    json_output: JsonOption = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """Create an organisation; you become its owner (needs a signed-in user, not an API token)."""
    from fap.client import create_org

    org = call(Remote(server, token, retry_for), lambda session: create_org(session, name))
    if json_output:
        write_json([org])
    else:
        say(f"Created organisation {shown(org.name)}; you are its owner.")


@app.command("list")
def list_(
    server: ServerOption = None,
    json_output: JsonOption = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """List your organisations: name, your role, plan, default engine, created."""
    from fap.client import list_orgs

    orgs = call(Remote(server, token, retry_for), list_orgs)
    if json_output:
        write_json(orgs)
        return
    rows = [(o.name, o.role, o.plan or "", o.default_engine, when(o.created_at)) for o in orgs]
    write_rows(f"{len(orgs)} organisations", ("name", "role", "plan", "engine", "created"), rows)


@app.command("show")
def show(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="[NAME]",
            help="The organisation (default: --org, else your only one).",
            show_default=False,
        ),
    ] = None,
    server: ServerOption = None,
    org: OrgOption = None,
    json_output: JsonOption = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """Show an organisation: your role in it, its plan, limits and default engine."""
    from fap.client import get_org

    info = call_in_org(Remote(server, token, retry_for, name or org), get_org)
    if json_output:
        write_json([info])
    else:
        write_fields(f"Organisation {info.name}", _fields(info))


@app.command("delete")
def delete(
    name: NameArgument,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Delete without asking (needed off a terminal).")
    ] = False,
    server: ServerOption = None,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """Delete an organisation (owners only): its members lose it, its tokens stop working."""
    from fap.client import delete_org

    if not yes:
        if not sys.stdin.isatty():
            die(InputError(f"Deleting {name!r} cannot be undone: confirm it with --yes."))
        question = (
            f"Delete organisation {shown(name)}? Its members lose it and its tokens stop "
            "working; this cannot be undone."
        )
        if not typer.confirm(question, default=False):
            err_console.print("Nothing was deleted.", markup=False)
            raise typer.Exit(EXIT_FAILURE)
    call(Remote(server, token, retry_for), lambda session: delete_org(session, name))
    say(f"Deleted organisation {shown(name)}.")


@app.command("access")
def access(
    issuers: Annotated[
        list[str] | None,
        typer.Option(
            "--issuer",
            metavar="URL",
            help="An identity provider whose users may join (repeat for several; none: any the "
            "server trusts).",
            show_default=False,
        ),
    ] = None,
    domains: Annotated[
        list[str] | None,
        typer.Option(
            "--domain",
            metavar="DOMAIN=ROLE",
            help="Whoever signs in with a verified email of DOMAIN joins with ROLE (repeat for "
            "several).",
            show_default=False,
        ),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Let nobody join by signing in: invitations only.")
    ] = False,
    server: ServerOption = None,
    org: OrgOption = None,
    json_output: JsonOption = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """Show who may join by signing in, or replace it (--issuer, --domain) or clear it (--clear).

    The flags given replace the whole setting: --domain alone trusts every issuer again.
    """
    from fap.api import OrgAccessInfo
    from fap.client import get_org_access, set_org_access

    if clear and (issuers or domains):
        die(InputError("--clear replaces everything with nothing; give it alone."))
    remote = Remote(server, token, retry_for, org)
    if clear or issuers or domains:
        wanted = OrgAccessInfo(issuers=list(issuers or []), domains=_domains(domains or []))

        async def change(session: ApiSession, name: str) -> OrgAccessInfo:
            return await set_org_access(session, name, wanted)

        answer = call_in_org(remote, change)
    else:
        answer = call_in_org(remote, get_org_access)
    if json_output:
        write_json([answer])
    else:
        _render_access(answer)


@engine_app.command("show")
def engine_show(
    server: ServerOption = None,
    org: OrgOption = None,
    json_output: JsonOption = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """Show the engine the organisation's uploads use, and every version processors serve."""
    from fap.client import fetch_status, get_org

    async def read(session: ApiSession, name: str) -> tuple[OrgInfo, StatusReport]:
        return await get_org(session, name), await fetch_status(session)

    info, report = call_in_org(Remote(server, token, retry_for, org), read)
    if json_output:
        write_json([_engine_json(info, report)])
        return
    write_fields(f"Engines of {info.name}", _engine_fields(info, report))


@engine_app.command("set")
def engine_set(
    engine: Annotated[
        str,
        typer.Argument(
            metavar="NAME@VERSION",
            help="The engine version uploads use from now on, as processors report it (size@2).",
            callback=check_engine,
            show_default=False,
        ),
    ],
    server: ServerOption = None,
    org: OrgOption = None,
    json_output: JsonOption = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """Pin the engine version of the organisation's uploads (admins): uploads that name none use
    it from now on, those made before keep theirs, and fap upload --engine still picks another.
    """
    from fap.client import fetch_status, get_org, set_org_engine

    async def change(session: ApiSession, name: str) -> tuple[str, OrgInfo, StatusReport]:
        before = await get_org(session, name)
        after = await set_org_engine(session, name, engine)
        return before.default_engine, after, await fetch_status(session)

    was, info, report = call_in_org(Remote(server, token, retry_for, org), change)
    if not _serving(report, info.default_engine):
        warn(
            f"No processor online runs {info.default_engine} now: uploads wait for one "
            f"(fap status lists the versions served)."
        )
    if json_output:
        write_json([info])
    elif was == info.default_engine:
        say(f"Uploads of {shown(info.name)} use {info.default_engine} already.")
    else:
        say(f"Uploads of {shown(info.name)} now use {info.default_engine} (before: {was}).")


def _serving(report: StatusReport, engine: str) -> list[str]:
    """The processors online that run ``engine``."""
    return next((e.processors for e in report.engines if e.engine == engine), [])


def _engine_json(info: OrgInfo, report: StatusReport) -> dict[str, object]:
    import msgspec

    return {
        "org": info.name,
        "engine": info.default_engine,
        "engines": msgspec.to_builtins(report.engines),
    }


def _engine_fields(info: OrgInfo, report: StatusReport) -> list[tuple[str, str]]:
    def line(status: EngineStatus) -> str:
        count = len(status.processors)
        return (
            f"{count} processor{'' if count == 1 else 's'} online, {status.waiting} jobs "
            f"waiting, {status.running} running"
        )

    pinned = next((e for e in report.engines if e.engine == info.default_engine), None)
    fields = [("uploads use", info.default_engine)]
    fields.append((info.default_engine, line(pinned) if pinned else "no processor online"))
    fields += [(e.engine, line(e)) for e in report.engines if e.engine != info.default_engine]
    return fields


def _domains(values: list[str]) -> dict[str, Role]:
    from fap.client import role_arg

    found: dict[str, Role] = {}
    for value in values:
        domain, equals, role = value.partition("=")
        if not equals or not domain.strip() or not role.strip():
            die(
                InputError(
                    f"--domain takes DOMAIN=ROLE, such as example.com=member; not {value!r}."
                )
            )
        try:
            found[domain.strip().lower()] = role_arg(role)
        except InputError as error:
            die(error)
    return found


def _render_access(info: OrgAccessInfo) -> None:
    if not sys.stdout.isatty():
        # One fact a line, tab-separated: "issuer URL", "domain DOMAIN ROLE".
        for issuer in info.issuers:
            sys.stdout.write(f"issuer\t{shown(issuer)}\n")
        for domain, role in sorted(info.domains.items()):
            sys.stdout.write(f"domain\t{shown(domain)}\t{role}\n")
        return
    trusted = ", ".join(info.issuers) if info.issuers else "any the server trusts"
    fields = [("issuers", trusted)]
    if info.domains:
        fields += [(f"@{domain}", role) for domain, role in sorted(info.domains.items())]
    else:
        fields.append(("domains", "none: people join by invitation only"))
    write_fields("Who may join by signing in", fields)


def _fields(info: OrgInfo) -> list[tuple[str, str]]:
    def limit(value: int | None, show: str) -> str:
        return "unlimited" if value is None else show

    return [
        ("name", info.name),
        ("your role", info.role),
        ("plan", info.plan or ""),
        ("default engine", info.default_engine),
        ("max file size", _size(info.max_file_size)),
        ("bytes per month", limit(info.max_bytes_per_month, _size(info.max_bytes_per_month or 0))),
        (
            "concurrent uploads",
            limit(info.max_concurrent_uploads, str(info.max_concurrent_uploads)),
        ),
        ("created", when(info.created_at)),
    ]


def _size(count: int) -> str:
    """Bytes in the largest binary unit that keeps them at 1 or more: ``"5 GiB"``, ``"1.5 TiB"``."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{count} B" if unit == "B" else f"{size:.4g} {unit}"
        size /= 1024
    return f"{size:.4g} TiB"
