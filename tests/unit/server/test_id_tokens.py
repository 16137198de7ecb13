"""The server's verification of ID tokens, against a real provider: discovery documents and JWKS
served over HTTP on 127.0.0.1, keys made by cryptography, tokens signed by PyJWT (or forged by
hand where PyJWT refuses to forge). A genuine token gives its identity; anything else is refused
in one sentence that never quotes the token; a provider out of reach is IssuerUnavailable."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import logging
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from tests.support.processes import free_port

from fap.issuers import TrustedIssuer
from fap.server.auth.id_tokens import REFETCH_INTERVAL, IdTokenVerifier, VerifiedIdentity
from fap.server.errors import IssuerUnavailable, Unauthorized

CLIENT = "fap-cli"
TENANT = "0b9f7a44-6c3c-4d63-a36c-3d4f7e2a1c55"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class Signer:
    """A provider's signing key: the private half signs tokens, the public half is in its JWKS."""

    private: PrivateKey
    algorithm: str
    kid: str = field(default_factory=lambda: uuid.uuid4().hex)
    jwk_alg: str | None = None  # the JWK's own "alg", if it names one

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        alg = {"alg": self.jwk_alg} if self.jwk_alg else {}
        return {**jwk, "kid": self.kid, "use": "sig", **alg}

    def sign(self, claims: dict[str, Any], kid: str | None = "") -> str:
        headers = {"kid": self.kid if kid == "" else kid} if kid is not None else {}
        return jwt.encode(claims, self.private, algorithm=self.algorithm, headers=headers)

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Provider:
    """Any number of issuers, each under its own path, served by one HTTP server on 127.0.0.1.

    Port 0 is bound when the server is made, so it listens before any test asks: no readiness
    wait, and no port that another process could take in between."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.documents: dict[str, tuple[int, bytes]] = {}
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with provider._lock:
                    provider.hits[self.path] += 1
                    status, body = provider.documents.get(self.path, (404, b"{}"))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that refuses our certificate: the test asserts what it saw

        self._server = Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.base = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        # A short poll: shutdown() waits for it, and every test stops a server.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )

    def __enter__(self) -> Provider:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def publish(self, path: str, *signers: Signer, issuer: str | None = None) -> str:
        """Serve an issuer at ``path`` with ``signers``' keys; its URL. ``issuer``: what its
        discovery document names instead of that URL."""
        url = f"{self.base}{path}"
        discovery = {"issuer": issuer or url, "jwks_uri": f"{url}/keys"}
        self.serve(f"{path}/.well-known/openid-configuration", 200, json.dumps(discovery).encode())
        self.serve(f"{path}/keys", 200, json.dumps({"keys": [s.jwk() for s in signers]}).encode())
        return url

    def serve(self, path: str, status: int, body: bytes) -> None:
        with self._lock:
            self.documents[path] = (status, body)

    def jwks_hits(self, path: str) -> int:
        with self._lock:
            return self.hits[f"{path}/keys"]


class Clock:
    """Monotonic seconds for the verifier's caches, moved by the test alone."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def provider() -> Iterator[Provider]:
    with Provider() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signer(rsa_key: rsa.RSAPrivateKey) -> Signer:
    return Signer(rsa_key, "RS256")


@pytest.fixture
def issuer(provider: Provider, signer: Signer) -> str:
    return provider.publish("/idp", signer)


@pytest.fixture
async def verifier(issuer: str, clock: Clock) -> AsyncIterator[IdTokenVerifier]:
    async with IdTokenVerifier([TrustedIssuer(issuer, CLIENT, "oidc")], clock=clock) as opened:
        yield opened


def claims(issuer: str, **changes: Any) -> dict[str, Any]:
    """Claims of a fresh token for fap; a change to None leaves that claim out."""
    now = int(time.time())
    base = {
        "iss": issuer,
        "aud": CLIENT,
        "sub": "user-1",
        "iat": now,
        "exp": now + 600,
        "email": "Ada.Lovelace@Example.COM",
        "email_verified": True,
        "name": "Ada Lovelace",
    }
    merged = {**base, **changes}
    return {name: value for name, value in merged.items() if value is not None}


def forged(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = f"{part(json.dumps(header).encode())}.{part(json.dumps(payload).encode())}"
    return f"{head}.{part(signature)}"


async def refused(verifier: IdTokenVerifier, token: str) -> str:
    """The sentence a refused token gets, checked to be one sentence that quotes no token."""
    with pytest.raises(Unauthorized) as refusal:
        await verifier.verify(token)
    message = str(refusal.value)
    assert message.endswith("; sign in again.") or message.endswith("providers it trusts.")
    for part in token.split("."):
        assert len(part) < 8 or part not in message
    return message


async def test_a_genuine_token_gives_who_signed_in(
    verifier: IdTokenVerifier, signer: Signer, issuer: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = signer.sign(claims(issuer))
    with caplog.at_level(logging.DEBUG):
        identity = await verifier.verify(token)
    assert identity == VerifiedIdentity(
        issuer=issuer,
        subject="user-1",
        email="ada.lovelace@example.com",
        email_verified=True,
        name="Ada Lovelace",
    )
    assert token not in caplog.text and token.split(".")[2] not in caplog.text


async def test_email_and_name_are_optional(
    verifier: IdTokenVerifier, signer: Signer, issuer: str
) -> None:
    bare = claims(issuer, email=None, email_verified=None, name=None)
    identity = await verifier.verify(signer.sign(bare))
    assert (identity.email, identity.email_verified, identity.name) == (None, False, None)


@pytest.mark.parametrize(
    ("vouching", "verified"),
    [({"xms_edov": True}, True), ({"xms_edov": False}, False), ({}, False)],
)
async def test_an_entra_email_is_verified_only_where_its_tenant_vouches_for_its_domain(
    verifier: IdTokenVerifier, signer: Signer, issuer: str, vouching: dict[str, Any], verified: bool
) -> None:
    entra_like = claims(issuer, email_verified=None, **vouching)  # Entra sends no email_verified
    assert (await verifier.verify(signer.sign(entra_like))).email_verified is verified


@pytest.mark.parametrize(
    ("make", "algorithm"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "PS256"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "ES384"),
        (lambda: ec.generate_private_key(ec.SECP521R1()), "ES512"),
        (ed25519.Ed25519PrivateKey.generate, "EdDSA"),
    ],
    ids=["PS256", "ES256", "ES384", "ES512", "EdDSA"],
)
async def test_every_asymmetric_algorithm_its_key_allows_verifies(
    provider: Provider, clock: Clock, make: Any, algorithm: str
) -> None:
    signer = Signer(make(), algorithm)
    issuer = provider.publish("/keys-of-every-kind", signer)
    async with IdTokenVerifier([TrustedIssuer(issuer, CLIENT, "oidc")], clock=clock) as verifier:
        assert (await verifier.verify(signer.sign(claims(issuer)))).subject == "user-1"


async def test_a_key_that_names_its_algorithm_verifies_no_other(
    provider: Provider, clock: Clock, rsa_key: rsa.RSAPrivateKey
) -> None:
    issuer = provider.publish("/rs256-only", Signer(rsa_key, "RS256", kid="k", jwk_alg="RS256"))
    async with IdTokenVerifier([TrustedIssuer(issuer, CLIENT, "oidc")], clock=clock) as verifier:
        token = Signer(rsa_key, "PS256", kid="k").sign(claims(issuer))
        assert "algorithm" in await refused(verifier, token)


async def test_a_token_without_kid_verifies_when_its_issuer_has_one_key(
    verifier: IdTokenVerifier, signer: Signer, issuer: str
) -> None:
    assert (await verifier.verify(signer.sign(claims(issuer), kid=None))).subject == "user-1"


async def test_an_altered_token_fails_its_signature(
    verifier: IdTokenVerifier, signer: Signer, issuer: str
) -> None:
    header, _, signature = signer.sign(claims(issuer)).split(".")
    other_payload = signer.sign(claims(issuer, sub="admin")).split(".")[1]
    message = await refused(verifier, f"{header}.{other_payload}.{signature}")
    assert "signature does not verify" in message


async def test_a_token_signed_by_a_key_not_in_the_jwks_is_refused(
    verifier: IdTokenVerifier, signer: Signer, issuer: str, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    impostor = Signer(other_rsa_key, "RS256", kid=signer.kid)  # claims the published kid
    assert "signature does not verify" in await refused(verifier, impostor.sign(claims(issuer)))


@pytest.mark.parametrize(
    "audience",
    ["someone-else", ["someone-else"], [CLIENT, "someone-else"]],
    ids=["other", "list-of-other", "several-without-azp"],
)
async def test_a_token_for_another_audience_is_refused(
    verifier: IdTokenVerifier, signer: Signer, issuer: str, audience: object
) -> None:
    message = await refused(verifier, signer.sign(claims(issuer, aud=audience)))
    assert "another application" in message


async def test_several_audiences_verify_when_fap_is_the_authorized_party(
    verifier: IdTokenVerifier, signer: Signer, issuer: str
) -> None:
    token = signer.sign(claims(issuer, aud=[CLIENT, "someone-else"], azp=CLIENT))
    assert (await verifier.verify(token)).subject == "user-1"
    wrong_azp = signer.sign(claims(issuer, aud=[CLIENT, "someone-else"], azp="someone-else"))
    assert "another application" in await refused(verifier, wrong_azp)


async def test_a_token_of_one_trusted_issuer_cannot_pass_for_another(
    provider: Provider, clock: Clock, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    first, second = Signer(rsa_key, "RS256"), Signer(other_rsa_key, "RS256")
    issuers = [provider.publish("/first", first), provider.publish("/second", second)]
    trusted = [TrustedIssuer(url, CLIENT, "oidc") for url in issuers]
    async with IdTokenVerifier(trusted, clock=clock) as verifier:
        assert (await verifier.verify(first.sign(claims(issuers[0])))).issuer == issuers[0]
        # The first issuer's key, and even its kid, are unknown to the second issuer.
        assert "does not publish" in await refused(verifier, first.sign(claims(issuers[1])))
        borrowed_kid = first.sign(claims(issuers[1]), kid=second.kid)
        assert "signature does not verify" in await refused(verifier, borrowed_kid)


async def test_a_token_of_an_untrusted_issuer_is_refused_naming_it(
    verifier: IdTokenVerifier, signer: Signer, issuer: str
) -> None:
    message = await refused(verifier, signer.sign(claims(issuer, iss="https://evil.example")))
    assert "'https://evil.example'" in message and "does not trust" in message
    nameless = await refused(verifier, signer.sign(claims(issuer, iss="x" * 500)))
    assert "x" * 20 not in nameless
    assert "names no issuer" in await refused(verifier, signer.sign(claims(issuer, iss=None)))


async def test_an_expired_token_is_refused(
    verifier: IdTokenVerifier, signer: Signer, issuer: str
) -> None:
    hour_ago = int(time.time()) - 3600
    token = signer.sign(claims(issuer, iat=hour_ago - 600, exp=hour_ago))
    assert await refused(verifier, token) == "The ID token has expired; sign in again."


async def test_a_token_issued_in_the_future_is_refused(
    verifier: IdTokenVerifier, signer: Signer, issuer: str
) -> None:
    hour_on = int(time.time()) + 3600
    token = signer.sign(claims(issuer, iat=hour_on, exp=hour_on + 600))
    assert "dated in the future" in await refused(verifier, token)


async def test_an_unsigned_token_is_refused(
    verifier: IdTokenVerifier, signer: Signer, issuer: str
) -> None:
    token = forged({"alg": "none", "typ": "JWT", "kid": signer.kid}, claims(issuer))
    assert "algorithm" in await refused(verifier, token)


async def test_a_token_signed_by_hmac_with_the_public_key_is_refused(
    verifier: IdTokenVerifier, signer: Signer, issuer: str
) -> None:
    # The classic algorithm confusion: the public key, which anybody has, used as an HMAC secret.
    header = {"alg": "HS256", "typ": "JWT", "kid": signer.kid}
    unsigned = forged(header, claims(issuer)).rsplit(".", 1)[0]
    mac = hmac.new(signer.public_pem(), unsigned.encode(), hashlib.sha256).digest()
    token = forged(header, claims(issuer), mac)
    assert token.startswith(unsigned)
    assert "algorithm" in await refused(verifier, token)


@pytest.mark.parametrize("claim", ["sub", "exp", "iat", "aud"])
async def test_a_token_missing_a_required_claim_is_refused_naming_it(
    verifier: IdTokenVerifier, signer: Signer, issuer: str, claim: str
) -> None:
    token = signer.sign(claims(issuer, **{claim: None}))
    assert (
        await refused(verifier, token) == f"The ID token lacks its {claim!r} claim; sign in again."
    )


@pytest.mark.parametrize("token", ["", "not-a-token", "a.b.c", "x" * 40_000])
async def test_what_is_no_token_at_all_is_refused(verifier: IdTokenVerifier, token: str) -> None:
    await refused(verifier, token)


async def test_an_unknown_kid_refetches_the_keys_once_and_passes_after_a_rotation(
    verifier: IdTokenVerifier,
    provider: Provider,
    signer: Signer,
    issuer: str,
    clock: Clock,
    other_rsa_key: rsa.RSAPrivateKey,
) -> None:
    await verifier.verify(signer.sign(claims(issuer)))
    assert provider.jwks_hits("/idp") == 1
    clock.now += REFETCH_INTERVAL
    rotated = Signer(other_rsa_key, "RS256")
    provider.publish("/idp", rotated)
    assert (await verifier.verify(rotated.sign(claims(issuer)))).subject == "user-1"
    assert provider.jwks_hits("/idp") == 2
    await verifier.verify(rotated.sign(claims(issuer)))
    assert provider.jwks_hits("/idp") == 2  # cached again


async def test_unknown_kids_refetch_the_keys_at_most_once_per_interval(
    verifier: IdTokenVerifier, provider: Provider, signer: Signer, issuer: str, clock: Clock
) -> None:
    await verifier.verify(signer.sign(claims(issuer)))
    clock.now += REFETCH_INTERVAL
    for _ in range(5):
        token = signer.sign(claims(issuer), kid=uuid.uuid4().hex)
        assert "does not publish" in await refused(verifier, token)
    assert provider.jwks_hits("/idp") == 2
    clock.now += REFETCH_INTERVAL / 2
    await refused(verifier, signer.sign(claims(issuer), kid="still-unknown"))
    assert provider.jwks_hits("/idp") == 2
    clock.now += REFETCH_INTERVAL / 2
    await refused(verifier, signer.sign(claims(issuer), kid="unknown-again"))
    assert provider.jwks_hits("/idp") == 3
    assert (await verifier.verify(signer.sign(claims(issuer)))).subject == "user-1"


async def test_a_discovery_document_naming_another_issuer_is_not_used(
    provider: Provider, clock: Clock, signer: Signer
) -> None:
    issuer = provider.publish("/impostor", signer, issuer="https://accounts.google.com")
    async with IdTokenVerifier([TrustedIssuer(issuer, CLIENT, "oidc")], clock=clock) as verifier:
        with pytest.raises(
            IssuerUnavailable, match=r"names the issuer 'https://accounts\.google\.com'"
        ):
            await verifier.verify(signer.sign(claims(issuer)))
    assert provider.jwks_hits("/impostor") == 0


@pytest.mark.parametrize("trouble", ["down", "500", "not-json", "no-usable-key"])
async def test_a_provider_out_of_reach_is_unavailable_not_a_refusal(
    provider: Provider, clock: Clock, signer: Signer, trouble: str
) -> None:
    issuer = provider.publish("/flaky", signer)
    if trouble == "down":
        issuer = f"http://127.0.0.1:{free_port()}/flaky"  # nothing listens there
    elif trouble == "500":
        provider.serve("/flaky/keys", 500, b"{}")
    elif trouble == "not-json":
        provider.serve("/flaky/keys", 200, b"<html>keys</html>")
    else:
        provider.serve(
            "/flaky/keys", 200, json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).encode()
        )
    async with IdTokenVerifier([TrustedIssuer(issuer, CLIENT, "oidc")], clock=clock) as verifier:
        with pytest.raises(IssuerUnavailable):
            await verifier.verify(signer.sign(claims(issuer)))


async def test_a_failed_provider_is_not_asked_again_before_a_backoff(
    provider: Provider, clock: Clock, signer: Signer
) -> None:
    issuer = provider.publish("/failing", signer)
    provider.serve("/failing/keys", 503, b"{}")
    async with IdTokenVerifier([TrustedIssuer(issuer, CLIENT, "oidc")], clock=clock) as verifier:
        for _ in range(3):
            with pytest.raises(IssuerUnavailable):
                await verifier.verify(signer.sign(claims(issuer)))
        assert provider.jwks_hits("/failing") == 1
        clock.now += 1.0
        provider.publish("/failing", signer)  # back
        assert (await verifier.verify(signer.sign(claims(issuer)))).subject == "user-1"
        assert provider.jwks_hits("/failing") == 2


async def test_a_verifier_not_open_is_unavailable(issuer: str, signer: Signer) -> None:
    verifier = IdTokenVerifier([TrustedIssuer(issuer, CLIENT, "oidc")])
    with pytest.raises(IssuerUnavailable, match="not open"):
        await verifier.verify(signer.sign(claims(issuer)))


async def test_microsoft_multi_tenant_accepts_the_tenant_the_token_names_and_no_other(
    provider: Provider, clock: Clock, signer: Signer
) -> None:
    common = provider.publish("/common/v2.0", signer, issuer=f"{provider.base}/{{tenantid}}/v2.0")
    tenant_issuer = f"{provider.base}/{TENANT}/v2.0"
    trusted = TrustedIssuer(common, CLIENT, "microsoft")
    async with IdTokenVerifier([trusted], clock=clock) as verifier:
        identity = await verifier.verify(signer.sign(claims(tenant_issuer, tid=TENANT)))
        assert identity.issuer == tenant_issuer  # the tenant's users stay apart from others'
        other_tenant = str(uuid.uuid4())
        for tid in (other_tenant, None, "../v2.0"):
            await refused(verifier, signer.sign(claims(tenant_issuer, tid=tid)))
        await refused(verifier, signer.sign(claims(common, tid=TENANT)))


async def test_microsoft_multi_tenant_requires_the_template_in_discovery(
    provider: Provider, clock: Clock, signer: Signer
) -> None:
    common = provider.publish("/common/v2.0", signer)  # names itself, not the template
    trusted = TrustedIssuer(common, CLIENT, "microsoft")
    async with IdTokenVerifier([trusted], clock=clock) as verifier:
        token = signer.sign(claims(f"{provider.base}/{TENANT}/v2.0", tid=TENANT))
        with pytest.raises(IssuerUnavailable, match="tenantid"):
            await verifier.verify(token)


async def test_a_provider_on_https_is_trusted_through_the_ca_given(
    tmp_path: Path, clock: Clock, signer: Signer
) -> None:
    ca_file, server_tls = _throwaway_ca(tmp_path)
    with Provider(tls=server_tls) as provider:
        issuer = provider.publish("/tls", signer)
        trusted = [TrustedIssuer(issuer, CLIENT, "oidc")]
        async with IdTokenVerifier(trusted, verify=ca_file, clock=clock) as verifier:
            assert (await verifier.verify(signer.sign(claims(issuer)))).subject == "user-1"
        async with IdTokenVerifier(trusted, clock=clock) as verifier:  # the system's CAs only
            with pytest.raises(IssuerUnavailable, match="could not be fetched"):
                await verifier.verify(signer.sign(claims(issuer)))


def _throwaway_ca(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA file, and a server context whose certificate that CA issued for 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fap test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (directory / name for name in ("ca.pem", "cert.pem", "key.pem"))
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context
