"""Which identity provider to sign in with: the server's list, narrowed by ``--issuer``,
``--client-id`` and ``--provider``.

The server lists the providers it trusts publicly. An issuer it does not list is refused here,
before any browser opens: the server would refuse its ID token anyway. Every issuer, listed or
given, must pass :func:`fap.issuers.check_issuer_url` (https, except on a loopback IP), so a server
cannot send a person to sign in over plain http.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fap.api import Provider
from fap.errors import AuthError, ConfigError
from fap.issuers import ProviderKind, check_issuer_url, provider_kind

__all__ = ("ProviderChoice", "choose_provider")


@dataclass(frozen=True, slots=True)
class ProviderChoice:
    issuer: str
    client_id: str
    kind: ProviderKind


def choose_provider(
    listed: Sequence[Provider],
    *,
    server: str,
    issuer: str | None = None,
    client_id: str | None = None,
    kind: ProviderKind | None = None,
    ask: Callable[[Sequence[Provider]], Provider] | None = None,
) -> ProviderChoice:
    """The provider to sign in with. ``ask`` chooses among several (None: nobody to ask)."""
    if not listed:
        raise AuthError(
            f"The server at {server} trusts no identity provider, so nobody can sign in to it; "
            "its owner uses the local token (FAP_TOKEN), or starts it with --oidc ISSUER=CLIENT_ID."
        )
    if issuer is not None:
        chosen = _listed_as(listed, check_issuer_url(issuer.strip()), server)
    elif len(listed) == 1:
        chosen = listed[0]
    elif ask is not None:
        chosen = ask(listed)
    else:
        raise ConfigError(
            f"The server at {server} trusts several identity providers ({_names(listed)}); "
            "choose one with --issuer URL."
        )
    trusted_issuer = check_issuer_url(chosen.issuer)
    return ProviderChoice(
        issuer=trusted_issuer,
        client_id=(client_id or "").strip() or chosen.client_id,
        kind=kind or _as_kind(chosen.kind, trusted_issuer),
    )


def _listed_as(listed: Sequence[Provider], wanted: str, server: str) -> Provider:
    for provider in listed:
        if provider.issuer.rstrip("/") == wanted:
            return provider
    raise ConfigError(
        f"The server at {server} does not trust the identity provider {wanted}; "
        f"it trusts {_names(listed)}."
    )


def _as_kind(listed: str, issuer: str) -> ProviderKind:
    """The kind the server lists; one this client does not know is read from the issuer."""
    if listed == "microsoft":
        return "microsoft"
    if listed == "google":
        return "google"
    if listed == "oidc":
        return "oidc"
    return provider_kind(issuer)


def _names(listed: Sequence[Provider]) -> str:
    return ", ".join(provider.issuer for provider in listed)
