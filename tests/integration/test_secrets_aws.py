"""Server secrets from AWS Secrets Manager, read from a real Secrets Manager API (moto in server
mode, standing in for LocalStack): the key is used, and what cannot be read is one sentence."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.support.moto import MotoServer
from tests.support.processes import ServerProcess, fap_argv, free_port

from fap.config import ServerSettings
from fap.errors import ConfigError
from fap.server.secrets import ServerSecrets

KEY = secrets.token_hex(32)


@pytest.fixture
def aws_env(aws_api: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """This process's AWS chain pointed at moto's credentials, nothing of the real machine's."""
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    for name, value in aws_api.env.items():
        monkeypatch.setenv(name, value)
    yield aws_api.env


def new_secret(aws_api: MotoServer, **fields: object) -> str:
    name = f"fap/test/{secrets.token_hex(4)}"
    aws_api.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(fields))
    return name


def url(aws_api: MotoServer, secret_id: str) -> str:
    return f"aws-sm://{secret_id}?region=us-east-1&endpoint={aws_api.endpoint}"


async def read_key(secret_url: str) -> bytes | None:
    return await ServerSecrets.from_settings(
        ServerSettings(secrets=secret_url), environ={}
    ).blob_signing_key()


async def test_the_signing_key_is_read_from_secrets_manager(
    aws_api: MotoServer, aws_env: dict[str, str]
) -> None:
    secret_id = new_secret(aws_api, blob_signing_key=KEY, oidc_client_secret="later")
    assert await read_key(url(aws_api, secret_id)) == bytes.fromhex(KEY)


async def test_a_secret_by_arn_is_read_too(aws_api: MotoServer, aws_env: dict[str, str]) -> None:
    secret_id = new_secret(aws_api, blob_signing_key=KEY)
    arn = aws_api.client("secretsmanager").describe_secret(SecretId=secret_id)["ARN"]
    assert await read_key(url(aws_api, arn)) == bytes.fromhex(KEY)


async def test_a_missing_secret_is_one_sentence(
    aws_api: MotoServer, aws_env: dict[str, str]
) -> None:
    with pytest.raises(ConfigError) as raised:
        await read_key(url(aws_api, "fap/no-such-secret"))
    assert str(raised.value) == (
        "The secret aws-sm://fap/no-such-secret does not exist in AWS Secrets Manager; "
        "create it or fix --secrets."
    )


async def test_a_secret_that_is_not_a_json_object_is_refused(
    aws_api: MotoServer, aws_env: dict[str, str]
) -> None:
    name = f"fap/test/{secrets.token_hex(4)}"
    aws_api.client("secretsmanager").create_secret(Name=name, SecretString=KEY)
    with pytest.raises(ConfigError) as raised:
        await read_key(url(aws_api, name))
    assert str(raised.value) == (
        f"The secret aws-sm://{name} is not a JSON object of named text secrets, "
        'e.g. {"blob_signing_key": "…"}.'
    )


async def test_a_binary_secret_is_refused(aws_api: MotoServer, aws_env: dict[str, str]) -> None:
    name = f"fap/test/{secrets.token_hex(4)}"
    aws_api.client("secretsmanager").create_secret(Name=name, SecretBinary=b"\x00\x01")
    with pytest.raises(ConfigError, match="holds binary data"):
        await read_key(url(aws_api, name))


async def test_no_region_is_one_sentence(
    aws_api: MotoServer, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ConfigError) as raised:
        await read_key(f"aws-sm://fap/x?endpoint={aws_api.endpoint}")
    assert str(raised.value) == (
        "The secret aws-sm://fap/x needs a region: add ?region=REGION to --secrets, or set "
        "AWS_REGION."
    )


async def test_no_credentials_is_one_sentence(
    aws_api: MotoServer, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as raised:
        await read_key(url(aws_api, "fap/x"))
    assert str(raised.value).startswith("No AWS credentials were found to read the secret")


# -- fap serve ------------------------------------------------------------------------------------


@pytest.fixture
def serve(
    tmp_path: Path, aws_api: MotoServer, start_server: Callable[..., ServerProcess]
) -> Callable[..., ServerProcess]:
    def start(secret_id: str) -> ServerProcess:
        env = {**aws_api.env, "AWS_CONFIG_FILE": "/nonexistent"}
        return start_server("--secrets", url(aws_api, secret_id), env=env)

    return start


def test_fap_serve_signs_blob_urls_with_the_key_from_secrets_manager(
    aws_api: MotoServer, serve: Callable[..., ServerProcess]
) -> None:
    secret_id = new_secret(aws_api, blob_signing_key=KEY)
    server = serve(secret_id)
    assert f"the blob signing key comes from aws-sm://{secret_id}" in server.log()
    assert not (server.data_dir / "blob-signing.key").exists()


def test_fap_serve_stops_at_start_with_one_sentence_when_the_secret_is_missing(
    tmp_path: Path, aws_api: MotoServer
) -> None:
    done = subprocess.run(
        fap_argv(
            "serve",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "data"),
            "--secrets",
            url(aws_api, "fap/missing"),
        ),
        env={**aws_api.env, "AWS_CONFIG_FILE": "/nonexistent", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: The secret aws-sm://fap/missing does not exist in AWS Secrets Manager; "
        "create it or fix --secrets."
    )
    assert "Traceback" not in done.stderr
