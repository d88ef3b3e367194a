"""AWS Backup readiness checks on the embedded AWS: Warnings on status, never blocking, cached, switchable off."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bucketwarden.aws import S3_BACKUP_MANAGED_POLICIES, AwsGateway, ManualClock
from bucketwarden.readiness import ROLE_LACKS_S3_PERMISSIONS, ROLE_NOT_ASSUMABLE, VERSIONING_NOT_ENABLED
from bucketwarden.reconciler import Reconciler, ReconcileResult
from bucketwarden.spec import ProtectedBucketSpec
from tests.aws._harness import AdminClients
from tests.shared import TRUST_POLICY

ROLE = "AWSBackupDefaultServiceRole"
TTL = 600.0
READINESS_CODES = {VERSIONING_NOT_ENABLED, ROLE_NOT_ASSUMABLE, ROLE_LACKS_S3_PERMISSIONS}


def spec(bucket: str, role: str = ROLE) -> ProtectedBucketSpec:
    return ProtectedBucketSpec.model_validate(
        {"bucketName": bucket, "allowedSourceIps": ["192.0.2.0/24"], "exemptRoles": [{"name": role}]}
    )


def codes(result: ReconcileResult) -> set[str]:
    return {f.code for f in result.findings if f.code in READINESS_CODES}


def attach_managed(admin: AdminClients, role: str) -> None:
    # moto ships no AWS Backup managed policies; policies of the same names stand in for them.
    for name in S3_BACKUP_MANAGED_POLICIES:
        doc = json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        )
        arn = admin.iam.create_policy(PolicyName=name, PolicyDocument=doc)["Policy"]["Arn"]
        admin.iam.attach_role_policy(RoleName=role, PolicyArn=arn)


@pytest.fixture
def role(admin: AdminClients, moto: Any) -> str:
    admin.iam.create_role(RoleName=ROLE, Path="/service-role/", AssumeRolePolicyDocument=TRUST_POLICY)
    return ROLE


def test_readiness_versioning_off_is_a_warning_then_fixed_after_the_ttl(
    gateway: AwsGateway, admin: AdminClients, clock: ManualClock, role: str
) -> None:
    attach_managed(admin, role)
    admin.s3.create_bucket(Bucket="ready-versioning")
    reconciler = Reconciler(gateway, readiness=gateway.readiness)

    first = reconciler.reconcile(spec("ready-versioning"))
    assert first.outcome == "Updated" and first.ready  # never blocking
    assert codes(first) == {VERSIONING_NOT_ENABLED}
    warning = next(f for f in first.findings if f.code == VERSIONING_NOT_ENABLED)
    assert warning.severity == "Warning" and "put-bucket-versioning" in warning.message
    assert first.aws_calls["GetBucketVersioning"] == 1

    admin.s3.put_bucket_versioning(Bucket="ready-versioning", VersioningConfiguration={"Status": "Enabled"})
    cached = reconciler.reconcile(spec("ready-versioning"))
    assert codes(cached) == {VERSIONING_NOT_ENABLED}  # cached: at most one call per bucket per TTL
    assert "GetBucketVersioning" not in cached.aws_calls
    assert "ListAttachedRolePolicies" not in cached.aws_calls

    clock.advance(TTL + 1)
    fixed = reconciler.reconcile(spec("ready-versioning"))
    assert codes(fixed) == set()
    assert fixed.aws_calls.get("GetBucketVersioning") == 1


@pytest.mark.parametrize(
    ("trust", "expected"),
    [
        pytest.param(TRUST_POLICY, set(), id="trusts-backup"),
        pytest.param(
            json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
                    ],
                }
            ),
            {ROLE_NOT_ASSUMABLE},
            id="trusts-ec2-only",
        ),
    ],
)
def test_readiness_trust_policy_must_let_backup_assume_the_role(
    gateway: AwsGateway, admin: AdminClients, trust: str, expected: set[str]
) -> None:
    admin.iam.create_role(RoleName="TrustCheckRole", AssumeRolePolicyDocument=trust)
    attach_managed(admin, "TrustCheckRole")
    admin.s3.create_bucket(Bucket="ready-trust")
    admin.s3.put_bucket_versioning(Bucket="ready-trust", VersioningConfiguration={"Status": "Enabled"})
    result = Reconciler(gateway, readiness=gateway.readiness).reconcile(spec("ready-trust", "TrustCheckRole"))
    assert codes(result) == expected
    assert result.ready


@pytest.mark.parametrize(
    ("setup", "expected", "calls"),
    [
        pytest.param("managed", set(), {"ListAttachedRolePolicies": 1}, id="managed-policies"),
        pytest.param(
            "inline-s3-all",
            set(),
            {"ListAttachedRolePolicies": 1, "ListRolePolicies": 1, "GetRolePolicy": 1},
            id="inline-grants-s3-star",
        ),
        pytest.param(
            "inline-get-only",
            {ROLE_LACKS_S3_PERMISSIONS},
            {"ListAttachedRolePolicies": 1, "ListRolePolicies": 1, "GetRolePolicy": 1},
            id="inline-too-narrow",
        ),
        pytest.param(
            "nothing", {ROLE_LACKS_S3_PERMISSIONS}, {"ListAttachedRolePolicies": 1, "ListRolePolicies": 1}, id="none"
        ),
    ],
)
def test_readiness_exempt_role_needs_the_s3_backup_permissions(
    gateway: AwsGateway, admin: AdminClients, role: str, setup: str, expected: set[str], calls: dict[str, int]
) -> None:
    if setup == "managed":
        attach_managed(admin, role)
    elif setup.startswith("inline"):
        action = "s3:*" if setup == "inline-s3-all" else "s3:GetObject"
        doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}
        admin.iam.put_role_policy(RoleName=role, PolicyName="backup-inline", PolicyDocument=json.dumps(doc))
    reconciler = Reconciler(gateway, readiness=gateway.readiness)
    for bucket in ("ready-perm-a", "ready-perm-b"):
        admin.s3.create_bucket(Bucket=bucket)
        admin.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    gateway.counter.reset()
    results = [reconciler.reconcile(spec(b)) for b in ("ready-perm-a", "ready-perm-b")]
    assert [codes(r) for r in results] == [expected, expected]
    snapshot = gateway.counter.snapshot()
    # Two buckets, one role: the role's permissions are read once.
    assert {api: n for api, n in snapshot.items() if api in calls or ("Role" in api and api != "GetRole")} == calls


def test_readiness_switched_off_makes_no_call_and_no_finding(
    gateway: AwsGateway, admin: AdminClients, role: str
) -> None:
    admin.s3.create_bucket(Bucket="ready-off")
    result = Reconciler(gateway).reconcile(spec("ready-off"))
    assert codes(result) == set()
    assert not {"GetBucketVersioning", "ListAttachedRolePolicies", "ListRolePolicies"} & set(result.aws_calls)
