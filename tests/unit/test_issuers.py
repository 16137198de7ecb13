"""The issuers fap trusts: https URLs (plain http on a loopback IP only), with no query, fragment
or userinfo, given as ISSUER=CLIENT_ID, once each."""

from __future__ import annotations

import pytest

from fap.errors import ConfigError
from fap.issuers import (
    TrustedIssuer,
    check_issuer_url,
    parse_trusted_issuers,
    provider_kind,
    within_trusted,
)

GOOGLE = "https://accounts.google.com"
MICROSOFT = "https://login.microsoftonline.com/common/v2.0"


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        (GOOGLE, GOOGLE),
        (f"{GOOGLE}/", GOOGLE),
        (MICROSOFT, MICROSOFT),
        ("https://idp.example.com:8443/realms/fap/", "https://idp.example.com:8443/realms/fap"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.5.5.5/issuer", "http://127.5.5.5/issuer"),
        ("http://[::1]:9000/", "http://[::1]:9000"),
    ],
)
def test_an_https_or_loopback_issuer_is_accepted_without_its_trailing_slash(
    url: str, normalised: str
) -> None:
    assert check_issuer_url(url) == normalised


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://example.com", "must use https"),
        ("http://localhost:8080", "must use https"),  # a name, which may resolve anywhere
        ("http://10.0.0.1", "must use https"),
        ("http://[::2]", "must use https"),
        ("https://idp.example.com/?tenant=1", "query"),
        ("https://idp.example.com/path?", "query"),
        ("https://idp.example.com/#top", "fragment"),
        ("https://user:secret@idp.example.com", "user name or password"),
        ("https://idp.example.com/a=b", "'='"),
        ("ftp://idp.example.com", "not a URL"),
        ("idp.example.com", "not a URL"),
        ("https://", "not a URL"),
        ("https://idp.example.com:99999", "invalid port"),
        ("", "empty"),
        ("https://idp.example.com/a b", "spaces"),
    ],
)
def test_a_bad_issuer_is_refused_with_what_to_write(url: str, said: str) -> None:
    with pytest.raises(ConfigError, match=r"^The issuer") as refused:
        check_issuer_url(url)
    message = str(refused.value)
    assert said in message
    assert message.endswith(".") and message.count(". ") == 0  # one sentence


@pytest.mark.parametrize(
    ("issuer", "kind"),
    [
        (MICROSOFT, "microsoft"),
        (
            "https://login.microsoftonline.com/0b9f7a44-6c3c-4d63-a36c-3d4f7e2a1c55/v2.0",
            "microsoft",
        ),
        (GOOGLE, "google"),
        ("https://idp.example.com/realms/fap", "oidc"),
        ("https://accounts.google.com.example.com", "oidc"),
        ("https://login.microsoftonline.com.example.com/common/v2.0", "oidc"),
    ],
)
def test_the_kind_of_a_provider_comes_from_its_issuer(issuer: str, kind: str) -> None:
    assert provider_kind(issuer) == kind


def test_fap_oidc_lists_and_repeated_options_give_every_issuer_in_order() -> None:
    trusted = parse_trusted_issuers(
        [
            f"{GOOGLE}/=123.apps.googleusercontent.com, {MICROSOFT}=5e0c2f5a-1111",
            "http://127.0.0.1:9000=local=client",  # a client id keeps its own '='
            "",  # FAP_OIDC set but empty
        ]
    )
    assert trusted == (
        TrustedIssuer(GOOGLE, "123.apps.googleusercontent.com", "google"),
        TrustedIssuer(MICROSOFT, "5e0c2f5a-1111", "microsoft"),
        TrustedIssuer("http://127.0.0.1:9000", "local=client", "oidc"),
    )


def test_an_issuer_given_twice_is_refused_even_written_differently() -> None:
    with pytest.raises(ConfigError, match="given twice"):
        parse_trusted_issuers([f"{GOOGLE}=a", f"{GOOGLE}/=b"])


@pytest.mark.parametrize("item", [GOOGLE, f"{GOOGLE}=", f"{GOOGLE}=  "])
def test_an_issuer_without_a_client_id_is_refused(item: str) -> None:
    with pytest.raises(ConfigError, match="ISSUER=CLIENT_ID"):
        parse_trusted_issuers([item])


def test_a_bad_issuer_in_a_list_is_refused_by_the_url_check() -> None:
    with pytest.raises(ConfigError, match="must use https"):
        parse_trusted_issuers([f"{GOOGLE}=a,http://example.com=b"])


def test_a_tenant_is_within_a_trusted_multi_tenant_microsoft_issuer() -> None:
    tenant = "https://login.microsoftonline.com/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/v2.0"
    common = parse_trusted_issuers(["https://login.microsoftonline.com/common/v2.0=app"])
    assert within_trusted(tenant, common)
    assert within_trusted("https://login.microsoftonline.com/common/v2.0", common)
    assert not within_trusted("https://login.microsoftonline.com/not-a-guid/v2.0", common)
    assert not within_trusted(tenant + "/extra", common)
    single = parse_trusted_issuers([f"{tenant}=app"])
    other = "https://login.microsoftonline.com/99999999-4e5f-4a6b-8c7d-9e0f1a2b3c4d/v2.0"
    assert not within_trusted(other, single)
    assert not within_trusted(tenant, parse_trusted_issuers(["https://idp.example=app"]))
