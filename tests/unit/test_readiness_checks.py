"""The pure AWS Backup readiness checks: trust policies, S3 permissions, and read errors as Info findings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bucketwarden.aws import S3_BACKUP_MANAGED_POLICIES, RolePermissions
from bucketwarden.errors import AccessDeniedError
from bucketwarden.principals import BucketTarget, ResolvedRole
from bucketwarden.readiness import (
    READINESS_NOT_CHECKED,
    ROLE_LACKS_S3_PERMISSIONS,
    VERSIONING_NOT_ENABLED,
    check_readiness,
    missing_s3_actions,
    trust_allows_backup,
)
from bucketwarden.spec import ProtectedBucketSpec


def trust(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


BACKUP = {"Service": "backup.amazonaws.com"}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (trust({"Effect": "Allow", "Principal": BACKUP, "Action": "sts:AssumeRole"}), True),
        (
            trust(
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["ec2.amazonaws.com", "backup.amazonaws.com"]},
                    "Action": ["sts:AssumeRole", "sts:TagSession"],
                }
            ),
            True,
        ),
        (trust({"Effect": "Allow", "Principal": BACKUP, "Action": "sts:*"}), True),
        (trust({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}), False),
        (trust({"Effect": "Allow", "Principal": BACKUP, "Action": "sts:AssumeRoleWithWebIdentity"}), False),
        (
            trust(
                {"Effect": "Allow", "Principal": BACKUP, "Action": "sts:AssumeRole"},
                {"Effect": "Deny", "Principal": BACKUP, "Action": "sts:AssumeRole"},
            ),
            False,
        ),
        ("not json", False),
        (None, None),
    ],
    ids=["backup", "list-forms", "sts-star", "ec2-only", "web-identity", "denied", "garbage", "unknown"],
)
def test_trust_allows_backup(document: str | None, expected: bool | None) -> None:
    assert trust_allows_backup(document) is expected


@pytest.mark.parametrize(
    ("permissions", "missing"),
    [
        (RolePermissions(S3_BACKUP_MANAGED_POLICIES), False),
        (RolePermissions(S3_BACKUP_MANAGED_POLICIES[:1]), True),
        (RolePermissions((), (trust({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}),)), False),
        (RolePermissions((), (trust({"Effect": "Allow", "Action": ["s3:Get*", "s3:List*", "s3:Put*"]}),)), False),
        (RolePermissions((), (trust({"Effect": "Allow", "Action": "s3:Get*"}),)), True),
        (RolePermissions((), (trust({"Effect": "Deny", "Action": "s3:*"}),)), True),
    ],
    ids=["managed", "backup-only-managed", "inline-star", "inline-wildcards", "inline-get-only", "inline-deny"],
)
def test_missing_s3_actions(permissions: RolePermissions, missing: bool) -> None:
    assert bool(missing_s3_actions(permissions)) is missing


class DeniedReads:
    def bucket_versioning(self, target: BucketTarget) -> str | None:
        raise AccessDeniedError("GetBucketVersioning was denied", api="GetBucketVersioning")

    def role_permissions(self, role_name: str, **_: Any) -> RolePermissions:
        raise AccessDeniedError("ListAttachedRolePolicies was denied", api="ListAttachedRolePolicies")


class Reads:
    def bucket_versioning(self, target: BucketTarget) -> str | None:
        return "Suspended"

    def role_permissions(self, role_name: str, **_: Any) -> RolePermissions:
        return RolePermissions(())


SPEC = ProtectedBucketSpec.model_validate({"bucketName": "readiness-unit", "allowedSourceIps": ["192.0.2.0/24"]})
ROLE = ResolvedRole("r", "r", "arn:aws:iam::123456789012:role/r", "AROAEXAMPLE", trust_policy=None)


def test_check_readiness_read_errors_are_info_never_warnings() -> None:
    findings = check_readiness(DeniedReads(), SPEC, [ROLE])
    assert [(f.severity, f.code) for f in findings] == [("Info", READINESS_NOT_CHECKED)] * 2
    assert "BUCKETWARDEN_BACKUP_READINESS_CHECKS=false" in findings[0].message


def test_check_readiness_warns_on_suspended_versioning_and_missing_permissions() -> None:
    findings = check_readiness(Reads(), SPEC, [ROLE])
    assert [(f.severity, f.code) for f in findings] == [
        ("Warning", VERSIONING_NOT_ENABLED),
        ("Warning", ROLE_LACKS_S3_PERMISSIONS),
    ]
    assert "Suspended" in findings[0].message
