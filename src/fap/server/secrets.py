"""Server secrets: the local blob store's signing key today, identity providers' client secrets
later. Never settings: settings are printed and passed around, secrets are not.

Each secret has a name (its key in a Secrets Manager secret) and an environment variable, and is
taken from the first of these that has it:

1. the environment variable (``FAP_BLOB_SIGNING_KEY``);
2. the file the variable plus ``_FILE`` names (``FAP_BLOB_SIGNING_KEY_FILE=/run/secrets/…``), as
   Docker and systemd hand secrets over;
3. the secret store ``--secrets`` names: ``aws-sm://SECRET_ID?region=R&endpoint=URL`` is AWS
   Secrets Manager, a secret whose SecretString is a JSON object of named secrets
   (``{"blob_signing_key": "…"}``), read with credentials from the standard AWS chain;
4. the secret's own default, where it has one: the blob signing key is made on first start and
   kept in ``DATA_DIR/blob-signing.key``.

The store is read once, at start. A secret that is named but cannot be read — no such secret, no
permission, not a JSON object, an unreadable file — stops the start with one sentence.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, unquote

from fap.config import ServerSettings
from fap.errors import ConfigError

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

__all__ = (
    "BLOB_SIGNING_KEY",
    "AwsSecretsManager",
    "Secret",
    "SecretStore",
    "ServerSecrets",
)

logger = logging.getLogger(__name__)

_SCHEME = "aws-sm://"
# A signing key shorter than SHA-256's own block of entropy would be the weak link of every URL.
_MIN_KEY_BYTES = 32
# Start-up waits for the store at most about this long before it says why it cannot.
_AWS_TIMEOUTS: dict[str, Any] = {
    "connect_timeout": 5,
    "read_timeout": 10,
    "retries": {"max_attempts": 2},
}


@dataclass(frozen=True, slots=True)
class Secret:
    name: str  # the key in the secret store's JSON object
    env: str  # the environment variable; env + "_FILE" names a file that holds it

    @property
    def file_env(self) -> str:
        return f"{self.env}_FILE"


BLOB_SIGNING_KEY = Secret("blob_signing_key", "FAP_BLOB_SIGNING_KEY")


class SecretStore(Protocol):
    """Where named secrets are kept outside the server's machine."""

    @property
    def description(self) -> str:
        """How messages name the store, e.g. ``aws-sm://fap/server``."""
        ...

    async def fetch(self) -> Mapping[str, str]:
        """Every named secret the store holds; raise ConfigError if it cannot be read."""
        ...


class AwsSecretsManager:
    """One AWS Secrets Manager secret holding a JSON object of named secrets."""

    def __init__(self, secret_id: str, region: str | None, endpoint: str | None) -> None:
        self.secret_id = secret_id
        self.region = region
        self.endpoint = endpoint

    @classmethod
    def from_url(cls, url: str) -> AwsSecretsManager:
        """``aws-sm://SECRET_ID[?region=R][&endpoint=URL]``; SECRET_ID is a name or an ARN."""
        if not url.startswith(_SCHEME):
            raise ConfigError(
                f"The secret store {url!r} is not supported; name an AWS Secrets Manager secret "
                "as aws-sm://SECRET_ID?region=REGION."
            )
        # Not urlsplit: an ARN (arn:aws:secretsmanager:…) is no host[:port].
        secret_id, _, query = url.removeprefix(_SCHEME).partition("?")
        secret_id = unquote(secret_id).strip("/")
        if not secret_id:
            raise ConfigError(f"The secret store {url!r} names no secret: aws-sm://SECRET_ID.")
        params = parse_qs(query, keep_blank_values=True)
        unknown = sorted(set(params) - {"region", "endpoint"})
        if unknown:
            raise ConfigError(
                f"The secret store {url!r} has an unknown parameter {unknown[0]!r}; "
                "it takes region and endpoint."
            )
        region = params.get("region", [""])[-1] or None
        endpoint = params.get("endpoint", [""])[-1] or None
        return cls(secret_id, region, endpoint)

    @property
    def description(self) -> str:
        return f"{_SCHEME}{self.secret_id}"

    async def fetch(self) -> Mapping[str, str]:
        answer = await self._get_secret_value()
        text = answer.get("SecretString")
        if not isinstance(text, str):
            raise ConfigError(
                f"The secret {self.description} holds binary data; it must hold a JSON object "
                'of named secrets, e.g. {"blob_signing_key": "…"}.'
            )
        try:
            values = json.loads(text)
        except json.JSONDecodeError:
            values = None
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise ConfigError(
                f"The secret {self.description} is not a JSON object of named text secrets, "
                'e.g. {"blob_signing_key": "…"}.'
            )
        return values

    async def _get_secret_value(self) -> dict[str, Any]:
        # Imported here: the AWS SDK is a third of a second of every server's start, and only a
        # server whose secrets are in AWS Secrets Manager needs it.
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            NoRegionError,
        )

        where = self.description
        try:
            session = get_session()
            async with session.create_client(
                "secretsmanager",
                region_name=self.region,
                endpoint_url=self.endpoint,
                config=AioConfig(**_AWS_TIMEOUTS),
            ) as client:
                answer: dict[str, Any] = await client.get_secret_value(SecretId=self.secret_id)
                return answer
        except ClientError as error:
            raise ConfigError(_refusal(where, error)) from error
        except NoRegionError as error:
            raise ConfigError(
                f"The secret {where} needs a region: add ?region=REGION to --secrets, or set "
                "AWS_REGION."
            ) from error
        except NoCredentialsError as error:
            raise ConfigError(
                f"No AWS credentials were found to read the secret {where}; provide them the "
                "standard way (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, a role)."
            ) from error
        except BotoCoreError as error:
            raise ConfigError(
                f"AWS Secrets Manager could not be asked for the secret {where}: "
                f"{str(error).rstrip('.')}."
            ) from error


def _refusal(where: str, error: ClientError) -> str:
    details = error.response.get("Error", {})
    code = str(details.get("Code", "an error"))
    message = str(details.get("Message", "")).rstrip(".")
    if code == "ResourceNotFoundException":
        return (
            f"The secret {where} does not exist in AWS Secrets Manager; create it or fix --secrets."
        )
    if code in (
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
    ):
        return (
            f"AWS Secrets Manager refused to read the secret {where} ({code}: {message}); "
            "the server's role needs secretsmanager:GetSecretValue on it."
        )
    return f"AWS Secrets Manager could not read the secret {where} ({code}: {message})."


class ServerSecrets:
    """The server's secrets from the environment, files and a secret store (see the module)."""

    def __init__(self, environ: Mapping[str, str], store: SecretStore | None = None) -> None:
        self._environ = dict(environ)
        self._store = store
        self._stored: Mapping[str, str] | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls, settings: ServerSettings, environ: Mapping[str, str] | None = None
    ) -> ServerSecrets:
        """The secrets ``settings.secrets`` names, besides the environment (this process's
        unless ``environ`` is given)."""
        store = AwsSecretsManager.from_url(settings.secrets) if settings.secrets else None
        return cls(os.environ if environ is None else environ, store)

    async def load(self) -> None:
        """Read the secret store, once; raise ConfigError if it cannot be read."""
        async with self._lock:
            if self._stored is None:
                self._stored = await self._store.fetch() if self._store is not None else {}
                if self._store is not None:
                    logger.info(
                        "read %d server secrets from %s", len(self._stored), self._store.description
                    )

    async def get(self, secret: Secret) -> tuple[str, str] | None:
        """The secret's value and where it came from, or None if nothing provides it."""
        if value := self._environ.get(secret.env):
            return value, secret.env
        if path := self._environ.get(secret.file_env):
            return await _read_file(Path(path), secret.file_env), f"{path} ({secret.file_env})"
        await self.load()
        assert self._stored is not None  # load() fetched it
        if value := self._stored.get(secret.name):
            assert self._store is not None  # only a store fills _stored
            return value, f"{self._store.description} (key {secret.name})"
        return None

    async def blob_signing_key(self) -> bytes | None:
        """The local blob store's HMAC key, if one is provided; None: use the data dir's."""
        found = await self.get(BLOB_SIGNING_KEY)
        if found is None:
            return None
        value, origin = found
        try:
            key = bytes.fromhex(value.strip())
        except ValueError:
            key = b""
        if len(key) < _MIN_KEY_BYTES:
            raise ConfigError(
                f"The blob signing key from {origin} must be at least {_MIN_KEY_BYTES} bytes "
                f"written in hexadecimal ({2 * _MIN_KEY_BYTES} digits); make one with "
                "`openssl rand -hex 32`."
            )
        logger.info("the blob signing key comes from %s", origin)
        return key


async def _read_file(path: Path, variable: str) -> str:
    try:
        text = await asyncio.to_thread(path.read_text)
    except OSError as error:
        raise ConfigError(
            f"The secret file {path} that {variable} names cannot be read: "
            f"{error.strerror or error}."
        ) from error
    value = text.strip()
    if not value:
        raise ConfigError(f"The secret file {path} that {variable} names is empty.")
    return value
