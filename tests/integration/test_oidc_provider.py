"""The tests' OpenID Connect provider is a real one: discovery, the device grant (RFC 8628) to an ID
token that verifies against the published keys, refresh, denial, expiry, slow_down, key rotation,
the code grant with a loopback redirect, and https with the test CA."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from tests.support.oidc_provider import (
    DEVICE_CODE_GRANT,
    Lifetimes,
    OidcProvider,
    OidcProviderError,
    TokenError,
    rsa_signing_key,
)

CLIENT_ID = "fap-cli"
StartProvider = Callable[..., OidcProvider]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """One provider for the tests that need no settings of their own."""
    with OidcProvider(tmp_path_factory.mktemp("oidc")) as running:
        yield running


def published_keys(provider: OidcProvider) -> list[dict[str, Any]]:
    with provider.http_client() as http:
        response = http.get(provider.discovery["jwks_uri"])
    response.raise_for_status()
    keys: list[dict[str, Any]] = response.json()["keys"]
    return keys


def verified_claims(provider: OidcProvider, id_token: str) -> dict[str, Any]:
    """The ID token's claims, once its signature verifies against the provider's JWKS."""
    key_set = jwt.PyJWKSet.from_dict({"keys": published_keys(provider)})
    kid = jwt.get_unverified_header(id_token)["kid"]
    claims: dict[str, Any] = jwt.decode(
        id_token,
        key_set[kid],
        algorithms=["RS256"],
        audience=CLIENT_ID,
        issuer=provider.issuer,
        options={"require": ["iss", "aud", "sub", "exp", "iat"]},
    )
    return claims


def test_discovery_names_the_device_endpoint_and_the_keys(provider: OidcProvider) -> None:
    discovery = provider.discovery

    assert discovery["issuer"] == provider.issuer
    assert discovery["device_authorization_endpoint"] == f"{provider.issuer}/device/auth"
    assert discovery["jwks_uri"] == f"{provider.issuer}/jwks"
    assert DEVICE_CODE_GRANT in discovery["grant_types_supported"]
    assert {"openid", "email", "offline_access"} <= set(discovery["scopes_supported"])
    [key] = published_keys(provider)
    assert key["kid"] == provider.signing_keys[0]["kid"]
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    assert "d" not in key, "the JWKS publishes the public key only"


def test_device_flow_gives_an_id_token_signed_with_the_published_key(
    provider: OidcProvider, record_property: Callable[[str, object], None]
) -> None:
    started = time.monotonic()
    tokens = provider.device_flow(CLIENT_ID, "openid email profile", account="bob")
    elapsed = time.monotonic() - started

    claims = verified_claims(provider, tokens["id_token"])
    assert claims["iss"] == provider.issuer
    assert claims["aud"] == CLIENT_ID
    assert claims["sub"] == "bob"
    assert claims["email"] == "bob@example.com"
    assert claims["email_verified"] is False
    assert claims["name"] == "Bob Example"
    assert claims["iat"] <= time.time() + 5 < claims["exp"]
    assert tokens["token_type"] == "Bearer" and tokens["access_token"]
    assert "refresh_token" not in tokens, "no offline_access, no refresh token"
    record_property("figures", f"oidc-provider device flow (poll interval 1 s): {elapsed:.2f} s")


def test_a_refresh_token_from_offline_access_is_exchanged_and_rotated(
    provider: OidcProvider,
) -> None:
    tokens = provider.device_flow(CLIENT_ID, "openid email offline_access")

    refreshed = provider.refresh(CLIENT_ID, tokens["refresh_token"])

    assert refreshed["access_token"] != tokens["access_token"]
    assert verified_claims(provider, refreshed["id_token"])["sub"] == "alice"
    # A public client's refresh token is used once: each refresh hands out the next one.
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    with pytest.raises(TokenError) as reused:
        provider.refresh(CLIENT_ID, tokens["refresh_token"])
    assert reused.value.error == "invalid_grant"


def test_a_denied_request_ends_in_access_denied(provider: OidcProvider) -> None:
    authorization = provider.authorize_device(CLIENT_ID)

    provider.deny(authorization.user_code)

    with pytest.raises(TokenError) as denied:
        provider.poll_token(CLIENT_ID, authorization)
    assert denied.value.error == "access_denied"


def test_a_wrong_user_code_is_refused_on_the_device_page(provider: OidcProvider) -> None:
    with pytest.raises(OidcProviderError, match="incorrect"):
        provider.approve("BCDF-GHJK")


def test_the_code_grant_redirects_to_a_loopback_port(provider: OidcProvider) -> None:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    redirect_uri = "http://127.0.0.1:49152/callback"  # any port: the client is native
    request = httpx.URL(provider.discovery["authorization_endpoint"]).copy_merge_params(
        {
            "client_id": CLIENT_ID,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": "openid email offline_access",
            # Without it oidc-provider drops offline_access from a code grant.
            "prompt": "consent",
            "state": "the-state",
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
    )

    back = httpx.URL(provider.sign_in(str(request), account="alice"))

    assert str(back.copy_with(query=None)) == redirect_uri
    assert back.params["state"] == "the-state"
    with provider.http_client() as http:
        response = http.post(
            provider.discovery["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "client_id": CLIENT_ID,
                "code": back.params["code"],
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
        )
    response.raise_for_status()
    tokens = response.json()
    assert verified_claims(provider, tokens["id_token"])["email"] == "alice@example.com"
    assert tokens["refresh_token"]


def test_an_expired_device_code_ends_in_expired_token(oidc_provider: StartProvider) -> None:
    provider = oidc_provider(lifetimes=Lifetimes(device_code=1))
    authorization = provider.authorize_device(CLIENT_ID)
    assert authorization.expires_in == 1

    with pytest.raises(TokenError) as expired:
        provider.poll_token(CLIENT_ID, authorization, timeout=30)
    assert expired.value.error == "expired_token"


def test_polling_sooner_than_the_interval_is_told_to_slow_down(
    oidc_provider: StartProvider,
) -> None:
    # Far longer than two requests in a row take, even on a busy machine.
    provider = oidc_provider(poll_interval=30, enforce_poll_interval=True)
    authorization = provider.authorize_device(CLIENT_ID)
    assert authorization.interval == 30
    data = {
        "grant_type": DEVICE_CODE_GRANT,
        "device_code": authorization.device_code,
        "client_id": CLIENT_ID,
    }

    with provider.http_client() as http:
        first = http.post(provider.discovery["token_endpoint"], data=data)
        second = http.post(provider.discovery["token_endpoint"], data=data)

    assert first.json()["error"] == "authorization_pending"
    assert second.json()["error"] == "slow_down"


def test_a_restart_keeps_the_issuer_and_publishes_the_new_key(
    oidc_provider: StartProvider,
) -> None:
    provider = oidc_provider()
    issuer = provider.issuer
    old_kid = provider.signing_keys[0]["kid"]
    new_key = rsa_signing_key()

    provider.restart(signing_keys=[new_key])

    assert provider.issuer == issuer
    assert new_key["kid"] != old_kid
    assert [key["kid"] for key in published_keys(provider)] == [new_key["kid"]]
    id_token = provider.device_flow(CLIENT_ID, "openid email")["id_token"]
    assert jwt.get_unverified_header(id_token)["kid"] == new_key["kid"]
    assert verified_claims(provider, id_token)["sub"] == "alice"


def test_https_with_a_path_is_served_under_the_test_ca(oidc_provider: StartProvider) -> None:
    provider = oidc_provider(https=True, path="/tenant")
    assert provider.ca_path is not None

    assert provider.issuer.startswith("https://127.0.0.1:")
    assert provider.issuer.endswith("/tenant")
    with httpx.Client(verify=provider.verify) as http:
        discovery = http.get(f"{provider.issuer}/.well-known/openid-configuration").json()
    assert discovery["token_endpoint"] == f"{provider.issuer}/token"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(provider.issuer)
    tokens = provider.device_flow(CLIENT_ID, "openid email")
    assert verified_claims(provider, tokens["id_token"])["iss"] == provider.issuer
