"""Signing in against a real OpenID Connect provider (oidc-provider on loopback): a device flow's
ID token becomes a session of the server, invitations and joining domains are honoured for
verified emails, refresh tokens rotate and a reused one ends the session, and tokens the server
must not trust are refused."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from tests.support.oidc_provider import BOB, OidcClient, OidcProvider
from tests.unit.server.harness import Server, error_body, running_server

from fap.api import (
    AUTH_PROVIDERS,
    AUTH_REFRESH,
    AUTH_SIGN_IN,
    AUTH_SIGN_OUT,
    INVITATIONS,
    ME,
    ORG_ACCESS,
    Invitation,
    Me,
    Membership,
    OrgAccessInfo,
    ProviderList,
    Refresh,
    SessionTokens,
    SignIn,
)

CLIENT = "fap-cli"
OTHER_CLIENT = "another-app"

StartProvider = Callable[..., OidcProvider]


@pytest.fixture
def provider(oidc_provider: StartProvider) -> OidcProvider:
    return oidc_provider(clients=(OidcClient(CLIENT), OidcClient(OTHER_CLIENT)))


@pytest.fixture
async def server(tmp_path: Path, provider: OidcProvider) -> AsyncIterator[Server]:
    async with running_server(tmp_path / "data", oidc=(f"{provider.issuer}={CLIENT}",)) as running:
        yield running


async def id_token(
    provider: OidcProvider, *, client: str = CLIENT, account: str | None = None
) -> str:
    """A person completes the device flow at the provider (its pages, over HTTP)."""
    answer = await asyncio.to_thread(provider.device_flow, client, account=account)
    token: str = answer["id_token"]
    return token


async def sign_in(server: Server, token: str) -> SessionTokens:
    return await server.ok(
        "POST", AUTH_SIGN_IN, None, SignIn(id_token=token), returns=SessionTokens
    )


async def test_the_server_lists_the_providers_it_trusts(
    server: Server, provider: OidcProvider
) -> None:
    listed = await server.ok("GET", AUTH_PROVIDERS, None, returns=ProviderList)
    assert [(p.issuer, p.client_id, p.kind) for p in listed.providers] == [
        (provider.issuer, CLIENT, "oidc")
    ]


async def test_an_invited_user_signs_in_with_the_device_flow_and_is_a_member(
    server: Server, provider: OidcProvider
) -> None:
    invite = Invitation(email="Alice@Example.com", role="member")
    await server.ok("POST", INVITATIONS.format(org="local"), server.owner, invite, returns=dict)
    session = await sign_in(server, await id_token(provider))
    assert session.email == "alice@example.com"
    assert session.joined == [Membership(org="local", role="member")]
    assert session.access_token.startswith("fap_session_")
    me = await server.ok("GET", ME, session.access_token, returns=Me)
    assert (me.email, me.token_kind, me.orgs) == (
        "alice@example.com",
        "session",
        [Membership(org="local", role="member")],
    )
    # Signing in again is the same user, still a member, joining nothing new.
    again = await sign_in(server, await id_token(provider))
    assert (again.user_id, again.joined) == (session.user_id, [])


async def test_an_unverified_email_accepts_no_invitation(
    server: Server, provider: OidcProvider
) -> None:
    assert not BOB.email_verified
    invite = Invitation(email=BOB.email, role="admin")
    await server.ok("POST", INVITATIONS.format(org="local"), server.owner, invite, returns=dict)
    session = await sign_in(server, await id_token(provider, account=BOB.subject))
    assert session.joined == []
    assert (await server.ok("GET", ME, session.access_token, returns=Me)).orgs == []


async def test_an_email_domain_joins_with_its_role(server: Server, provider: OidcProvider) -> None:
    access = OrgAccessInfo(issuers=[provider.issuer], domains={"example.com": "viewer"})
    await server.ok("PUT", ORG_ACCESS.format(org="local"), server.owner, access, returns=dict)
    session = await sign_in(server, await id_token(provider))
    assert session.joined == [Membership(org="local", role="viewer")]


async def grant(provider: OidcProvider, *, account: str | None = None) -> dict[str, str]:
    """The provider's whole answer to a device flow: its ID token and its own refresh token."""
    answer: dict[str, str] = await asyncio.to_thread(provider.device_flow, CLIENT, account=account)
    return answer


async def renewed_id_token(provider: OidcProvider, idp: dict[str, str]) -> str:
    """What the CLI does before renewing a session: the provider's refresh, a fresh ID token."""
    answer = await asyncio.to_thread(provider.refresh, CLIENT, idp["refresh_token"])
    idp["refresh_token"] = answer["refresh_token"]  # the provider rotates its own too
    token: str = answer["id_token"]
    return token


async def test_a_refresh_token_rotates_and_a_reused_one_ends_the_session(
    server: Server, provider: OidcProvider
) -> None:
    idp = await grant(provider)
    first = await sign_in(server, idp["id_token"])
    renew = Refresh(
        refresh_token=first.refresh_token, id_token=await renewed_id_token(provider, idp)
    )
    second = await server.ok("POST", AUTH_REFRESH, None, renew, returns=SessionTokens)
    assert second.refresh_token != first.refresh_token
    assert (await server.call("GET", ME, second.access_token)).status_code == 200
    # The first refresh token again: a copy is in other hands, so the whole session ends.
    reused = await server.call(
        "POST",
        AUTH_REFRESH,
        None,
        Refresh(refresh_token=first.refresh_token, id_token=await renewed_id_token(provider, idp)),
    )
    assert reused.status_code == 401
    assert "used before" in error_body(reused).detail
    for access in (first.access_token, second.access_token):
        assert (await server.call("GET", ME, access)).status_code == 401
    after = await server.call(
        "POST",
        AUTH_REFRESH,
        None,
        Refresh(refresh_token=second.refresh_token, id_token=await renewed_id_token(provider, idp)),
    )
    assert after.status_code == 401


async def test_a_session_is_renewed_only_with_its_own_users_id_token(
    server: Server, provider: OidcProvider
) -> None:
    alice = await sign_in(server, (await grant(provider))["id_token"])
    bob = await grant(provider, account=BOB.subject)
    swapped = await server.call(
        "POST",
        AUTH_REFRESH,
        None,
        Refresh(refresh_token=alice.refresh_token, id_token=bob["id_token"]),
    )
    assert swapped.status_code == 401
    assert (await server.call("GET", ME, alice.access_token)).status_code == 401  # ended
    forged = await server.call(
        "POST", AUTH_REFRESH, None, Refresh(refresh_token=alice.refresh_token, id_token="x.y.z")
    )
    assert forged.status_code == 401


async def test_signing_out_ends_the_session(server: Server, provider: OidcProvider) -> None:
    idp = await grant(provider)
    session = await sign_in(server, idp["id_token"])
    assert (await server.call("POST", AUTH_SIGN_OUT, session.access_token)).status_code == 204
    assert (await server.call("GET", ME, session.access_token)).status_code == 401
    renew = Refresh(
        refresh_token=session.refresh_token, id_token=await renewed_id_token(provider, idp)
    )
    refused = await server.call("POST", AUTH_REFRESH, None, renew)
    assert refused.status_code == 401


async def test_an_id_token_issued_to_another_application_is_refused(
    server: Server, provider: OidcProvider
) -> None:
    token = await id_token(provider, client=OTHER_CLIENT)
    refused = await server.call("POST", AUTH_SIGN_IN, None, SignIn(id_token=token))
    assert refused.status_code == 401
    assert "another application" in error_body(refused).detail


async def test_a_tampered_id_token_is_refused(server: Server, provider: OidcProvider) -> None:
    header, payload, signature = (await id_token(provider)).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = "ceo@example.com"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    refused = await server.call(
        "POST", AUTH_SIGN_IN, None, SignIn(id_token=f"{header}.{forged}.{signature}")
    )
    assert refused.status_code == 401
    assert "signature" in error_body(refused).detail


async def test_an_id_token_of_a_provider_the_server_does_not_trust_is_refused(
    server: Server, oidc_provider: StartProvider
) -> None:
    stranger = oidc_provider()
    refused = await server.call(
        "POST", AUTH_SIGN_IN, None, SignIn(id_token=await id_token(stranger))
    )
    assert refused.status_code == 401
    assert "trust" in error_body(refused).detail


async def test_a_provider_out_of_reach_is_a_503_to_retry(
    server: Server, provider: OidcProvider
) -> None:
    token = await id_token(provider)
    provider.stop()  # before the server ever fetched its keys
    refused = await server.call("POST", AUTH_SIGN_IN, None, SignIn(id_token=token))
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"


async def test_a_server_trusting_no_provider_says_so(
    tmp_path: Path, provider: OidcProvider
) -> None:
    async with running_server(tmp_path / "bare") as bare:
        assert (await bare.ok("GET", AUTH_PROVIDERS, None, returns=ProviderList)).providers == []
        refused = await bare.call(
            "POST", AUTH_SIGN_IN, None, SignIn(id_token=await id_token(provider))
        )
        assert refused.status_code == 400
        assert "trusts no identity provider" in error_body(refused).detail
