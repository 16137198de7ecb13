"""Server secrets: the environment, then a file, then the secret store, then the data dir's own key;
whatever is named but cannot be used is one clear sentence."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.unit.server.harness import running_server

from fap.config import ServerSettings
from fap.errors import ConfigError
from fap.server.blobs import LocalBlobStore
from fap.server.blobs.signing import UrlSigner
from fap.server.secrets import BLOB_SIGNING_KEY, AwsSecretsManager, ServerSecrets

KEY = "11" * 32
OTHER_KEY = "22" * 32
STORED_KEY = "33" * 32


class MemoryStore:
    """A secret store held in memory: the precedence rules, without a network."""

    description = "memory://secrets"

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values
        self.fetches = 0

    async def fetch(self) -> Mapping[str, str]:
        self.fetches += 1
        return self.values


async def signing_key(environ: Mapping[str, str], stored: Mapping[str, str] | None = None) -> str:
    store = MemoryStore(stored) if stored is not None else None
    key = await ServerSecrets(environ, store).blob_signing_key()
    return "" if key is None else key.hex()


# -- where a secret comes from ------------------------------------------------------------------


async def test_the_environment_comes_first(tmp_path: Path) -> None:
    file = tmp_path / "key"
    file.write_text(OTHER_KEY)
    environ = {"FAP_BLOB_SIGNING_KEY": KEY, "FAP_BLOB_SIGNING_KEY_FILE": str(file)}
    assert await signing_key(environ, {"blob_signing_key": STORED_KEY}) == KEY


async def test_then_the_file_the_environment_names(tmp_path: Path) -> None:
    file = tmp_path / "key"
    file.write_text(f"{OTHER_KEY}\n")
    environ = {"FAP_BLOB_SIGNING_KEY_FILE": str(file)}
    assert await signing_key(environ, {"blob_signing_key": STORED_KEY}) == OTHER_KEY


async def test_then_the_secret_store() -> None:
    assert await signing_key({}, {"blob_signing_key": STORED_KEY, "other": "x"}) == STORED_KEY


async def test_then_nothing_and_the_data_dir_key_is_used() -> None:
    assert await signing_key({}, {"oidc_client_secret": "x"}) == ""
    assert await signing_key({}) == ""


async def test_the_store_is_read_once() -> None:
    store = MemoryStore({"blob_signing_key": STORED_KEY})
    secrets = ServerSecrets({}, store)
    await secrets.load()
    await secrets.blob_signing_key()
    await secrets.get(BLOB_SIGNING_KEY)
    assert store.fetches == 1


# -- what cannot be used ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "zz" * 32, "11" * 31])
async def test_a_short_or_non_hex_signing_key_is_refused(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        await signing_key({"FAP_BLOB_SIGNING_KEY": value})
    assert str(raised.value) == (
        "The blob signing key from FAP_BLOB_SIGNING_KEY must be at least 32 bytes written in "
        "hexadecimal (64 digits); make one with `openssl rand -hex 32`."
    )


async def test_a_bad_key_in_the_store_names_the_store() -> None:
    with pytest.raises(
        ConfigError, match=re.escape("from memory://secrets (key blob_signing_key)")
    ):
        await signing_key({}, {"blob_signing_key": "short"})


async def test_a_missing_secret_file_is_one_sentence(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as raised:
        await signing_key({"FAP_BLOB_SIGNING_KEY_FILE": str(missing)})
    assert str(raised.value) == (
        f"The secret file {missing} that FAP_BLOB_SIGNING_KEY_FILE names cannot be read: "
        "No such file or directory."
    )


async def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="names is empty"):
        await signing_key({"FAP_BLOB_SIGNING_KEY_FILE": str(empty)})


# -- naming the store ---------------------------------------------------------------------------


def test_an_aws_secrets_manager_url_names_the_secret_region_and_endpoint() -> None:
    store = AwsSecretsManager.from_url(
        "aws-sm://prod/fap/server?region=eu-west-1&endpoint=http://localhost:4566"
    )
    assert (store.secret_id, store.region, store.endpoint) == (
        "prod/fap/server",
        "eu-west-1",
        "http://localhost:4566",
    )
    assert store.description == "aws-sm://prod/fap/server"


def test_an_arn_is_a_secret_id_too() -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:fap-AbCdEf"
    store = AwsSecretsManager.from_url(f"aws-sm://{arn}")
    assert (store.secret_id, store.region, store.endpoint) == (arn, None, None)


@pytest.mark.parametrize(
    ("url", "sentence"),
    [
        (
            "vault://fap",
            "The secret store 'vault://fap' is not supported; name an AWS Secrets Manager "
            "secret as aws-sm://SECRET_ID?region=REGION.",
        ),
        (
            "aws-sm://?region=x",
            "The secret store 'aws-sm://?region=x' names no secret: aws-sm://SECRET_ID.",
        ),
        (
            "aws-sm://fap?regoin=x",
            "The secret store 'aws-sm://fap?regoin=x' has an unknown parameter 'regoin'; it "
            "takes region and endpoint.",
        ),
    ],
)
def test_a_bad_secret_store_url_is_one_sentence(url: str, sentence: str) -> None:
    with pytest.raises(ConfigError) as raised:
        ServerSecrets.from_settings(ServerSettings(secrets=url), environ={})
    assert str(raised.value) == sentence


# -- the server uses it ---------------------------------------------------------------------------


async def test_the_local_blob_store_signs_with_the_provided_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAP_BLOB_SIGNING_KEY", KEY)
    data = tmp_path / "data"
    async with running_server(data) as server:
        blobs = server.services.blobs
        assert isinstance(blobs, LocalBlobStore)
        url = await blobs.presign_get("uploads/x/result.age", 60)
        signed, _, signature = urlsplit(url).query.rpartition("&sig=")
        signer = UrlSigner(bytes.fromhex(KEY))
        assert signer.verify(signature.encode(), "GET", "uploads/x/result.age", signed.encode())
    assert not (data / "blob-signing.key").exists()  # no key of its own was made


async def test_without_a_provided_key_the_data_dir_keeps_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAP_BLOB_SIGNING_KEY", raising=False)
    monkeypatch.delenv("FAP_BLOB_SIGNING_KEY_FILE", raising=False)
    async with running_server(tmp_path / "data"):
        pass
    assert len(bytes.fromhex((tmp_path / "data" / "blob-signing.key").read_text())) == 32
