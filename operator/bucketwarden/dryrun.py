"""``plan`` is ``apply`` against an AWS port that does not write: one decision path for plan, apply, live and offline.

Live, ``DryRunAws`` wraps the real gateway: reads go to AWS, writes are recorded and never sent. Offline,
``offline_aws`` seeds an ``InMemoryAws`` with the buckets (and the ``--existing-policy`` file) and
``OfflineReconciler`` takes the identities from the command line instead of STS and IAM. Either way the
reconciler's own lint, verify, size and lockout checks decide, so every verdict is the one ``apply`` would give.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bucketwarden.aws import AwsPort, AwsPortWrapper, FakeRole, InMemoryAws
from bucketwarden.principals import CallerIdentity, ResolvedRole, RoleAssumption
from bucketwarden.reconciler import Claim, Reconciler
from bucketwarden.spec import ProtectedBucketSpec


@dataclass(frozen=True, slots=True)
class SkippedWrite:
    api: str  # "PutBucketPolicy" or "DeleteBucketPolicy"
    bucket: str
    policy_text: str | None = None


class DryRunAws(AwsPortWrapper):
    """An AwsPort that reads through ``inner`` and records writes instead of sending them."""

    def __init__(self, inner: AwsPort) -> None:
        super().__init__(inner)
        self.skipped: list[SkippedWrite] = []

    def put(
        self,
        bucket: str,
        policy_text: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> None:
        self.skipped.append(SkippedWrite("PutBucketPolicy", bucket, policy_text))

    def delete(
        self,
        bucket: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> None:
        self.skipped.append(SkippedWrite("DeleteBucketPolicy", bucket))


OFFLINE_ROLE_ID = "AROA" + "OFFLINE" + "0" * 10  # the RoleId form, 21 characters; offline, never written

Identities = tuple[Sequence[ResolvedRole], CallerIdentity | None]


class OfflineReconciler(Reconciler):
    """The reconciler, with exempt roles and the operator given (``--role-id``, ``--operator-user-id``).

    Only the identity step differs: without ``--operator-user-id`` there is no operator to exempt, as
    in ``render``. Observe, merge, lint, verify, the size limit and the plan are the shared code.
    """

    def __init__(self, aws: AwsPort, identities: Callable[[ProtectedBucketSpec], Identities]) -> None:
        super().__init__(aws)
        self._identities = identities

    def _resolve(self, spec: ProtectedBucketSpec, claim: Claim) -> tuple[list[ResolvedRole], CallerIdentity | None]:
        roles, operator = self._identities(spec)
        return list(roles), operator


def _role_from_arn(arn: str) -> FakeRole:
    # arn:PARTITION:iam::ACCOUNT:role/PATH/NAME; the spec's validation guarantees the shape.
    account = arn.split(":")[4]
    resource = arn.split(":", 5)[5].removeprefix("role")
    path, _, name = resource.rpartition("/")
    return FakeRole(name=name, path=path + "/", account=account, role_id=OFFLINE_ROLE_ID)


def offline_aws(
    specs: Sequence[ProtectedBucketSpec], policies: Mapping[str, str | None], *, account: str
) -> InMemoryAws:
    """An in-memory AWS holding each spec's bucket (with its policy from ``policies``, by bucket name).

    A role named in ``assumeRoleArn`` exists, so offline runs take the same path as live ones; each
    bucket is owned by its ``expectedBucketOwner`` when one is set, as the live run would require.
    """
    aws = InMemoryAws(account=account)
    for spec in specs:
        aws.create_bucket(
            spec.bucket_name, owner=spec.expected_bucket_owner or account, policy=policies.get(spec.bucket_name)
        )
        if spec.assume_role_arn:
            role = _role_from_arn(spec.assume_role_arn)
            aws.roles[(role.account, role.name.lower())] = role
    return aws
