"""The device authorization grant (RFC 8628) against a real OpenID Connect provider: approved,
denied, expired, told to slow down; its refresh; a provider that is down or untrusted; discovery
documents that must not be believed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import jwt
import pytest
from tests.support.oidc_provider import Lifetimes, OidcProvider
from tests.unit.client.signin_support import Person

from fap.client import DeviceCode
from fap.client.signin.device_flow import device_tokens
from fap.client.signin.oidc import Endpoints, discover, provider_http, refresh_tokens
from fap.errors import AuthError, ConfigError, ServerUnreachable

CLIENT = "fap-cli"
StartProvider = Callable[..., OidcProvider]


def claims(id_token: str) -> dict[str, object]:
    # The server verifies signatures (its own tests); here: whose token it is.
    decoded: dict[str, object] = jwt.decode(id_token, options={"verify_signature": False})
    return decoded


@pytest.fixture
def provider(oidc_provider: StartProvider) -> OidcProvider:
    return oidc_provider()


async def sign_in(provider: OidcProvider, person: Person) -> tuple[Endpoints, str, str | None]:
    async with provider_http(provider.verify) as http:
        endpoints = await discover(http, provider.issuer)
        tokens = await device_tokens(http, endpoints, CLIENT, person)
    person.check()
    return endpoints, tokens.id_token, tokens.refresh_token


async def test_an_approved_code_gives_the_persons_id_token_and_a_refresh_token(
    provider: OidcProvider,
) -> None:
    person = Person(provider, account="bob")
    _, id_token, refresh_token = await sign_in(provider, person)
    assert (claims(id_token)["sub"], claims(id_token)["aud"]) == ("bob", CLIENT)
    assert refresh_token  # offline_access, which this provider lists, was asked for
    [code] = person.codes
    assert code.verification_uri == f"{provider.issuer}/device"
    assert code.verification_uri_complete and code.user_code in code.verification_uri_complete
    assert code.expires_in == 600
    assert person.opened == []  # no browser here


async def test_the_browser_opens_on_the_page_with_the_code_filled_in(
    provider: OidcProvider,
) -> None:
    person = Person(provider, browser=True)
    await sign_in(provider, person)
    assert person.opened == [person.codes[0].verification_uri_complete]


async def test_a_denied_request_is_one_clear_sentence(provider: OidcProvider) -> None:
    with pytest.raises(AuthError, match=r"^The sign-in was denied at .*; run fap login again"):
        await sign_in(provider, Person(provider, action="deny"))


async def test_a_code_nobody_approves_expires_with_a_clear_sentence(
    oidc_provider: StartProvider,
) -> None:
    provider = oidc_provider(lifetimes=Lifetimes(device_code=2))
    started = time.monotonic()
    with pytest.raises(AuthError, match=r"^The sign-in code expired before it was approved"):
        await sign_in(provider, Person(provider, action="nothing"))
    assert time.monotonic() - started < 30


class _Faster(httpx.AsyncBaseTransport):
    """Tells the client a shorter poll interval than the provider enforces, so that the provider
    answers slow_down, and records each poll's answer and time; the person approves once told to
    slow down."""

    def __init__(self, interval: float, person: Person) -> None:
        self.interval = interval
        self.person = person
        self.polls: list[tuple[float, str]] = []
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        path = request.url.path
        if not path.endswith(("/token", "/device/auth")):
            return response
        body = json.loads(await response.aread())
        if path.endswith("/device/auth"):
            body["interval"] = self.interval
        else:
            self.polls.append((time.monotonic(), body.get("error", "tokens")))
            if body.get("error") == "slow_down":
                self.person.approve()
        return httpx.Response(response.status_code, json=body)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_slow_down_adds_five_seconds_to_the_interval(oidc_provider: StartProvider) -> None:
    # Enforced 3 s against polls a second apart: far apart enough, even on a busy machine; and a
    # code that expires within a minute, should the provider never say slow_down.
    provider = oidc_provider(
        poll_interval=3, enforce_poll_interval=True, lifetimes=Lifetimes(device_code=60)
    )
    person = Person(provider, action="nothing")
    faster = _Faster(interval=1, person=person)
    async with httpx.AsyncClient(transport=faster) as http:
        endpoints = await discover(http, provider.issuer)
        tokens = await device_tokens(http, endpoints, CLIENT, person)
    person.check()
    assert claims(tokens.id_token)["sub"] == "alice"
    # Polled a second apart, sooner than the provider's 3 s: told to slow down, the client
    # waits 1 + 5 s before it asks again.
    assert [answer for _, answer in faster.polls] == [
        "authorization_pending",
        "slow_down",
        "tokens",
    ]
    assert faster.polls[2][0] - faster.polls[1][0] >= 6


async def test_a_refresh_gives_a_fresh_id_token_and_rotates_the_refresh_token(
    provider: OidcProvider,
) -> None:
    endpoints, first, refresh_token = await sign_in(provider, Person(provider))
    assert refresh_token is not None
    async with provider_http(provider.verify) as http:
        renewed = await refresh_tokens(http, endpoints, CLIENT, refresh_token)
        assert claims(renewed.id_token)["sub"] == claims(first)["sub"]
        assert renewed.refresh_token not in (None, refresh_token)
        with pytest.raises(AuthError, match="no longer renews your sign-in"):
            await refresh_tokens(http, endpoints, CLIENT, refresh_token)  # spent


async def test_a_provider_that_is_down_is_one_clear_sentence(provider: OidcProvider) -> None:
    issuer = provider.issuer
    provider.stop()
    async with provider_http() as http:
        with pytest.raises(ServerUnreachable, match=rf"^The identity provider {issuer} does not"):
            await discover(http, issuer)


async def test_a_provider_whose_certificate_is_not_trusted_is_refused(
    oidc_provider: StartProvider,
) -> None:
    provider = oidc_provider(https=True)
    async with provider_http() as http:  # the system's CAs: not the test CA
        with pytest.raises(ConfigError, match=r"TLS certificate .* is not trusted here"):
            await discover(http, provider.issuer)


def discovery_of(document: dict[str, object]) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/.well-known/openid-configuration"
        return httpx.Response(200, json=document)

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def test_a_discovery_document_naming_another_issuer_is_refused() -> None:
    document = {"issuer": "https://evil.example", "token_endpoint": "https://evil.example/t"}
    async with discovery_of(document) as http:
        with pytest.raises(ConfigError, match="names another issuer"):
            await discover(http, "https://idp.example")


async def test_endpoints_without_https_are_refused() -> None:
    document = {
        "issuer": "https://idp.example",
        "token_endpoint": "http://idp.example/token",
        "device_authorization_endpoint": "https://idp.example/device",
    }
    async with discovery_of(document) as http:
        with pytest.raises(ConfigError, match="without https"):
            await discover(http, "https://idp.example")


async def test_a_provider_without_the_device_grant_says_so(provider: OidcProvider) -> None:
    endpoints = Endpoints(issuer=provider.issuer, token_endpoint=f"{provider.issuer}/token")
    async with provider_http() as http:
        with pytest.raises(ConfigError, match=r"offers no device sign-in \(RFC 8628\)"):
            await device_tokens(http, endpoints, CLIENT, Person(provider))


async def test_an_unknown_client_is_refused_before_any_code_is_shown(
    provider: OidcProvider,
) -> None:
    person = Person(provider)
    async with provider_http() as http:
        endpoints = await discover(http, provider.issuer)
        with pytest.raises(AuthError, match="would not start a device sign-in for client nobody"):
            await device_tokens(http, endpoints, "nobody", person)
    assert person.codes == []


class _LeavesTheProviderDown(Person):
    def show_code(self, code: DeviceCode) -> None:
        super().show_code(code)
        self.provider.stop()  # while the client waits for the approval


async def test_a_provider_gone_while_the_client_polls_is_said_so_at_the_deadline(
    oidc_provider: StartProvider,
) -> None:
    provider = oidc_provider(lifetimes=Lifetimes(device_code=4))
    person = _LeavesTheProviderDown(provider, action="nothing")
    with pytest.raises(ServerUnreachable, match=r"stopped answering .* while the sign-in waited"):
        await sign_in(provider, person)
