"""``fap org``: your organisations — create, list, show, delete — and who may join one by signing in."""

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
from fap.errors import EXIT_FAILURE, InputError

if TYPE_CHECKING:
    from fap.api import ApiSession, OrgAccessInfo, OrgInfo, Role

__all__ = ("app",)

app = typer.Typer(
    name="org",
    help="Your organisations, and who may join one by signing in.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

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
    retry_for: RetryForOption = 30.0,
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
    retry_for: RetryForOption = 30.0,
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
    retry_for: RetryForOption = 30.0,
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
    retry_for: RetryForOption = 30.0,
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
    retry_for: RetryForOption = 30.0,
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
