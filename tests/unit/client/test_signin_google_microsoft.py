"""Google's and Microsoft's ways in, against the tests' real OpenID Connect provider signed in to
as if it were theirs: google-auth-oauthlib's loopback flow (a browser at hand) and the device flow
(none), and msal's device flow and refresh, over https with the test CA."""

from __future__ import annotations

from collections.abc import Callable

import jwt
import pytest
from tests.support.oidc_provider import OidcClient, OidcProvider
from tests.unit.client.signin_support import Person

from fap.client.signin import ProviderChoice, ProviderGrant, renewed_tokens, sign_in_tokens
from fap.client.signin.microsoft import authority_of
from fap.errors import AuthError

CLIENT = "fap-cli"
StartProvider = Callable[..., OidcProvider]


def subject(id_token: str) -> object:
    return jwt.decode(id_token, options={"verify_signature": False})["sub"]


@pytest.fixture
def https_provider(oidc_provider: StartProvider, monkeypatch: pytest.MonkeyPatch) -> OidcProvider:
    """Over https with a path, as msal's oidc_authority needs; a loopback redirect registered as
    google-auth-oauthlib sends it (http://127.0.0.1:PORT/). requests, which msal and
    google-auth-oauthlib speak, trusts REQUESTS_CA_BUNDLE before anything given to it."""
    client = OidcClient(CLIENT, redirect_uris=("http://127.0.0.1/",))
    provider = oidc_provider(https=True, path="/tenant", clients=(client,))
    assert provider.ca_path is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(provider.ca_path))
    return provider


async def test_google_with_a_browser_is_the_loopback_flow(https_provider: OidcProvider) -> None:
    person = Person(https_provider, browser=True, account="bob")
    choice = ProviderChoice(https_provider.issuer, CLIENT, "google")
    tokens = await sign_in_tokens(choice, person, provider_tls=https_provider.verify)
    person.check()
    assert subject(tokens.id_token) == "bob"
    assert tokens.refresh_token  # asked for with consent, to renew the session with
    [opened] = person.opened
    assert opened.startswith(https_provider.discovery["authorization_endpoint"] + "?")
    assert "code_challenge=" in opened and "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in opened
    assert person.codes == []  # no device code: the browser came back with the code itself
    grant = ProviderGrant("google", choice.issuer, CLIENT, tokens.refresh_token)
    renewed = await renewed_tokens(grant, provider_tls=https_provider.verify)
    assert subject(renewed.id_token) == "bob"


async def test_google_without_a_browser_is_the_device_flow(oidc_provider: StartProvider) -> None:
    provider = oidc_provider()
    person = Person(provider)
    tokens = await sign_in_tokens(ProviderChoice(provider.issuer, CLIENT, "google"), person)
    person.check()
    assert subject(tokens.id_token) == "alice"
    assert len(person.codes) == 1


async def test_microsoft_is_msals_device_flow_and_its_refresh(https_provider: OidcProvider) -> None:
    person = Person(https_provider, account="bob")
    choice = ProviderChoice(https_provider.issuer, CLIENT, "microsoft")
    tokens = await sign_in_tokens(choice, person)
    person.check()
    assert subject(tokens.id_token) == "bob"
    [code] = person.codes
    assert code.verification_uri == f"{https_provider.issuer}/device"
    assert tokens.refresh_token
    grant = ProviderGrant("microsoft", choice.issuer, CLIENT, tokens.refresh_token)
    renewed = await renewed_tokens(grant)
    assert subject(renewed.id_token) == "bob"
    assert renewed.refresh_token not in (None, tokens.refresh_token)  # rotated


async def test_microsoft_denied_is_one_clear_sentence(https_provider: OidcProvider) -> None:
    choice = ProviderChoice(https_provider.issuer, CLIENT, "microsoft")
    with pytest.raises(AuthError, match=r"^The sign-in was denied at "):
        await sign_in_tokens(choice, Person(https_provider, action="deny"))


def test_a_microsoft_issuer_is_msals_authority_and_any_other_its_oidc_authority() -> None:
    assert authority_of("https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0") == {
        "authority": "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    }
    assert authority_of("https://contoso.ciamlogin.com/tenant-id/v2.0") == {
        "oidc_authority": "https://contoso.ciamlogin.com/tenant-id/v2.0"
    }
