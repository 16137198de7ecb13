"""The identity providers fap trusts: issuer URLs, their kinds, and ``--oidc ISSUER=CLIENT_ID``.

A leaf shared by the server, which verifies ID tokens against these issuers, and the client, which
signs in with them. An issuer is an https URL with no query, fragment or userinfo (OpenID Connect
Discovery 1.0, section 2). Plain http is accepted only on a loopback address written as a literal
IP (127.0.0.0/8, [::1]), for development and tests: ``localhost`` is a name, which a hosts file or
a resolver may send elsewhere, so it must be written as 127.0.0.1 instead.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from fap.errors import ConfigError

__all__ = (
    "GOOGLE_ISSUER",
    "MICROSOFT_HOST",
    "ProviderKind",
    "TrustedIssuer",
    "check_issuer_url",
    "is_secure_url",
    "parse_trusted_issuers",
    "provider_kind",
    "within_trusted",
)

ProviderKind = Literal["microsoft", "google", "oidc"]

GOOGLE_ISSUER = "https://accounts.google.com"
MICROSOFT_HOST = "login.microsoftonline.com"

_MULTI_TENANT = ("common", "organizations")
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_FORM = "ISSUER=CLIENT_ID, such as https://accounts.google.com=1234.apps.googleusercontent.com"


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """An identity provider the server trusts, and the client id fap is registered under there."""

    issuer: str  # normalised by check_issuer_url: no trailing slash
    client_id: str
    kind: ProviderKind


def is_secure_url(url: str) -> bool:
    """True for an https URL, or an http one whose host is a loopback IP written literally."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and _is_loopback_ip(parts.hostname)


def check_issuer_url(url: str) -> str:
    """``url`` normalised (no trailing slash); a ConfigError sentence if it cannot be an issuer."""
    if not url or any(char.isspace() or not char.isprintable() for char in url):
        raise ConfigError(
            f"The issuer {url!r} is empty or holds spaces; write its URL, such as {GOOGLE_ISSUER}."
        )
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            f"The issuer {url!r} carries a user name or password; write it without them."
        )
    if "?" in url or "#" in url:
        raise ConfigError(
            f"The issuer {url!r} has a query or fragment, which an issuer never has; write the "
            "issuer URL alone, as its discovery document names it."
        )
    # No real issuer has one, and refusing it keeps ISSUER=CLIENT_ID unambiguous.
    if "=" in url:
        raise ConfigError(f"The issuer {url!r} contains '='; write the issuer URL alone.")
    try:
        _ = parts.port  # urlsplit checks the port only when asked for it
    except ValueError:
        raise ConfigError(f"The issuer {url!r} has an invalid port.") from None
    if not url.startswith(("https://", "http://")) or not parts.hostname:
        raise ConfigError(f"The issuer {url!r} is not a URL; write https://HOST[/PATH].")
    if not is_secure_url(url):
        raise ConfigError(
            f"The issuer {url!r} must use https; plain http is accepted only on a loopback IP "
            "(127.0.0.1 or [::1]), for development."
        )
    return url.rstrip("/")


def provider_kind(issuer: str) -> ProviderKind:
    """Which sign-in flavour ``issuer`` needs: Microsoft's, Google's, or generic OpenID Connect."""
    parts = urlsplit(issuer)
    if parts.scheme == "https" and parts.hostname == MICROSOFT_HOST:
        return "microsoft"
    if issuer.rstrip("/") == GOOGLE_ISSUER:
        return "google"
    return "oidc"


def within_trusted(issuer: str, trusted: Iterable[TrustedIssuer]) -> bool:
    """Whether ``issuer`` is trusted: one of ``trusted``, or one tenant of a trusted Microsoft
    multi-tenant issuer (``…/common/v2.0`` or ``…/organizations/v2.0`` vouch for every tenant's
    ``https://login.microsoftonline.com/TENANT-GUID/v2.0``, which is what its tokens name)."""
    parts = urlsplit(issuer)
    segments = parts.path.strip("/").split("/")
    for candidate in trusted:
        if candidate.issuer == issuer:
            return True
        if candidate.kind != "microsoft" or parts.hostname != MICROSOFT_HOST:
            continue
        wide = urlsplit(candidate.issuer).path.strip("/").split("/")
        if (
            wide[0] in _MULTI_TENANT
            and len(segments) == len(wide)
            and segments[1:] == wide[1:]
            and _GUID.fullmatch(segments[0])
        ):
            return True
    return False


def parse_trusted_issuers(values: Iterable[str]) -> tuple[TrustedIssuer, ...]:
    """The issuers of ``--oidc`` options (or of ``FAP_OIDC``), each ``ISSUER=CLIENT_ID``.

    Each value may itself be a comma-separated list, as FAP_OIDC is; empty items are skipped, so
    an empty FAP_OIDC means no provider. An item is split on its first '=': check_issuer_url
    refuses '=' in an issuer, so the issuer cannot hold one, while a client id (an opaque string
    to fap) keeps any it has.
    """
    trusted: list[TrustedIssuer] = []
    seen: set[str] = set()
    for value in values:
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            url, separator, client_id = item.partition("=")
            if not separator:
                raise ConfigError(
                    f"The identity provider {item!r} names no client id; write {_FORM}."
                )
            issuer = check_issuer_url(url.strip())
            client_id = client_id.strip()
            if not client_id:
                raise ConfigError(
                    f"The identity provider {issuer} has an empty client id; write {_FORM}."
                )
            if issuer in seen:
                raise ConfigError(
                    f"The identity provider {issuer} is given twice; give each issuer once, with "
                    "the one client id fap is registered under there."
                )
            seen.add(issuer)
            trusted.append(TrustedIssuer(issuer, client_id, provider_kind(issuer)))
    return tuple(trusted)


def _is_loopback_ip(host: str | None) -> bool:
    # Literal addresses only (see the module's docstring); urlsplit has already removed the
    # brackets of an IPv6 address and lower-cased the host.
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.version == 4:
        return address.is_loopback
    return address == ipaddress.IPv6Address("::1")
