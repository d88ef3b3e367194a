"""Seed recipes for audit tests: each names one kind of bucket an account holds, and builds it in moto."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

OFFICE = ["192.0.2.0/24", "198.51.100.0/24"]
STALE_ROLE_ID = "AROAOLDOLDOLDOLDOLD00"


@dataclass(frozen=True)
class Ids:
    """What policies may name: the backup role and the auditing principal (the operator)."""

    role_id: str
    role_arn: str
    operator_user_id: str


def arns(bucket: str) -> list[str]:
    return [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]


def ip_deny(bucket: str, *, sid: str | None = "SourceIPRestriction001", **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": arns(bucket),
        "Condition": {"NotIpAddress": {"aws:SourceIp": OFFICE}, **condition},
    }
    return {"Sid": sid, **statement} if sid else statement


def policy_for(seed: str, bucket: str, ids: Ids) -> str | None:
    """The policy text of each kind of bucket (None: no policy)."""
    statements: list[dict[str, Any]]
    if seed in ("none", "none-versioned"):
        return None
    if seed == "garbled":
        return "{this is not json"
    if seed == "ip-deny":
        statements = [ip_deny(bucket)]
    elif seed == "ip-deny-no-sid":
        statements = [ip_deny(bucket, sid=None)]
    elif seed == "ip-deny-exempt-role":
        statements = [ip_deny(bucket, StringNotLike={"aws:userId": [f"{ids.role_id}:*"]})]
    elif seed == "ip-deny-exempt-all":
        statements = [
            ip_deny(
                bucket,
                ArnNotLike={"aws:PrincipalArn": [ids.role_arn]},
                StringNotLike={"aws:userId": [ids.operator_user_id]},
            )
        ]
    elif seed == "vpce-deny":
        statements = [ip_deny(bucket, StringNotEquals={"aws:SourceVpce": ["vpce-0123456789abcdef0"]})]
    elif seed == "not-supersedable":
        statements = [{**ip_deny(bucket), "Resource": "*"}]
    elif seed in ("bucketwarden-current", "bucketwarden-stale"):
        role_id = ids.role_id if seed == "bucketwarden-current" else STALE_ROLE_ID
        statements = [
            {
                "Sid": "BucketWardenIpRestriction",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": arns(bucket),
                "Condition": {
                    "StringNotLike": {"aws:userId": [f"{role_id}:*", ids.operator_user_id]},
                    "NotIpAddress": {"aws:SourceIp": OFFICE},
                },
            }
        ]
    elif seed == "allow-only":
        statements = [
            {
                "Sid": "ReadForPartner",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ]
    elif seed == "unknown-operator":
        statements = [
            {
                "Sid": "OddCondition",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": arns(bucket),
                "Condition": {"StringMatchesRegex": {"aws:userId": "AROA.*"}},
            }
        ]
    else:
        raise ValueError(f"unknown seed {seed!r}")
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def seed_bucket(s3: S3Client, bucket: str, seed: str, versioning: str | None, ids: Ids) -> None:
    s3.create_bucket(Bucket=bucket)
    text = policy_for(seed, bucket, ids)
    if text is not None:
        s3.put_bucket_policy(Bucket=bucket, Policy=text)
    if versioning is not None:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        if versioning == "Suspended":
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
