"""Cached, read-only facts for the AWS Backup readiness checks: bucket versioning and a role's S3 permissions.

Each fact costs at most one call per bucket (GetBucketVersioning) or per role (ListAttachedRolePolicies) per
TTL; only a role without both AWS managed S3 backup policies costs more, once: ListRolePolicies and one
GetRolePolicy per inline policy. A role's trust policy needs no call: iam:GetRole already returned it.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from bucketwarden.aws._buckets import BucketReader
from bucketwarden.aws._cache import Clock, TtlCache
from bucketwarden.aws._errors import map_client_error
from bucketwarden.aws._session import ClientFactory
from bucketwarden.principals import RoleAssumption

DEFAULT_READINESS_TTL_SECONDS = 600.0
S3_BACKUP_MANAGED_POLICIES = ("AWSBackupServiceRolePolicyForS3Backup", "AWSBackupServiceRolePolicyForS3Restore")


@dataclass(frozen=True, slots=True)
class RolePermissions:
    """What is attached to a role: managed policy names, and inline policy documents (JSON) if they were read."""

    managed: tuple[str, ...]
    inline: tuple[str, ...] = ()


def _policy_text(document: Any) -> str:
    if isinstance(document, str):
        return urllib.parse.unquote(document)
    return json.dumps(document, sort_keys=True)


class ReadinessReader:
    """Versioning of buckets and permissions of roles, each kept ``ttl_seconds``; errors are never kept."""

    def __init__(
        self,
        factory: ClientFactory,
        buckets: BucketReader,
        *,
        ttl_seconds: float = DEFAULT_READINESS_TTL_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self._factory = factory
        self._buckets = buckets
        self._versioning: TtlCache[tuple[RoleAssumption | None, str], str | None] = TtlCache(
            ttl=ttl_seconds, clock=clock
        )
        self._permissions: TtlCache[tuple[RoleAssumption | None, str], RolePermissions] = TtlCache(
            ttl=ttl_seconds, clock=clock
        )

    def bucket_versioning(
        self,
        bucket: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> str | None:
        return self._versioning.get(
            (assume_role, bucket),
            lambda: self._buckets.versioning(
                bucket, region=region, expected_owner=expected_owner, assume_role=assume_role
            ),
        )

    def role_permissions(self, role_name: str, *, assume_role: RoleAssumption | None = None) -> RolePermissions:
        return self._permissions.get((assume_role, role_name), lambda: self._fetch(role_name, assume_role))

    def invalidate(self) -> None:
        self._versioning.invalidate()
        self._permissions.invalidate()

    def _fetch(self, role_name: str, assume_role: RoleAssumption | None) -> RolePermissions:
        iam = self._factory.iam(assume_role)
        try:
            managed: list[str] = []
            params: dict[str, Any] = {"RoleName": role_name}
            while True:
                page = iam.list_attached_role_policies(**params)
                managed += [p["PolicyName"] for p in page.get("AttachedPolicies", [])]
                if not page.get("IsTruncated"):
                    break
                params["Marker"] = page["Marker"]
        except Exception as exc:
            raise map_client_error(exc, api="ListAttachedRolePolicies") from exc
        if all(name in managed for name in S3_BACKUP_MANAGED_POLICIES):
            return RolePermissions(tuple(managed))
        try:
            names = iam.list_role_policies(RoleName=role_name).get("PolicyNames", [])
        except Exception as exc:
            raise map_client_error(exc, api="ListRolePolicies") from exc
        inline = []
        for name in names:
            try:
                document = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
            except Exception as exc:
                raise map_client_error(exc, api="GetRolePolicy") from exc
            inline.append(_policy_text(document))
        return RolePermissions(tuple(managed), tuple(inline))
