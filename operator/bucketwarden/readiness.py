"""AWS Backup readiness: cheap, cached, read-only checks on every reconcile, reported as Warnings, never blocking.

- the bucket's versioning is Enabled (AWS Backup for S3 requires it);
- each exempt role's trust policy lets backup.amazonaws.com assume it (from iam:GetRole, already cached);
- each exempt role has the S3 backup permissions: the AWS managed policies attached, or inline ones granting
  the same core actions.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from bucketwarden.aws import S3_BACKUP_MANAGED_POLICIES, RolePermissions
from bucketwarden.errors import AwsError
from bucketwarden.principals import ResolvedRole, RoleAssumption
from bucketwarden.spec import Finding, ProtectedBucketSpec

BACKUP_SERVICE = "backup.amazonaws.com"
VERSIONING_NOT_ENABLED = "BackupVersioningNotEnabled"
ROLE_NOT_ASSUMABLE = "BackupRoleNotAssumableByBackup"
ROLE_LACKS_S3_PERMISSIONS = "BackupRoleLacksS3Permissions"
READINESS_NOT_CHECKED = "BackupReadinessNotChecked"

# The core S3 actions of AWSBackupServiceRolePolicyForS3Backup and ...ForS3Restore (AWS managed policy reference).
S3_BACKUP_ACTIONS: tuple[str, ...] = (
    "s3:GetInventoryConfiguration",
    "s3:PutInventoryConfiguration",
    "s3:ListBucketVersions",
    "s3:ListBucket",
    "s3:GetBucketVersioning",
    "s3:GetBucketNotification",
    "s3:PutBucketNotification",
    "s3:GetBucketLocation",
    "s3:GetBucketTagging",
    "s3:GetObject",
    "s3:GetObjectVersion",
)
S3_RESTORE_ACTIONS: tuple[str, ...] = ("s3:PutObject", "s3:ListBucket", "s3:GetBucketVersioning")


class ReadinessPort(Protocol):
    """What the checks read; ``bucketwarden.aws.ReadinessReader`` (``AwsGateway.readiness``) provides it."""

    def bucket_versioning(
        self,
        bucket: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> str | None: ...

    def role_permissions(self, role_name: str, *, assume_role: RoleAssumption | None = None) -> RolePermissions: ...


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(document: str) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(document)
    except ValueError:
        return []
    statements = parsed.get("Statement", []) if isinstance(parsed, dict) else []
    return [s for s in _as_list(statements) if isinstance(s, dict)]


def _matches(patterns: Iterable[Any], action: str) -> bool:
    return any(isinstance(p, str) and fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)


def trust_allows_backup(trust_policy: str | None) -> bool | None:
    """Does the trust policy let AWS Backup assume the role? None when there is no document to judge."""
    if trust_policy is None:
        return None
    allowed = denied = False
    for s in _statements(trust_policy):
        principal = s.get("Principal")
        services = _as_list(principal.get("Service", [])) if isinstance(principal, dict) else []
        if principal != "*" and BACKUP_SERVICE not in services:
            continue
        if not _matches(_as_list(s.get("Action", [])), "sts:AssumeRole"):
            continue
        if s.get("Effect") == "Deny":
            denied = True
        elif s.get("Effect") == "Allow":
            allowed = True
    return allowed and not denied


def missing_s3_actions(permissions: RolePermissions) -> list[str]:
    """The core backup and restore actions no attached policy grants ([] when the managed policies are there)."""
    if all(name in permissions.managed for name in S3_BACKUP_MANAGED_POLICIES):
        return []
    granted: list[Any] = []
    for document in permissions.inline:
        for s in _statements(document):
            if s.get("Effect") == "Allow" and "NotAction" not in s:
                granted += _as_list(s.get("Action", []))
    needed = dict.fromkeys(S3_BACKUP_ACTIONS + S3_RESTORE_ACTIONS)
    return [a for a in needed if not _matches(granted, a)]


def _not_checked(what: str, exc: AwsError) -> Finding:
    return Finding(
        severity="Info",
        code=READINESS_NOT_CHECKED,
        message=f"AWS Backup readiness of {what} not checked: {exc.message} (grant the read, or switch the checks "
        "off with BUCKETWARDEN_BACKUP_READINESS_CHECKS=false)",
    )


def check_readiness(
    port: ReadinessPort,
    spec: ProtectedBucketSpec,
    roles: Sequence[ResolvedRole],
    *,
    assume_role: RoleAssumption | None = None,
) -> list[Finding]:
    """Every readiness finding for one bucket and its exempt roles. Read errors become Info findings."""
    findings: list[Finding] = []
    try:
        versioning = port.bucket_versioning(
            spec.bucket_name,
            region=spec.region,
            expected_owner=spec.expected_bucket_owner,
            assume_role=assume_role,
        )
    except AwsError as exc:
        findings.append(_not_checked(f"bucket {spec.bucket_name}", exc))
    else:
        if versioning != "Enabled":
            state = "never enabled" if versioning is None else versioning
            findings.append(
                Finding(
                    severity="Warning",
                    code=VERSIONING_NOT_ENABLED,
                    message=f"bucket versioning is {state}: AWS Backup for S3 requires it Enabled, so backups of "
                    f"{spec.bucket_name} fail (aws s3api put-bucket-versioning --bucket {spec.bucket_name} "
                    "--versioning-configuration Status=Enabled)",
                )
            )
    for role in roles:
        if trust_allows_backup(role.trust_policy) is False:
            findings.append(
                Finding(
                    severity="Warning",
                    code=ROLE_NOT_ASSUMABLE,
                    message=f"exempt role {role.name} cannot be assumed by {BACKUP_SERVICE}: its trust policy has "
                    "no Allow sts:AssumeRole for that service, so AWS Backup cannot use it",
                )
            )
        try:
            missing = missing_s3_actions(port.role_permissions(role.name, assume_role=assume_role))
        except AwsError as exc:
            findings.append(_not_checked(f"role {role.name}", exc))
            continue
        if missing:
            findings.append(
                Finding(
                    severity="Warning",
                    code=ROLE_LACKS_S3_PERMISSIONS,
                    message=f"exempt role {role.name} lacks S3 backup permissions ({', '.join(missing[:4])}"
                    f"{', ...' if len(missing) > 4 else ''}): attach {' and '.join(S3_BACKUP_MANAGED_POLICIES)}",
                )
            )
    return findings
