"""The AWS port the reconciler depends on; AwsGateway and the in-memory InMemoryAws both provide it."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from bucketwarden.principals import CallerIdentity, ResolvedRole, RoleAssumption
from bucketwarden.spec import ExemptRole


@runtime_checkable
class BucketPolicyPort(Protocol):
    """Whole-document bucket policy I/O. "No policy" is None; failures are AwsError subclasses."""

    def get(
        self,
        bucket: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> str | None: ...

    def put(
        self,
        bucket: str,
        policy_text: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> None: ...

    def delete(
        self,
        bucket: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> None: ...


@runtime_checkable
class IdentityPort(Protocol):
    """The operator's own principal and the RoleIds of exempt roles, cached."""

    def caller_identity(self, assume_role: RoleAssumption | None = None) -> CallerIdentity: ...

    def resolve_role(self, role: ExemptRole, *, assume_role: RoleAssumption | None = None) -> ResolvedRole: ...

    def invalidate(self, ref: str | None = None) -> None: ...


@runtime_checkable
class AwsPort(BucketPolicyPort, IdentityPort, Protocol):
    """Everything the reconciler asks of AWS."""

    def count_calls(self) -> AbstractContextManager[Mapping[str, int]]:
        """Within the block, count the AWS API calls this thread makes (cache hits make none)."""
        ...


class AwsPortWrapper:
    """An AwsPort that hands every call to ``inner``: subclasses override only what they change.

    DryRunAws records writes instead of sending them; OperatorExemptionPort answers "who is the operator".
    """

    def __init__(self, inner: AwsPort) -> None:
        self._inner = inner

    def get(
        self,
        bucket: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> str | None:
        return self._inner.get(bucket, region=region, expected_owner=expected_owner, assume_role=assume_role)

    def put(
        self,
        bucket: str,
        policy_text: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> None:
        self._inner.put(bucket, policy_text, region=region, expected_owner=expected_owner, assume_role=assume_role)

    def delete(
        self,
        bucket: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> None:
        self._inner.delete(bucket, region=region, expected_owner=expected_owner, assume_role=assume_role)

    def caller_identity(self, assume_role: RoleAssumption | None = None) -> CallerIdentity:
        return self._inner.caller_identity(assume_role)

    def resolve_role(self, role: ExemptRole, *, assume_role: RoleAssumption | None = None) -> ResolvedRole:
        return self._inner.resolve_role(role, assume_role=assume_role)

    def invalidate(self, ref: str | None = None) -> None:
        self._inner.invalidate(ref)

    def count_calls(self) -> AbstractContextManager[Mapping[str, int]]:
        return self._inner.count_calls()
