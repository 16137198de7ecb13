"""Which keys of a provider's JWKS may verify its ID tokens, and by which algorithms.

Asymmetric signatures only, and only the algorithms the key's type allows, narrowed to the key's
own ``alg`` when it names one: the token's header never widens them. So ``none`` never verifies,
and neither does HS*: the classic forgery, a token "signed" by HMAC with the provider's public key
as the secret, finds no key that allows HS256. An ``oct`` key (a shared secret), an encryption key
and a key that carries its private part are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

if TYPE_CHECKING:
    from jwt.algorithms import AllowedPublicKeys

__all__ = ("SigningKey", "allowed_algorithms", "find_key", "signing_keys")

_RSA = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}  # ES512 is P-521, not a typo
_EDWARDS = ("Ed25519", "Ed448")


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str | None
    public: AllowedPublicKeys
    algorithms: tuple[str, ...]  # from the key, never from a token


def signing_keys(jwks: Iterable[dict[str, Any]]) -> tuple[SigningKey, ...]:
    """The keys of a JWKS's ``keys`` that may verify signatures; the others are left out."""
    keys = []
    for jwk in jwks:
        if not (algorithms := allowed_algorithms(jwk)):
            continue
        try:
            public = jwt.PyJWK(jwk, algorithms[0]).key
        except jwt.PyJWTError:
            continue  # a malformed key, or one of a curve we lack: the others still count
        kid = jwk.get("kid")
        keys.append(SigningKey(kid if isinstance(kid, str) else None, public, algorithms))
    return tuple(keys)


def allowed_algorithms(jwk: dict[str, Any]) -> tuple[str, ...]:
    """The algorithms ``jwk`` may verify; () if it may verify none."""
    if jwk.get("use", "sig") != "sig" or "d" in jwk:  # an encryption key, or a private one
        return ()
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "RSA":
        allowed: tuple[str, ...] = _RSA
    elif kty == "EC" and crv in _EC:
        allowed = (_EC[crv],)
    elif kty == "OKP" and crv in _EDWARDS:
        allowed = ("EdDSA",)
    else:
        return ()
    alg = jwk.get("alg")
    return allowed if alg is None else tuple(name for name in allowed if name == alg)


def find_key(keys: tuple[SigningKey, ...], kid: str | None) -> SigningKey | None:
    """The key named ``kid``; for a token without one, the only key, if there is only one."""
    if kid is None:  # OpenID Connect Core 10.1: a kid may be left out only when there is one key
        return keys[0] if len(keys) == 1 else None
    return next((key for key in keys if key.kid == kid), None)
