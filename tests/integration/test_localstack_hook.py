"""The LocalStack init hook (localstack/init/ready.d/fap.sh → localstack/provision.py), run as
LocalStack runs it: its S3 part against the test S3 server (SeaweedFS), its secrets and IAM parts
against a real AWS API (moto in server mode), and its IAM policy read for least privilege."""

from __future__ import annotations

import importlib.util
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.support.moto import MotoServer
from tests.support.seaweedfs import SeaweedFS, s3_client

from fap.config import ServerSettings
from fap.server.secrets import ServerSecrets

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "localstack" / "init" / "ready.d" / "fap.sh"
SCRIPT = ROOT / "localstack" / "provision.py"


def load_provision() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fap_localstack_provision", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


provision = load_provision()


def run_hook(endpoint: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The hook as LocalStack runs it: an executable script, settings in the environment."""
    done = subprocess.run(
        [str(HOOK), *args],
        env={
            "PATH": "/usr/bin:/bin",
            "FAP_PYTHON": sys.executable,  # this run's Python has botocore, as LocalStack's has
            "FAP_AWS_ENDPOINT": endpoint,
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
            "AWS_EC2_METADATA_DISABLED": "true",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


# -- S3, against the test S3 server ---------------------------------------------------------------


@pytest.fixture
def bucket(seaweedfs: SeaweedFS) -> Iterator[str]:
    """A bucket name nobody created yet; the bucket is deleted after the test if it was made."""
    name = f"fap-hook-{secrets.token_hex(5)}"
    yield name
    client = s3_client(seaweedfs.endpoint, seaweedfs.access_key, seaweedfs.secret_key)
    try:
        client.delete_bucket(Bucket=name)
    except ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchBucket":
            raise


def test_the_s3_part_makes_the_bucket_and_its_lifecycle_rule(
    seaweedfs: SeaweedFS, bucket: str
) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": seaweedfs.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweedfs.secret_key,
        "FAP_BUCKET": bucket,
        "FAP_PREFIX": "team-a/fap",
        "FAP_EXPIRE_DAYS": "40",
    }
    done = run_hook(seaweedfs.endpoint, env, "--only", "s3")
    assert f"bucket {bucket} created" in done.stdout

    client = s3_client(seaweedfs.endpoint, seaweedfs.access_key, seaweedfs.secret_key)
    client.head_bucket(Bucket=bucket)
    rules = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    by_id = {rule["ID"]: rule for rule in rules}
    expire = by_id["fap-expire-uploads"]
    assert (expire["Status"], expire["Filter"], expire["Expiration"]) == (
        "Enabled",
        {"Prefix": "team-a/fap/uploads/"},
        {"Days": 40},
    )
    # SeaweedFS 4.48 keeps the abort rule too (older versions refused lifecycle rules; the hook
    # then reports what it could not set, see the test below).
    abort = by_id["fap-abort-incomplete-multipart"]
    assert abort["Filter"] == {"Prefix": "team-a/fap/"}
    assert abort["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert "not supported" not in done.stdout


def test_the_s3_part_run_again_changes_nothing(seaweedfs: SeaweedFS, bucket: str) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": seaweedfs.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweedfs.secret_key,
        "FAP_BUCKET": bucket,
    }
    run_hook(seaweedfs.endpoint, env, "--only", "s3")
    client = s3_client(seaweedfs.endpoint, seaweedfs.access_key, seaweedfs.secret_key)
    client.put_object(Bucket=bucket, Key="fap/uploads/x/result.age", Body=b"sealed")
    again = run_hook(seaweedfs.endpoint, env, "--only", "s3")
    assert f"bucket {bucket} exists" in again.stdout
    assert client.get_object(Bucket=bucket, Key="fap/uploads/x/result.age")["Body"].read() == (
        b"sealed"
    )
    client.delete_object(Bucket=bucket, Key="fap/uploads/x/result.age")


class StoreWithoutLifecycle:
    """An S3 server that has no lifecycle rules at all, as older SeaweedFS and MinIO-likes."""

    def __init__(self, supports_expiration: bool) -> None:
        self.supports_expiration = supports_expiration
        self.rules: list[dict[str, Any]] = []

    def create_bucket(self, **_: Any) -> None:
        return None

    def put_bucket_lifecycle_configuration(self, **request: Any) -> None:
        rules = request["LifecycleConfiguration"]["Rules"]
        if not self.supports_expiration or any(
            "AbortIncompleteMultipartUpload" in r for r in rules
        ):
            raise ClientError(
                {"Error": {"Code": "NotImplemented", "Message": "not implemented"}},
                "PutBucketLifecycleConfiguration",
            )
        self.rules = rules


@pytest.mark.parametrize("supports_expiration", [True, False])
def test_an_s3_server_without_lifecycle_rules_is_reported_not_fatal(
    supports_expiration: bool,
) -> None:
    options = provision.parse(["--only", "s3"], {})
    store = StoreWithoutLifecycle(supports_expiration)
    report = provision.Report()
    provision.provision_s3(store, options, report)
    assert report.unsupported[0] == (
        "fap-expire-uploads + fap-abort-incomplete-multipart: NotImplemented"
    )
    if supports_expiration:
        assert [rule["ID"] for rule in store.rules] == ["fap-expire-uploads"]
    else:
        assert any("fap's own clean-up task is the only one" in line for line in report.lines)


# -- the IAM policy ----------------------------------------------------------------------------------


def test_the_server_policy_grants_objects_and_listing_under_its_prefix_and_one_secret() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:fap/server-AbCdEf"
    policy = provision.server_policy("fap-bucket", "team-a/fap", arn)
    assert policy["Version"] == "2012-10-17"
    statements = {statement["Sid"]: statement for statement in policy["Statement"]}
    assert set(statements) == {"FapObjects", "FapListItsPrefix", "FapServerSecret"}
    assert all(statement["Effect"] == "Allow" for statement in statements.values())

    objects = statements["FapObjects"]
    assert sorted(objects["Action"]) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    assert objects["Resource"] == "arn:aws:s3:::fap-bucket/team-a/fap/*"

    listing = statements["FapListItsPrefix"]
    assert (listing["Action"], listing["Resource"]) == ("s3:ListBucket", "arn:aws:s3:::fap-bucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["team-a/fap/*"]}}

    secret = statements["FapServerSecret"]
    assert (secret["Action"], secret["Resource"]) == ("secretsmanager:GetSecretValue", arn)


def test_the_server_policy_grants_nothing_beyond_that() -> None:
    policy = provision.server_policy("fap-bucket", "fap", "arn:aws:secretsmanager:r:1:secret:s-x")
    actions: list[str] = []
    for statement in policy["Statement"]:
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
        assert "NotAction" not in statement and "NotResource" not in statement
        found = statement["Action"]
        actions += [found] if isinstance(found, str) else found
        resources = statement["Resource"]
        for resource in [resources] if isinstance(resources, str) else resources:
            # No wildcard reaches beyond the bucket's prefix or the one secret.
            assert resource.startswith(
                (
                    "arn:aws:s3:::fap-bucket/fap/",
                    "arn:aws:s3:::fap-bucket",
                    "arn:aws:secretsmanager:",
                )
            ), resource
            assert resource != "*"
            assert "*" not in resource or resource == "arn:aws:s3:::fap-bucket/fap/*"
    assert sorted(actions) == [
        "s3:DeleteObject",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
        "secretsmanager:GetSecretValue",
    ]
    assert not any("*" in action for action in actions)


def test_a_secret_not_made_yet_is_named_by_its_arn_pattern() -> None:
    assert provision.secret_arn_pattern("eu-west-1", "123456789012", "fap/server") == (
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:fap/server-??????"
    )


# -- secrets and IAM, against a real AWS API -------------------------------------------------------


def test_the_secrets_and_iam_parts_make_a_usable_secret_and_the_server_role(
    aws_api: MotoServer,
) -> None:
    names = secrets.token_hex(4)
    env = {
        **aws_api.env,
        "FAP_SECRET_ID": f"fap/{names}",
        "FAP_ROLE_NAME": f"fap-server-{names}",
        "FAP_BUCKET": "fap-bucket",
        "FAP_PREFIX": "fap",
    }
    done = run_hook(aws_api.endpoint, env, "--only", "secrets,iam")
    assert f"secret fap/{names} created with blob_signing_key" in done.stdout

    manager = aws_api.client("secretsmanager")
    stored = manager.get_secret_value(SecretId=f"fap/{names}")
    key = json.loads(stored["SecretString"])["blob_signing_key"]
    assert len(bytes.fromhex(key)) == 32

    iam = aws_api.client("iam")
    attached = iam.list_attached_role_policies(RoleName=f"fap-server-{names}")["AttachedPolicies"]
    assert [policy["PolicyName"] for policy in attached] == [f"fap-server-{names}-policy"]
    policy_arn = attached[0]["PolicyArn"]
    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]
    assert document["Document"] == provision.server_policy("fap-bucket", "fap", stored["ARN"])

    # Run again (LocalStack restarted with persistence): the key stays, the policy is renewed.
    again = run_hook(aws_api.endpoint, env, "--only", "secrets,iam")
    assert f"secret fap/{names} exists; its values are kept" in again.stdout
    assert json.loads(manager.get_secret_value(SecretId=f"fap/{names}")["SecretString"]) == {
        "blob_signing_key": key
    }
    assert f"policy fap-server-{names}-policy updated" in again.stdout


async def test_fap_serve_reads_the_key_the_hook_stored(
    aws_api: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_id = f"fap/{secrets.token_hex(4)}"
    run_hook(aws_api.endpoint, {**aws_api.env, "FAP_SECRET_ID": secret_id}, "--only", "secrets")
    stored = aws_api.client("secretsmanager").get_secret_value(SecretId=secret_id)
    for name, value in aws_api.env.items():
        monkeypatch.setenv(name, value)
    settings = ServerSettings(
        secrets=f"aws-sm://{secret_id}?region=us-east-1&endpoint={aws_api.endpoint}"
    )
    key = await ServerSecrets.from_settings(settings, environ={}).blob_signing_key()
    assert key == bytes.fromhex(json.loads(stored["SecretString"])["blob_signing_key"])


def test_an_unknown_part_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--only", "s4"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown part 's4'; choose from secrets, s3, iam" in done.stderr
