"""Which identity provider ``fap login`` signs in with: the server's list, ``--issuer``,
``--client-id`` and ``--provider``; the https rule; when a browser may open."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from fap.api import Provider
from fap.client import browser_available
from fap.client.signin import ProviderChoice, choose_provider
from fap.errors import AuthError, ConfigError

SERVER = "http://fap.test"
OKTA = Provider(issuer="https://acme.okta.com", client_id="okta-cli", kind="oidc")
GOOGLE = Provider(issuer="https://accounts.google.com", client_id="g.apps", kind="google")
ENTRA = Provider(
    issuer="https://login.microsoftonline.com/tenant-id/v2.0", client_id="ms-app", kind="microsoft"
)


def test_a_server_trusting_no_provider_says_so_before_anything_opens() -> None:
    with pytest.raises(AuthError, match=r"^The server at http://fap.test trusts no identity"):
        choose_provider([], server=SERVER)
    with pytest.raises(AuthError, match="trusts no identity provider"):
        choose_provider([], server=SERVER, issuer=OKTA.issuer)


def test_the_only_provider_is_the_one() -> None:
    assert choose_provider([ENTRA], server=SERVER) == ProviderChoice(
        ENTRA.issuer, "ms-app", "microsoft"
    )


def test_several_providers_off_a_terminal_are_an_error_that_lists_them() -> None:
    with pytest.raises(ConfigError) as refused:
        choose_provider([OKTA, GOOGLE], server=SERVER)
    message = str(refused.value)
    assert OKTA.issuer in message and GOOGLE.issuer in message
    assert message.endswith("choose one with --issuer URL.")


def test_several_providers_on_a_terminal_are_a_question() -> None:
    asked: list[Sequence[Provider]] = []

    def ask(providers: Sequence[Provider]) -> Provider:
        asked.append(providers)
        return providers[1]

    chosen = choose_provider([OKTA, GOOGLE], server=SERVER, ask=ask)
    assert chosen == ProviderChoice(GOOGLE.issuer, "g.apps", "google")
    assert asked == [[OKTA, GOOGLE]]


def test_the_issuer_given_chooses_and_a_trailing_slash_does_not_matter() -> None:
    chosen = choose_provider([OKTA, GOOGLE], server=SERVER, issuer="https://acme.okta.com/")
    assert chosen == ProviderChoice(OKTA.issuer, "okta-cli", "oidc")


def test_an_issuer_the_server_does_not_trust_is_refused_in_one_sentence() -> None:
    with pytest.raises(ConfigError) as refused:
        choose_provider([OKTA], server=SERVER, issuer="https://other.example")
    assert str(refused.value) == (
        "The server at http://fap.test does not trust the identity provider "
        "https://other.example; it trusts https://acme.okta.com."
    )


def test_the_client_id_and_the_kind_given_override_the_servers() -> None:
    chosen = choose_provider(
        [OKTA], server=SERVER, client_id=" my-own-app ", kind="microsoft", issuer=OKTA.issuer
    )
    assert chosen == ProviderChoice(OKTA.issuer, "my-own-app", "microsoft")


def test_a_kind_this_client_does_not_know_is_read_from_the_issuer() -> None:
    listed = Provider(issuer=GOOGLE.issuer, client_id="g", kind="carrier-pigeon")
    assert choose_provider([listed], server=SERVER).kind == "google"
    listed = Provider(issuer=OKTA.issuer, client_id="o", kind="carrier-pigeon")
    assert choose_provider([listed], server=SERVER).kind == "oidc"


@pytest.mark.parametrize(
    "issuer", ["http://idp.example", "http://localhost:8080", "http://10.0.0.1/realms/x"]
)
def test_an_issuer_must_use_https_off_loopback(issuer: str) -> None:
    with pytest.raises(ConfigError, match="must use https"):
        choose_provider([OKTA], server=SERVER, issuer=issuer)
    # Nor may a server send anyone there: its list is checked too.
    listed = Provider(issuer=issuer, client_id="x", kind="oidc")
    with pytest.raises(ConfigError, match="must use https"):
        choose_provider([listed], server=SERVER)


def test_plain_http_on_a_loopback_ip_is_for_development() -> None:
    listed = Provider(issuer="http://127.0.0.1:9000", client_id="x", kind="oidc")
    assert choose_provider([listed], server=SERVER).issuer == "http://127.0.0.1:9000"


DESKTOP = {"DISPLAY": ":0"}


@pytest.mark.parametrize(
    ("environ", "terminal", "platform", "expected"),
    [
        (DESKTOP, True, "linux", True),
        ({"WAYLAND_DISPLAY": "wayland-0"}, True, "linux", True),
        ({}, True, "linux", False),  # over SSH: no display
        (DESKTOP, False, "linux", False),  # no terminal: a script
        ({**DESKTOP, "CI": "true"}, True, "linux", False),
        ({**DESKTOP, "CI": "1"}, True, "linux", False),
        ({**DESKTOP, "CI": "false"}, True, "linux", True),
        ({}, True, "darwin", True),
        ({}, True, "win32", True),
        ({"CI": "true"}, True, "darwin", False),
    ],
)
def test_a_browser_opens_for_a_person_at_a_terminal_with_a_display_and_never_in_ci(
    environ: dict[str, str], terminal: bool, platform: str, expected: bool
) -> None:
    assert browser_available(environ, terminal=terminal, platform=platform) is expected
