"""``fap login``, ``fap logout``, ``fap whoami``: signing in with an identity provider, signing
out, and who the commands act as.

The sign-in prints where to go and the code to enter on stderr; with ``--json`` it first prints
them as one JSON line on stdout, at once, so a script can hand them on, and ends with the user
signed in as a second line. No token is ever printed.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from fap.cli.common import (
    JsonOption,
    RetryForOption,
    ServerOption,
    TokenOption,
    VerboseOption,
    err_console,
    run,
    setup_logging,
)
from fap.cli.upload import warn

if TYPE_CHECKING:
    from fap.api import Me, Membership, Provider
    from fap.client import DeviceCode, SignedIn, SignOutOutcome

__all__ = ("login", "logout", "whoami")


class ProviderName(enum.StrEnum):
    microsoft = "microsoft"
    google = "google"
    oidc = "oidc"


ProviderOption = Annotated[
    ProviderName | None,
    typer.Option(
        "--provider",
        metavar="PROVIDER",
        envvar="FAP_PROVIDER",
        help="How to sign in: microsoft (msal), google, or oidc (any OpenID Connect provider) "
        "(default: from the issuer).",
        show_default=False,
        case_sensitive=False,
    ),
]
IssuerOption = Annotated[
    str | None,
    typer.Option(
        "--issuer",
        metavar="URL",
        envvar="FAP_ISSUER",
        help="The identity provider to sign in with, among those the server trusts (default: "
        "the server's only one, or a choice on a terminal).",
        show_default=False,
    ),
]
ClientIdOption = Annotated[
    str | None,
    typer.Option(
        "--client-id",
        metavar="ID",
        envvar="FAP_CLIENT_ID",
        help="The client id fap is registered under at the provider (default: the server's).",
        show_default=False,
    ),
]
ClientSecretOption = Annotated[
    str | None,
    typer.Option(
        "--client-secret",
        metavar="SECRET",
        envvar="FAP_CLIENT_SECRET",
        help="The client secret of a Google desktop client (Google's own word: not a secret).",
        show_default=False,
        hidden=True,
    ),
]
LoginJsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="JSON lines on stdout: the code to enter, then the user signed in. No browser "
        "opens: a script drives the sign-in.",
    ),
]


def login(
    server: ServerOption = None,
    provider: ProviderOption = None,
    issuer: IssuerOption = None,
    client_id: ClientIdOption = None,
    json_output: LoginJsonOption = False,
    retry_for: RetryForOption = None,
    client_secret: ClientSecretOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Sign in to a fap server with your identity provider (OAuth device flow).

    Shows a code to enter at the provider's page (and opens a browser where there is one), then
    keeps the session in the OS keyring, renewed silently, for later commands.
    """
    import msgspec

    from fap.client import load_settings, sign_in

    setup_logging(verbose, client=True)
    prompt = _Prompt(json_output)

    async def signing_in() -> SignedIn:
        settings = load_settings(server=server, retry_for=retry_for, warn=warn)
        return await sign_in(
            settings,
            prompt,
            issuer=issuer,
            client_id=client_id,
            kind=None if provider is None else provider.value,
            client_secret=client_secret,
            warn=warn,
        )

    signed_in = run(signing_in())
    if json_output:
        line = {
            "user_id": signed_in.user_id,
            "email": signed_in.email,
            "orgs": signed_in.orgs,
            "joined": signed_in.joined,
        }
        sys.stdout.write(msgspec.json.encode(line).decode() + "\n")
        return
    who = signed_in.email or signed_in.user_id
    err_console.print(f"Signed in to {escape(signed_in.server)} as {escape(who)}.")
    if signed_in.joined:
        err_console.print(f"Joined {escape(_memberships(signed_in.joined))}.")
    if signed_in.orgs:
        err_console.print(f"Member of {escape(_memberships(signed_in.orgs))}.")
    else:
        err_console.print("You belong to no organisation yet: ask an admin of yours to invite you.")


def logout(
    server: ServerOption = None,
    retry_for: RetryForOption = 10.0,
    verbose: VerboseOption = False,
) -> None:
    """Sign out: end the session on the server and forget it here (even if the server is away)."""
    from fap.client import SignOutOutcome, load_settings, sign_out

    setup_logging(verbose, client=True)

    async def signing_out() -> tuple[str, SignOutOutcome]:
        settings = load_settings(server=server, retry_for=retry_for, warn=warn)
        return settings.server, await sign_out(settings)

    where, outcome = run(signing_out())
    if outcome is SignOutOutcome.UNREACHABLE:
        warn(
            f"the server at {where} did not answer, so the session could not be ended there; "
            "it is forgotten here all the same."
        )
    elif outcome is SignOutOutcome.NOT_SIGNED_IN:
        err_console.print(f"You were not signed in to {escape(where)}.")
    elif outcome is SignOutOutcome.ENDED_ALREADY:
        err_console.print(f"Signed out of {escape(where)} (the session had ended there already).")
    else:
        err_console.print(f"Signed out of {escape(where)}.")


def whoami(
    server: ServerOption = None,
    json_output: JsonOption = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Show who the commands act as: your email, organisations and roles."""
    import msgspec

    from fap.client import load_settings, who_am_i

    setup_logging(verbose, client=True)

    async def asking() -> tuple[str, Me]:
        settings = load_settings(server=server, token=token, retry_for=retry_for, warn=warn)
        return settings.server, await who_am_i(settings)

    where, me = run(asking())
    if json_output:
        sys.stdout.write(msgspec.json.encode(me).decode() + "\n")
        return
    how = _HOW.get(me.token_kind, f"by a {me.token_kind} token")
    lines = [f"{me.email or me.name or me.user_id} (user {me.user_id}), {how}, on {where}"]
    lines += [f"  {membership.org}: {membership.role}" for membership in me.orgs]
    if not me.orgs:
        lines.append("  no organisation yet")
    sys.stdout.write("\n".join(lines) + "\n")


_HOW = {"session": "signed in", "user": "by an API token"}  # Me.token_kind, in words


def _memberships(memberships: Sequence[Membership]) -> str:
    return ", ".join(f"{m.org} ({m.role})" for m in memberships)


class _Prompt:
    """The terminal's side of a sign-in: the code on stderr (and stdout with --json), a browser
    where one can open, a question where someone can answer."""

    def __init__(self, json_output: bool) -> None:
        import os

        from fap.client import browser_available

        terminal = sys.stdin.isatty() and sys.stderr.isatty()
        self._json = json_output
        self.interactive = terminal
        self.browser = not json_output and browser_available(
            os.environ, terminal=terminal, platform=sys.platform
        )

    def show_code(self, code: DeviceCode) -> None:
        if self._json:
            import msgspec

            line = {
                "verification_uri": code.verification_uri,
                "verification_uri_complete": code.verification_uri_complete,
                "user_code": code.user_code,
                "expires_in": code.expires_in,
            }
            sys.stdout.write(msgspec.json.encode(line).decode() + "\n")
            sys.stdout.flush()  # a script waits for this line while the sign-in goes on
        err_console.print(
            f"To sign in, open {escape(code.verification_uri)} and enter the code "
            f"[bold]{escape(code.user_code)}[/]",
            markup=True,
        )
        if code.verification_uri_complete:
            err_console.print(f"(or open {escape(code.verification_uri_complete)})")
        err_console.print(f"The code expires in {_duration(code.expires_in)}; waiting…")

    def open_browser(self, url: str) -> None:
        import threading
        import webbrowser

        err_console.print(f"Opening {escape(url)} in your browser…")
        # A browser may take its time to start: the sign-in goes on meanwhile.
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    def choose(self, providers: Sequence[Provider]) -> Provider:
        from fap.errors import ConfigError

        err_console.print("The server trusts several identity providers:")
        for number, provider in enumerate(providers, start=1):
            err_console.print(f"  {number}. {escape(provider.issuer)} ({escape(provider.kind)})")
        while True:
            try:
                answer = err_console.input(f"Sign in with which (1-{len(providers)})? ").strip()
            except EOFError:
                raise ConfigError("No provider was chosen; choose one with --issuer URL.") from None
            if answer.isdigit() and 1 <= int(answer) <= len(providers):
                return providers[int(answer) - 1]
            err_console.print(f"Type a number from 1 to {len(providers)}.")


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} seconds"
