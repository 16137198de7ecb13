"""``--storage``: which object store a URL names, and one sentence for a URL that names none."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.server.harness import settings_for_tests

from fap.errors import ConfigError
from fap.server.blobs import (
    LocalBlobStore,
    LocalLocation,
    S3Location,
    blob_store_for,
    parse_storage_url,
)
from fap.server.blobs.s3 import S3BlobStore
from fap.server.services import Services


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("file:///srv/fap/blobs", LocalLocation(Path("/srv/fap/blobs"))),
        ("file://localhost/srv/with%20space", LocalLocation(Path("/srv/with space"))),
        ("s3://fap-blobs", S3Location("fap-blobs", "", None, None)),
        ("s3://fap-blobs/", S3Location("fap-blobs", "", None, None)),
        (
            "s3://fap-blobs/team/a/?region=eu-west-1",
            S3Location("fap-blobs", "team/a", None, "eu-west-1"),
        ),
        (
            "s3://fap.blobs/p?endpoint=http://127.0.0.1:8333/&region=us-east-1",
            S3Location("fap.blobs", "p", "http://127.0.0.1:8333", "us-east-1"),
        ),
        (
            "s3://fap-blobs?endpoint=https%3A%2F%2Fs3.example.com",
            S3Location("fap-blobs", "", "https://s3.example.com", None),
        ),
    ],
)
def test_a_storage_url_names_a_directory_or_a_bucket(
    url: str, location: LocalLocation | S3Location
) -> None:
    assert parse_storage_url(url) == location


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("gs://bucket", "not supported; write file:///PATH or s3://BUCKET"),
        ("/srv/blobs", "not supported"),
        ("", "not supported"),
        ("file://relative/path", "absolute path"),
        ("file:///srv?x=1", "absolute path"),
        ("s3://ab", "not an S3 bucket name"),
        ("s3://Upper-Case", "not an S3 bucket name"),
        ("s3://under_score", "not an S3 bucket name"),
        ("s3://a..b", "not an S3 bucket name"),
        ("s3://192.168.1.10", "not an S3 bucket name"),
        ("s3://bucket/a//b", "empty, . or .. part"),
        ("s3://bucket/a/../b", "empty, . or .. part"),
        ("s3://bucket?endpoint=localhost:8333", "not a URL"),
        ("s3://bucket?endpoint=ftp://host", "not a URL"),
        ("s3://bucket?region=Not_A_Region", "not an AWS region"),
        ("s3://bucket?bucket=other", "takes only endpoint and region"),
        ("s3://bucket?region=a&region=b", "more than once"),
        ("s3://bucket?region", "malformed"),
    ],
)
def test_a_storage_url_that_names_no_store_is_one_sentence(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=r"\.$") as raised:
        parse_storage_url(url)
    assert words in str(raised.value)


def test_credentials_never_travel_in_the_url_nor_in_its_error() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_storage_url("s3://AKIAKEY:s3cr3t@bucket?endpoint=http://127.0.0.1:1")
    assert "AWS chain" in str(raised.value)
    assert "s3cr3t" not in str(raised.value)


def test_keys_go_under_the_prefix() -> None:
    assert S3Location("b-1", "team/a", None, None).key("uploads/x") == "team/a/uploads/x"
    assert S3Location("b-1", "", None, None).key("uploads/x") == "uploads/x"


def test_the_factory_builds_the_store_the_url_names(tmp_path: Path) -> None:
    common = {"secret_path": tmp_path / "key", "base_url": "http://x"}
    default = blob_store_for("", default_root=tmp_path / "blobs", **common)
    assert isinstance(default, LocalBlobStore) and default.root == tmp_path / "blobs"
    elsewhere = blob_store_for(f"file://{tmp_path}/other", default_root=tmp_path, **common)
    assert isinstance(elsewhere, LocalBlobStore) and elsewhere.root == tmp_path / "other"
    s3 = blob_store_for("s3://fap-blobs/p?region=eu-west-1", default_root=tmp_path, **common)
    assert isinstance(s3, S3BlobStore) and s3.location.prefix == "p"


def test_the_server_refuses_an_unknown_store_before_it_starts(tmp_path: Path) -> None:
    settings = settings_for_tests(tmp_path, storage="ftp://files.example.com/fap")
    with pytest.raises(ConfigError, match="not supported"):
        Services.from_settings(settings)
