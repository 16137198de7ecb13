#!/usr/bin/env python3
"""Provision what a fap server needs on LocalStack (or any AWS API): its bucket and the bucket's
lifecycle rule, its server secret in Secrets Manager, and a least-privilege IAM policy and role.

Run by the LocalStack init hook (``init/ready.d/fap.sh``); by hand, against any endpoint:

    python localstack/provision.py --endpoint http://localhost:4566
    python localstack/provision.py --only s3 --endpoint http://127.0.0.1:8333 --bucket fap

Every part is idempotent: running it again changes nothing that is already right (an existing
secret keeps its values; only missing ones are added). Needs botocore alone (LocalStack's own
Python has it; so does any environment with fap installed), and credentials from the standard
AWS chain (LocalStack takes any: AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

PARTS = ("secrets", "s3", "iam")  # in this order: the policy names the secret's ARN
# The store answers these when it does not support a lifecycle rule (or a part of one).
_UNSUPPORTED = frozenset({"NotImplemented", "MalformedXML", "InvalidArgument", "InvalidRequest"})


@dataclass
class Options:
    endpoint: str | None
    region: str
    bucket: str
    prefix: str
    secret_id: str
    role_name: str
    expire_days: int
    abort_multipart_days: int
    parts: tuple[str, ...]


@dataclass
class Report:
    """What was done, one line per step, and what the store could not do."""

    lines: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(f"fap provision: {line}", flush=True)


# -- documents (pure, tested on their own) ------------------------------------------------------


def uploads_prefix(prefix: str) -> str:
    """Where fap keeps every upload's objects (``uploads/{id}/…``) under the storage prefix."""
    return f"{prefix}/uploads/" if prefix else "uploads/"


def lifecycle_rules(
    prefix: str, expire_days: int, abort_multipart_days: int
) -> list[dict[str, Any]]:
    """The second line of defence behind fap's own clean-up: whatever is still under the uploads
    prefix after ``expire_days`` goes, and multipart uploads left incomplete are aborted."""
    return [
        {
            "ID": "fap-expire-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": uploads_prefix(prefix)},
            "Expiration": {"Days": expire_days},
        },
        {
            "ID": "fap-abort-incomplete-multipart",
            "Status": "Enabled",
            "Filter": {"Prefix": f"{prefix}/" if prefix else ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": abort_multipart_days},
        },
    ]


def secret_arn_pattern(region: str, account: str, secret_id: str) -> str:
    """The ARN of a secret not created yet: Secrets Manager appends six random characters."""
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}-??????"


def server_policy(bucket: str, prefix: str, secret_arn: str) -> dict[str, Any]:
    """What ``fap serve`` does with AWS, and nothing more: sign PUTs and GETs of objects under its
    prefix (the signature carries the server's permissions), read sizes, delete and list them,
    and read its one secret."""
    objects = f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*"
    listing: dict[str, Any] = {
        "Sid": "FapListItsPrefix",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": f"arn:aws:s3:::{bucket}",
    }
    if prefix:
        listing["Condition"] = {"StringLike": {"s3:prefix": [f"{prefix}/*"]}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "FapObjects",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
                "Resource": objects,
            },
            listing,
            {
                "Sid": "FapServerSecret",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": secret_arn,
            },
        ],
    }


def trust_policy(account: str) -> dict[str, Any]:
    """Who may assume the server role: principals of this account that are allowed to (on
    LocalStack, any). On AWS, narrow it to the service that runs fap (ECS tasks, EC2)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


# -- the parts ------------------------------------------------------------------------------------


def provision_s3(client: Any, options: Options, report: Report) -> None:
    bucket = options.bucket
    create: dict[str, Any] = {"Bucket": bucket}
    if options.region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": options.region}
    try:
        client.create_bucket(**create)
        report.say(f"bucket {bucket} created")
    except ClientError as error:
        if _code(error) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
        report.say(f"bucket {bucket} exists")
    rules = lifecycle_rules(options.prefix, options.expire_days, options.abort_multipart_days)
    # Some S3 servers take expiration but not the abort of multipart uploads: try all, then less.
    for attempt in (rules, rules[:1]):
        try:
            client.put_bucket_lifecycle_configuration(
                Bucket=bucket, LifecycleConfiguration={"Rules": attempt}
            )
        except ClientError as error:
            if _code(error) not in _UNSUPPORTED:
                raise
            report.unsupported.append(
                f"{' + '.join(rule['ID'] for rule in attempt)}: {_code(error)}"
            )
            continue
        applied = ", ".join(rule["ID"] for rule in attempt)
        report.say(
            f"lifecycle of {bucket}: {applied} (objects under {uploads_prefix(options.prefix)} "
            f"expire after {options.expire_days} days)"
        )
        break
    else:
        report.say(
            f"lifecycle of {bucket}: not supported by this S3 server; fap's own clean-up task "
            "is the only one deleting old objects"
        )
    for missing in report.unsupported:
        report.say(f"not supported by this S3 server: {missing}")


def provision_secrets(client: Any, options: Options, report: Report) -> str:
    """Create the server's secret, or add the values it lacks; answer its ARN."""
    wanted = {"blob_signing_key": os.environ.get("FAP_BLOB_SIGNING_KEY") or secrets.token_hex(32)}
    try:
        current = client.get_secret_value(SecretId=options.secret_id)
    except ClientError as error:
        if _code(error) != "ResourceNotFoundException":
            raise
        created = client.create_secret(Name=options.secret_id, SecretString=json.dumps(wanted))
        report.say(f"secret {options.secret_id} created with {', '.join(sorted(wanted))}")
        return str(created["ARN"])
    values = json.loads(current.get("SecretString") or "{}")
    missing = {name: value for name, value in wanted.items() if name not in values}
    if missing:
        client.put_secret_value(
            SecretId=options.secret_id, SecretString=json.dumps({**values, **missing})
        )
        report.say(f"secret {options.secret_id}: added {', '.join(sorted(missing))}")
    else:
        report.say(f"secret {options.secret_id} exists; its values are kept")
    return str(current["ARN"])


def provision_iam(
    iam: Any, account: str, secret_arn: str, options: Options, report: Report
) -> dict[str, Any]:
    """The server role with its one policy; answer the policy document."""
    document = server_policy(options.bucket, options.prefix, secret_arn)
    name = f"{options.role_name}-policy"
    policy_arn = f"arn:aws:iam::{account}:policy/{name}"
    try:
        iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))
        report.say(f"policy {name} created")
    except ClientError as error:
        if _code(error) != "EntityAlreadyExists":
            raise
        _replace_policy_document(iam, policy_arn, document)
        report.say(f"policy {name} updated")
    try:
        iam.create_role(
            RoleName=options.role_name,
            AssumeRolePolicyDocument=json.dumps(trust_policy(account)),
            Description="fap serve: presign under its bucket prefix, read its secret",
        )
        report.say(f"role {options.role_name} created")
    except ClientError as error:
        if _code(error) != "EntityAlreadyExists":
            raise
        report.say(f"role {options.role_name} exists")
    iam.attach_role_policy(RoleName=options.role_name, PolicyArn=policy_arn)
    report.say(f"role {options.role_name} has policy {name}")
    return document


def _replace_policy_document(iam: Any, policy_arn: str, document: dict[str, Any]) -> None:
    # A managed policy keeps at most five versions: make room before adding the new default.
    versions = iam.list_policy_versions(PolicyArn=policy_arn)["Versions"]
    for old in sorted(versions, key=lambda v: v["CreateDate"])[: max(0, len(versions) - 4)]:
        if not old["IsDefaultVersion"]:
            iam.delete_policy_version(PolicyArn=policy_arn, VersionId=old["VersionId"])
    iam.create_policy_version(
        PolicyArn=policy_arn, PolicyDocument=json.dumps(document), SetAsDefault=True
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# -- the command ----------------------------------------------------------------------------------


def parse(argv: Sequence[str], environ: dict[str, str]) -> Options:
    env = environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--endpoint",
        default=env("FAP_AWS_ENDPOINT") or env("AWS_ENDPOINT_URL"),
        help="the AWS API to provision (default: $AWS_ENDPOINT_URL, else AWS itself)",
    )
    parser.add_argument(
        "--region",
        default=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or "us-east-1",
        help="the region (default: $AWS_REGION, else us-east-1)",
    )
    parser.add_argument("--bucket", default=env("FAP_BUCKET", "fap"), help="(default: fap)")
    parser.add_argument(
        "--prefix",
        default=env("FAP_PREFIX", "fap"),
        help="fap's keys live under it, as in s3://BUCKET/PREFIX (default: fap)",
    )
    parser.add_argument(
        "--secret-id", default=env("FAP_SECRET_ID", "fap/server"), help="(default: fap/server)"
    )
    parser.add_argument(
        "--role-name", default=env("FAP_ROLE_NAME", "fap-server"), help="(default: fap-server)"
    )
    parser.add_argument(
        "--expire-days",
        type=int,
        default=int(env("FAP_EXPIRE_DAYS", "35")),
        help="the lifecycle rule deletes uploads' objects after this many days; keep it "
        "longer than fap serve --keep-results (default: 35)",
    )
    parser.add_argument(
        "--abort-multipart-days",
        type=int,
        default=int(env("FAP_ABORT_MULTIPART_DAYS", "1")),
        help="incomplete multipart uploads are aborted after this many days (default: 1)",
    )
    parser.add_argument(
        "--only",
        default=env("FAP_PROVISION_ONLY", ",".join(PARTS)),
        help=f"the parts to provision, comma-separated: {', '.join(PARTS)} (default: all)",
    )
    args = parser.parse_args(argv)
    parts = tuple(part.strip() for part in args.only.split(",") if part.strip())
    if unknown := [part for part in parts if part not in PARTS]:
        parser.error(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    if args.expire_days < 1 or args.abort_multipart_days < 1:
        parser.error("--expire-days and --abort-multipart-days must be 1 or more")
    return Options(
        endpoint=args.endpoint or None,
        region=args.region,
        bucket=args.bucket,
        prefix=args.prefix.strip("/"),
        secret_id=args.secret_id,
        role_name=args.role_name,
        expire_days=args.expire_days,
        abort_multipart_days=args.abort_multipart_days,
        parts=tuple(part for part in PARTS if part in parts),
    )


def provision(options: Options) -> Report:
    session = botocore.session.get_session()

    def client(service: str, **config: Any) -> Any:
        return session.create_client(
            service,
            region_name=options.region,
            endpoint_url=options.endpoint,
            config=Config(retries={"mode": "standard", "max_attempts": 3}, **config),
        )

    report = Report()
    secret_arn: str | None = None
    if "secrets" in options.parts:
        secret_arn = provision_secrets(client("secretsmanager"), options, report)
    if "s3" in options.parts:
        provision_s3(client("s3", s3={"addressing_style": "path"}), options, report)
    if "iam" in options.parts:
        account = str(client("sts").get_caller_identity()["Account"])
        if secret_arn is None:
            secret_arn = _existing_secret_arn(client("secretsmanager"), options, account)
        provision_iam(client("iam"), account, secret_arn, options, report)
    return report


def _existing_secret_arn(client: Any, options: Options, account: str) -> str:
    try:
        return str(client.describe_secret(SecretId=options.secret_id)["ARN"])
    except ClientError as error:
        if _code(error) != "ResourceNotFoundException":
            raise
        return secret_arn_pattern(options.region, account, options.secret_id)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(sys.argv[1:] if argv is None else argv, dict(os.environ))
    try:
        provision(options)
    except (BotoCoreError, ClientError) as error:
        where = options.endpoint or "AWS"
        print(f"fap provision: error: {where} refused or failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
