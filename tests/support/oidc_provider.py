"""A real OpenID Connect provider for the tests: oidc-provider (Node.js) on loopback.

``tests/support/oidc/provider.mjs`` runs it from a JSON config written here: public clients,
accounts, lifetimes, RS256 signing keys, over http or over https with a throwaway CA made here.
The device authorization grant (RFC 8628) is on, and oidc-provider's development pages stand in
for the identity provider's sign-in pages: :meth:`OidcProvider.approve` and
:meth:`OidcProvider.deny` walk them over HTTP as the person at the browser would.

Facts about oidc-provider 9 that shape this module:
- the issuer names the port, so the script listens first (port 0 the first time: the kernel
  chooses, no race for a free port) and reports its issuer as ``READY <issuer>``; a restart
  takes the same port again, so the issuer stays while the keys may change;
- everything it issues lives in its memory: a restart forgets every code, grant and token;
- a refresh token comes only with the ``offline_access`` scope, to a client allowed the
  ``refresh_token`` grant; a public client gets a new one at each refresh (rotation);
- it leaves ``interval`` out of device authorization responses (clients then wait 5 s between
  polls): the script adds ``poll_interval``, and answers ``slow_down`` to a poll sooner than that
  when ``enforce_poll_interval`` is set;
- the claims of ``email`` and ``profile`` go into the ID token only because the script sets
  ``conformIdTokenClaims: false``;
- msal's ``oidc_authority`` takes an issuer only over https and with a path:
  ``https=True, path="/tenant"``; and requests, msal's HTTP, prefers ``REQUESTS_CA_BUNDLE`` (set
  on these machines) to a session's ``verify``: unset it for msal to trust ``ca_path``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwt.algorithms import RSAAlgorithm

from tests.support.processes import wait_until

__all__ = (
    "ALICE",
    "BOB",
    "DEFAULT_SCOPE",
    "DEVICE_CODE_GRANT",
    "DeviceAuthorization",
    "Lifetimes",
    "OidcAccount",
    "OidcClient",
    "OidcProvider",
    "OidcProviderError",
    "TokenError",
    "oidc_provider",
    "rsa_signing_key",
)

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_SCOPE = "openid email profile offline_access"
_SCRIPT_DIR = Path(__file__).parent / "oidc"
_CODE_VERIFICATION_PATH = "/device"  # oidc-provider's routes.code_verification
# A cold start is ~0.8 s on an idle 2-core machine; a busy one may take many times that.
_START_TIMEOUT = 60.0
_STOP_GRACE = 5.0
_HTTP_TIMEOUT = 30.0
# An approval takes 9 requests (user code, confirmation, login, consent, their redirects).
_MAX_STEPS = 16


class OidcProviderError(RuntimeError):
    """The provider could not start, or its pages did not go as a person's sign-in would."""


class TokenError(Exception):
    """An OAuth error answer (RFC 6749 §5.2, RFC 8628 §3.5): ``error`` is its code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class OidcAccount:
    """A person the provider knows; ``subject`` is what they type as login and the ID token's sub."""

    subject: str
    email: str
    email_verified: bool = True
    name: str = ""


@dataclass(frozen=True)
class OidcClient:
    """A public client (no secret), as a CLI is: the device grant, refresh tokens and the code
    grant with loopback redirects (a native client: any port, RFC 8252 §7.3)."""

    client_id: str
    grant_types: tuple[str, ...] = (DEVICE_CODE_GRANT, "refresh_token", "authorization_code")
    redirect_uris: tuple[str, ...] = ("http://127.0.0.1/callback",)

    def metadata(self) -> dict[str, Any]:
        code_flow = "authorization_code" in self.grant_types
        return {
            "client_id": self.client_id,
            "token_endpoint_auth_method": "none",
            "application_type": "native",
            "grant_types": list(self.grant_types),
            "response_types": ["code"] if code_flow else [],
            "redirect_uris": list(self.redirect_uris) if code_flow else [],
        }


@dataclass(frozen=True)
class Lifetimes:
    """Seconds each artifact lives (oidc-provider's ``ttl``)."""

    device_code: int = 600
    access_token: int = 3600
    id_token: int = 3600
    refresh_token: int = 14 * 24 * 3600

    def ttl(self) -> dict[str, int]:
        return {
            "DeviceCode": self.device_code,
            "AccessToken": self.access_token,
            "IdToken": self.id_token,
            "RefreshToken": self.refresh_token,
        }


@dataclass(frozen=True)
class DeviceAuthorization:
    """A device authorization response (RFC 8628 §3.2)."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: float


ALICE = OidcAccount("alice", "alice@example.com", name="Alice Example")
BOB = OidcAccount("bob", "bob@example.com", email_verified=False, name="Bob Example")


def rsa_signing_key() -> dict[str, Any]:
    """A fresh RS256 private JWK with a ``kid`` of its own."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    return {**jwk, "kid": secrets.token_hex(8), "alg": "RS256", "use": "sig"}


class OidcProvider:
    """One oidc-provider process; ``with OidcProvider(directory) as provider:`` starts and stops it.

    Its config, TLS files and log (the script's stdout and stderr) live in ``directory``.
    """

    def __init__(
        self,
        directory: Path,
        *,
        clients: Sequence[OidcClient] = (OidcClient("fap-cli"),),
        accounts: Sequence[OidcAccount] = (ALICE, BOB),
        https: bool = False,
        path: str = "",
        lifetimes: Lifetimes = Lifetimes(),
        poll_interval: float = 1,  # msal takes int(interval): 0 < interval < 1 makes it spin
        enforce_poll_interval: bool = False,
        signing_keys: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self.directory = directory
        self.clients = tuple(clients)
        self.accounts = {account.subject: account for account in accounts}
        self.https = https
        self.path = path.rstrip("/")
        self.lifetimes = lifetimes
        self.poll_interval = poll_interval
        self.enforce_poll_interval = enforce_poll_interval
        self.signing_keys = [dict(key) for key in signing_keys or [rsa_signing_key()]]
        self.log_path = directory / "provider.log"
        self.ca_path: Path | None = None
        self._tls: dict[str, str] | None = None
        self._port = 0
        self._issuer: str | None = None
        self._discovery: dict[str, Any] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._ssl_context: ssl.SSLContext | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self, timeout: float = _START_TIMEOUT) -> OidcProvider:
        node = shutil.which("node")
        if node is None:
            raise OidcProviderError("no `node` on PATH: install Node.js 20.18 or later")
        if not (_SCRIPT_DIR / "node_modules" / "oidc-provider").is_dir():
            raise OidcProviderError(
                f"oidc-provider is not installed in {_SCRIPT_DIR}: run `make install`"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.https and self._tls is None:
            self.ca_path, cert, key = _write_certificates(self.directory)
            self._tls = {"cert": str(cert), "key": str(key)}
        config_path = self.directory / "config.json"
        config_path.write_text(json.dumps(self._config()))
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            # stdin is a pipe held by this process alone: the script exits when it closes, so
            # the provider cannot outlive a test run that was killed.
            self._process = subprocess.Popen(
                [node, str(_SCRIPT_DIR / "provider.mjs"), str(config_path)],
                cwd=_SCRIPT_DIR,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            issuer = self._wait_ready(log_start, timeout)
            self._issuer = issuer
            self._port = httpx.URL(issuer).port or 0
            with self.http_client() as http:
                response = http.get(f"{issuer}/.well-known/openid-configuration")
            response.raise_for_status()
            self._discovery = response.json()
        except BaseException:
            self.stop()
            raise
        return self

    def _config(self) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self._port,
            "path": self.path,
            "tls": self._tls,
            "clients": [client.metadata() for client in self.clients],
            "accounts": [asdict(account) for account in self.accounts.values()],
            "ttl": self.lifetimes.ttl(),
            "poll_interval": self.poll_interval,
            "enforce_poll_interval": self.enforce_poll_interval,
            "jwks": {"keys": self.signing_keys},
        }

    def _wait_ready(self, log_start: int, timeout: float) -> str:
        found: list[str] = []

        def ready() -> bool:
            with self.log_path.open("rb") as log:
                log.seek(log_start)
                for line in log.read().decode(errors="replace").splitlines():
                    if line.startswith("READY "):
                        found.append(line.removeprefix("READY ").strip())
                        return True
            if self._process is None or self._process.poll() is not None:
                raise OidcProviderError(f"oidc-provider exited before it was ready:\n{self.log()}")
            return False

        wait_until(ready, timeout, "oidc-provider to print READY")
        return found[0]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(_STOP_GRACE)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if process.stdin is not None:
            process.stdin.close()

    def restart(self, signing_keys: Sequence[Mapping[str, Any]] | None = None) -> OidcProvider:
        """The same issuer (port, path, CA) again, with new signing keys if given; everything the
        provider had issued is forgotten."""
        self.stop()
        if signing_keys is not None:
            self.signing_keys = [dict(key) for key in signing_keys]
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- what clients see ----------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        assert self._issuer is not None, "the provider has not started"
        return self._issuer

    @property
    def discovery(self) -> dict[str, Any]:
        """The provider's ``/.well-known/openid-configuration``, as fetched at start."""
        assert self._discovery is not None, "the provider has not started"
        return self._discovery

    @property
    def verify(self) -> ssl.SSLContext:
        """What an httpx client verifies this provider's certificate with: the test CA over
        https. Made once: loading a CA bundle costs each new client ~30 ms."""
        if self._ssl_context is None:
            cafile = None if self.ca_path is None else str(self.ca_path)
            self._ssl_context = ssl.create_default_context(cafile=cafile)
        return self._ssl_context

    def http_client(self, **options: Any) -> httpx.Client:
        return httpx.Client(verify=self.verify, timeout=_HTTP_TIMEOUT, **options)

    # -- the client's side of the device grant -------------------------------------------------

    def authorize_device(
        self, client_id: str = "fap-cli", scope: str = DEFAULT_SCOPE
    ) -> DeviceAuthorization:
        """The device authorization request (RFC 8628 §3.1)."""
        with self.http_client() as http:
            response = http.post(
                self.discovery["device_authorization_endpoint"],
                data={"client_id": client_id, "scope": scope},
            )
        body = _oauth_answer(response)
        return DeviceAuthorization(
            device_code=body["device_code"],
            user_code=body["user_code"],
            verification_uri=body["verification_uri"],
            verification_uri_complete=body["verification_uri_complete"],
            expires_in=int(body["expires_in"]),
            interval=float(body.get("interval", 5)),
        )

    def poll_token(
        self,
        client_id: str,
        authorization: DeviceAuthorization,
        *,
        while_pending: Callable[[], None] | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Poll the token endpoint as RFC 8628 §3.4-3.5 asks: once at once, then ``interval``
        seconds after each answer, 5 s more after each ``slow_down``. ``while_pending`` runs once,
        after the first ``authorization_pending``: the person approving while the device polls.
        Any other error is raised as :class:`TokenError` (``access_denied``, ``expired_token``)."""
        interval = authorization.interval
        deadline = time.monotonic() + timeout
        data = {"grant_type": DEVICE_CODE_GRANT, "device_code": authorization.device_code}
        with self.http_client() as http:
            while True:
                try:
                    return self._token(http, client_id, data)
                except TokenError as error:
                    if error.error not in ("authorization_pending", "slow_down"):
                        raise
                    if error.error == "slow_down":
                        interval += 5
                answered = time.monotonic()
                if while_pending is not None:
                    while_pending()
                    while_pending = None
                if answered + interval > deadline:
                    raise TimeoutError(f"no tokens within {timeout:g} s of polling")
                # The protocol's own pacing (RFC 8628 §3.5), not a wait for something to happen.
                time.sleep(max(0.0, answered + interval - time.monotonic()))

    def device_flow(
        self,
        client_id: str = "fap-cli",
        scope: str = DEFAULT_SCOPE,
        *,
        account: str | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """The whole device grant as a CLI and its user go through it: the token response
        (``id_token``, ``access_token``, ``refresh_token`` with ``offline_access``, …)."""
        authorization = self.authorize_device(client_id, scope)
        return self.poll_token(
            client_id,
            authorization,
            while_pending=lambda: self.approve(authorization.user_code, account),
            timeout=timeout,
        )

    def refresh(self, client_id: str, refresh_token: str) -> dict[str, Any]:
        """The refresh token grant (RFC 6749 §6)."""
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        with self.http_client() as http:
            return self._token(http, client_id, data)

    def _token(self, http: httpx.Client, client_id: str, data: dict[str, str]) -> dict[str, Any]:
        response = http.post(
            self.discovery["token_endpoint"], data={"client_id": client_id, **data}
        )
        return _oauth_answer(response)

    # -- the person at the browser -------------------------------------------------------------

    def approve(self, user_code: str, account: str | None = None) -> None:
        """Enter ``user_code`` on the device page, confirm it, sign in as ``account`` (a subject;
        the first account by default) and consent, as the person would in a browser."""
        subject = self._subject(account)
        with self.http_client() as browser:
            start = browser.get(f"{self.issuer}{_CODE_VERIFICATION_PATH}")
            self._walk(browser, start, user_code=user_code, subject=subject)

    def deny(self, user_code: str) -> None:
        """Enter ``user_code`` on the device page and abort at its confirmation."""
        with self.http_client() as browser:
            start = browser.get(f"{self.issuer}{_CODE_VERIFICATION_PATH}")
            self._walk(browser, start, user_code=user_code, subject=None)

    def sign_in(self, authorization_url: str, account: str | None = None) -> str:
        """Open an authorization request (the code grant), sign in as ``account`` and consent:
        the URL the provider sends the browser back to (``redirect_uri`` with ``code`` and
        ``state``), not visited: that last step, ``httpx.get(url)``, is the caller's."""
        subject = self._subject(account)
        with self.http_client() as browser:
            start = browser.get(authorization_url)
            redirect = self._walk(browser, start, user_code=None, subject=subject)
        if redirect is None:
            raise OidcProviderError(f"{authorization_url} ended on a page, not in a redirect")
        return redirect

    def _subject(self, account: str | None) -> str:
        subject = account or next(iter(self.accounts))
        if subject not in self.accounts:
            raise OidcProviderError(f"no account {subject!r}: known are {sorted(self.accounts)}")
        return subject

    def _walk(
        self,
        browser: httpx.Client,
        response: httpx.Response,
        *,
        user_code: str | None,
        subject: str | None,
    ) -> str | None:
        """Follow pages and their forms as a person would, to the device grant's last page (None)
        or to a redirect away from the provider (its URL). ``subject`` None aborts at the device
        confirmation."""
        origin = str(httpx.URL(self.issuer).copy_with(path="/", query=None))
        for _ in range(_MAX_STEPS):
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if not target.startswith(origin):
                    return target
                response = browser.get(target)
                continue
            page = _Page.read(response)
            if page.title == "Sign-in Success":
                return None
            if page.alerts:
                if subject is None and "interrupted" in page.alerts[0]:
                    return None
                raise OidcProviderError(f"{response.url} says: {page.alerts[0]}")
            action, fields = page.form()
            if "confirm" in fields:
                if subject is None:
                    del fields["confirm"]
                    fields["abort"] = "yes"
            elif "user_code" in fields and user_code is not None:
                fields["user_code"] = user_code
            elif fields.get("prompt") == "login" and subject is not None:
                # devInteractions take any password.
                fields.update(login=subject, password="-")
            elif fields.get("prompt") != "consent":
                raise OidcProviderError(f"unexpected page {response.url}: {page.title!r}")
            response = browser.post(urljoin(str(response.url), action), data=fields)
        raise OidcProviderError(f"the sign-in did not end within {_MAX_STEPS} steps")


def _oauth_answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        raise OidcProviderError(
            f"{response.request.url} answered {response.status_code}, not JSON: {response.text[:200]}"
        ) from None
    if "error" in body:
        raise TokenError(body["error"], body.get("error_description", ""))
    response.raise_for_status()
    return body


class _Page(HTMLParser):
    """What a person sees on a page: its title, its alerts (``<p class="red">``), its forms."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.alerts: list[str] = []
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._in: str | None = None

    @classmethod
    def read(cls, response: httpx.Response) -> _Page:
        if response.status_code >= 400:
            raise OidcProviderError(
                f"{response.url} answered {response.status_code}: {response.text[:300]}"
            )
        page = cls()
        page.feed(response.text)
        page.close()
        return page

    def form(self) -> tuple[str, dict[str, str]]:
        if len(self.forms) != 1:
            raise OidcProviderError(f"expected one form on {self.title!r}, found {len(self.forms)}")
        action, fields = self.forms[0]
        return action, dict(fields)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append((attributes.get("action", ""), {}))
        elif tag == "input" and self.forms and attributes.get("name"):
            self.forms[-1][1][attributes["name"]] = attributes.get("value", "")
        elif tag == "title" or (tag == "p" and attributes.get("class") == "red"):
            self._in = tag
            if tag == "p":
                self.alerts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data.strip()
        elif self._in == "p":
            self.alerts[-1] += data.strip()


def _write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA, and a server certificate it signs for 127.0.0.1 and localhost: the CA's
    PEM, the server's certificate and its key."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fap tests' OIDC CA")])
    ca = (
        _certificate(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    server = (
        _certificate(server_name, ca_name, server_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    cert_path = directory / "server.pem"
    key_path = directory / "server-key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


def _certificate(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, now: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        # A little in the past: a clock read a moment apart must not see it as not yet valid.
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@pytest.fixture
def oidc_provider(tmp_path: Path) -> Iterator[Callable[..., OidcProvider]]:
    """Start OIDC providers (``oidc_provider(**options)``, options as :class:`OidcProvider`'s);
    every one is stopped after the test. No Node.js or no oidc-provider fails, never skips."""
    started: list[OidcProvider] = []

    def start(**options: Any) -> OidcProvider:
        provider = OidcProvider(tmp_path / f"oidc-{len(started)}", **options)
        started.append(provider)
        try:
            return provider.start()
        except OidcProviderError as error:
            pytest.fail(str(error), pytrace=False)

    yield start
    for provider in started:
        provider.stop()
