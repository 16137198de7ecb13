"""Verifying the ID tokens of the identity providers the server trusts (OpenID Connect Core 3.1.3.7).

A CLI signs in with a provider's device flow and hands the server the ID token. Its unverified
``iss`` only chooses the trusted issuer to verify against; then the signature, ``iss``, ``aud``
(and ``azp`` when there are several audiences), ``exp``, ``iat`` (not in the future) and ``sub``
are checked under that issuer's keys, with ``LEEWAY`` seconds of clock skew.

Keys: see :mod:`fap.server.auth.signing_keys` (asymmetric only; never ``none``, never HS*). The
JWKS and the discovery document are kept for an hour (a key the provider withdraws stops verifying
within it). A token naming an unknown ``kid`` refetches the JWKS, at most once per
``REFETCH_INTERVAL``: anybody can send such tokens, and they must not make us hammer the provider,
which publishes a new key well before it signs with it. After a failed fetch the issuer is not
asked again before a backoff (1 s, doubling, at most a minute).

Microsoft multi-tenant: an issuer configured as ``https://login.microsoftonline.com/common/v2.0``
(or ``organizations``) must have a discovery document naming exactly the template
``https://login.microsoftonline.com/{tenantid}/v2.0``, and a token's ``iss`` is accepted only when
it is that template with ``{tenantid}`` replaced by the token's own ``tid`` (a GUID). The identity
keeps the tenant's issuer, so one ``sub`` in two tenants stays two users.

Issuers compare without a trailing slash (``--oidc`` strips it; some providers write one); Google
tokens may write ``accounts.google.com``, which Google documents as its issuer too. No token is
ever logged or quoted: refusals name claims, never their values.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

import httpx
import jwt
import msgspec

from fap.backoff import Backoff
from fap.issuers import TrustedIssuer, is_secure_url
from fap.server.auth.signing_keys import SigningKey, find_key, signing_keys
from fap.server.errors import IssuerUnavailable, Unauthorized

__all__ = ("LEEWAY", "REFETCH_INTERVAL", "IdTokenVerifier", "VerifiedIdentity")

logger = logging.getLogger(__name__)

LEEWAY = 60.0  # seconds of clock skew tolerated between the provider and this server
REFETCH_INTERVAL = 60.0  # at most one JWKS fetch per issuer per minute for an unknown kid
_MAX_AGE = 3600.0
_FAILED = Backoff(first=1.0, cap=REFETCH_INTERVAL, jitter=False)  # one server, one provider
# A sign-in waits on these fetches, and the documents are a few kilobytes: ten seconds is ample.
_TIMEOUT = httpx.Timeout(10.0)
_MAX_TOKEN = 32 * 1024  # ID tokens weigh 1 to 4 KiB: a larger one is not worth decoding

_REQUIRED = ["iss", "aud", "exp", "iat", "sub"]
_MULTI_TENANT = ("common", "organizations")
_TENANT = "{tenantid}"
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_QUOTABLE = re.compile(r"[\x21-\x7e]{1,200}")

# PyJWT's refusals, subclasses before their bases (a bad signature is a DecodeError).
_REFUSALS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "The ID token has expired"),
    (
        jwt.ImmatureSignatureError,
        "The ID token is dated in the future (is the server's clock right?)",
    ),
    (jwt.InvalidAudienceError, "The ID token was issued to another application, not to fap"),
    (jwt.InvalidIssuerError, "The ID token's issuer does not match its provider"),
    (jwt.InvalidAlgorithmError, "The ID token's algorithm is not one its provider's key allows"),
    (jwt.InvalidSignatureError, "The ID token's signature does not verify"),
    (jwt.InvalidKeyError, "The ID token is signed with a key too weak to trust"),
    (jwt.DecodeError, "The ID token is malformed"),
)

_Document = TypeVar("_Document", bound=msgspec.Struct)


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    """Who signed in, from a verified ID token; (issuer, subject) identifies the user."""

    issuer: str
    subject: str
    email: str | None  # lower-cased
    email_verified: bool
    name: str | None


class _Discovery(msgspec.Struct):
    issuer: str
    jwks_uri: str


class _Jwks(msgspec.Struct):
    keys: list[dict[str, Any]]


@dataclass(slots=True)
class _Issuer:
    """A trusted issuer and what we hold of it. Its lock makes verifications that find the cache
    cold or stale wait for one fetch, rather than each starting its own."""

    trusted: TrustedIssuer
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    jwks_uri: str | None = None
    keys: tuple[SigningKey, ...] = ()
    keys_at: float = -math.inf
    failures: int = 0
    failed_at: float = -math.inf


class IdTokenVerifier:
    """Verifies the ID tokens of ``issuers``; open it (``async with``) before ``verify``.

    ``verify`` is the TLS trust for the providers: None for the system's, else a CA file or an SSL
    context (tests run providers with a throwaway CA). ``clock`` gives monotonic seconds.
    """

    def __init__(
        self,
        issuers: Iterable[TrustedIssuer],
        *,
        verify: ssl.SSLContext | str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuers = tuple(_Issuer(trusted) for trusted in issuers)
        self._verify = verify
        self._clock = clock
        self._http: httpx.AsyncClient | None = None

    async def open(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=_TIMEOUT, verify=_tls(self._verify))

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def verify(self, id_token: str) -> VerifiedIdentity:
        """Who ``id_token`` proves signed in: Unauthorized if it proves nothing, IssuerUnavailable
        if its issuer's keys cannot be had now (the token may be fine: retry)."""
        header, claims = _unverified(id_token)
        issuer, accepted = self._issuer_of(claims)
        key = await self._key(issuer, header.get("kid"))
        client_id = issuer.trusted.client_id
        try:
            verified = jwt.decode(
                id_token,
                key.public,
                algorithms=list(key.algorithms),
                audience=client_id,
                issuer=accepted,
                leeway=LEEWAY,
                options={"require": _REQUIRED, "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as error:
            raise Unauthorized(_refusal(error)) from None
        audiences = verified["aud"]
        if isinstance(audiences, list) and len(audiences) > 1 and verified.get("azp") != client_id:
            raise Unauthorized(_refusal(jwt.InvalidAudienceError()))
        return _identity(verified, issuer=accepted[0])

    def _issuer_of(self, claims: dict[str, Any]) -> tuple[_Issuer, tuple[str, ...]]:
        """The trusted issuer the token claims to come from, and the ``iss`` values it may carry."""
        iss = claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise Unauthorized("The ID token names no issuer; sign in again.")
        matches = [
            (issuer, accepted)
            for issuer in self._issuers
            if iss in (accepted := _accepted_issuers(issuer.trusted, claims.get("tid")))
        ]
        if not matches:
            shown = repr(iss) if _QUOTABLE.fullmatch(iss) else "an issuer"
            raise Unauthorized(
                f"The ID token was issued by {shown}, which this server does not trust; sign in "
                "with one of the providers it trusts."
            )
        # Two issuers may accept one iss (Microsoft's common and organizations): the one whose
        # client id the token names is the one it was issued for.
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        return next((m for m in matches if m[0].trusted.client_id in audiences), matches[0])

    async def _key(self, issuer: _Issuer, kid: str | None) -> SigningKey:
        async with issuer.lock:
            now = self._clock()
            age = now - issuer.keys_at
            unknown = find_key(issuer.keys, kid) is None
            if age >= _MAX_AGE or (unknown and age >= REFETCH_INTERVAL):
                await self._refresh(issuer, now, rediscover=age >= _MAX_AGE)
            key = find_key(issuer.keys, kid)
        if key is None:
            raise Unauthorized(
                "The ID token is signed by a key its provider does not publish; sign in again."
            )
        return key

    async def _refresh(self, issuer: _Issuer, now: float, *, rediscover: bool) -> None:
        name = issuer.trusted.issuer
        if issuer.failures and now < issuer.failed_at + _FAILED.delay(issuer.failures):
            raise IssuerUnavailable(
                f"{name} failed {issuer.failures} time(s) in a row; it is asked again after a wait."
            )
        try:
            if rediscover or issuer.jwks_uri is None:
                issuer.jwks_uri = await self._discover(issuer.trusted)
            jwks = await self._get(issuer.jwks_uri, _Jwks, f"The keys of {name}")
            keys = signing_keys(jwks.keys)
            if not keys:
                raise IssuerUnavailable(f"The keys of {name} hold no signing key fap can use.")
        except IssuerUnavailable:
            issuer.failures, issuer.failed_at = issuer.failures + 1, now
            raise
        logger.debug("Fetched %d signing keys of %s.", len(keys), name)
        issuer.keys, issuer.keys_at, issuer.failures = keys, now, 0

    async def _discover(self, trusted: TrustedIssuer) -> str:
        """The JWKS URL of ``trusted``'s discovery document, once the document proves its own."""
        url = f"{trusted.issuer}/.well-known/openid-configuration"
        document = await self._get(url, _Discovery, f"The discovery document of {trusted.issuer}")
        expected = _discovery_issuer(trusted)
        # OpenID Connect Discovery 4.3: a document that names another issuer is not this issuer's.
        if document.issuer.rstrip("/") != expected:
            raise IssuerUnavailable(
                f"The discovery document at {url} names the issuer {document.issuer!r}, not "
                f"{expected!r}; give --oidc the issuer exactly as its discovery document names it."
            )
        if not is_secure_url(document.jwks_uri):
            raise IssuerUnavailable(f"The discovery document at {url} names keys not on https.")
        return document.jwks_uri

    async def _get(self, url: str, kind: type[_Document], what: str) -> _Document:
        if self._http is None:
            raise IssuerUnavailable("The ID token verifier is not open (starting or stopping).")
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as error:
            raise IssuerUnavailable(
                f"{what} could not be fetched from {url}: {type(error).__name__} {error}."
            ) from error
        if response.status_code != 200:
            raise IssuerUnavailable(f"{what} at {url} answered {response.status_code}, not 200.")
        try:
            return msgspec.json.decode(response.content, type=kind)
        except msgspec.DecodeError as error:
            raise IssuerUnavailable(f"{what} at {url} is not the JSON expected: {error}") from error


def _unverified(id_token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims as the token states them: enough to choose its issuer and key."""
    if len(id_token) > _MAX_TOKEN:
        raise Unauthorized("The ID token is far too large to be one; sign in again.")
    try:
        header = jwt.get_unverified_header(id_token)
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Unauthorized(_refusal(jwt.DecodeError())) from None
    return header, claims


def _discovery_issuer(trusted: TrustedIssuer) -> str:
    """The issuer its discovery document must name: itself, or Microsoft's tenant template."""
    scheme, _, rest = trusted.issuer.partition("://")
    host, _, path = rest.partition("/")
    tenant, _, tail = path.partition("/")
    if trusted.kind == "microsoft" and tenant in _MULTI_TENANT:
        return f"{scheme}://{host}/{_TENANT}" + (f"/{tail}" if tail else "")
    return trusted.issuer


def _accepted_issuers(trusted: TrustedIssuer, tid: object) -> tuple[str, ...]:
    """The ``iss`` values a token of ``trusted`` may carry, the canonical one first; () if none."""
    canonical = _discovery_issuer(trusted)
    if _TENANT in canonical:
        if not isinstance(tid, str) or not _GUID.fullmatch(tid):
            return ()
        canonical = canonical.replace(_TENANT, tid)
    accepted: tuple[str, ...] = (canonical, f"{canonical}/")
    if trusted.kind == "google":
        accepted += (canonical.removeprefix("https://"),)
    return accepted


def _refusal(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"The ID token lacks its {error.claim!r} claim; sign in again."
    reason = next((text for kind, text in _REFUSALS if isinstance(error, kind)), None)
    return f"{reason or 'The ID token is invalid'}; sign in again."


def _identity(claims: dict[str, Any], *, issuer: str) -> VerifiedIdentity:
    if not (subject := claims["sub"]):  # a string: PyJWT checked it
        raise Unauthorized("The ID token's subject is empty; sign in again.")
    email, name = claims.get("email"), claims.get("name")
    email = email.lower() if isinstance(email, str) and email else None
    # Some providers have sent email_verified as the string "true". Microsoft Entra sends none:
    # its optional claim xms_edov (the email's domain is verified by the tenant that owns it)
    # says the same, where the tenant's admin turned it on.
    vouched = claims.get("email_verified", claims.get("xms_edov"))
    verified = email is not None and vouched in (True, "true", 1)
    name = name if isinstance(name, str) and name else None
    return VerifiedIdentity(issuer, subject, email, verified, name)


def _tls(verify: ssl.SSLContext | str | os.PathLike[str] | None) -> ssl.SSLContext | bool:
    # A context, not a path: httpx deprecates verify=<path>, and our tests make warnings errors.
    if verify is None or isinstance(verify, ssl.SSLContext):
        return True if verify is None else verify
    return ssl.create_default_context(cafile=os.fspath(verify))
