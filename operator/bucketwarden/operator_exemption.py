"""Choose whose principal is exempted as "the operator" when the policy is written from outside the cluster.

The reconciler exempts whoever ``caller_identity()`` says the operator is. Run from a laptop (file mode,
``bootstrap``), that is the person running it, not the in-cluster operator. `OperatorExemptionPort` wraps an
AwsPort so the exempted principal is the operator's IAM role instead: every session of it (``<RoleId>:*``),
with the RoleId resolved through iam:GetRole, so a role created again is followed like any exempt role.
"""

from __future__ import annotations

from bucketwarden.aws import AwsPort, AwsPortWrapper
from bucketwarden.principals import CallerIdentity, ResolvedRole, RoleAssumption
from bucketwarden.spec import ExemptRole

# The session name the operator uses for verification scenarios; the exemption itself covers every session.
OPERATOR_SESSION = "bucketwarden"


def role_session_identity(role: ResolvedRole, session: str = OPERATOR_SESSION) -> CallerIdentity:
    """A CallerIdentity standing for every session of ``role`` (its exempt pattern is ``<RoleId>:*``)."""
    if role.role_id is None:
        raise ValueError(f"role {role.arn} has no RoleId")
    partition = role.arn.split(":")[1]
    arn = f"arn:{partition}:sts::{role.account}:assumed-role/{role.name}/{session}"
    return CallerIdentity(account=role.account, arn=arn, user_id=f"{role.role_id}:{session}")


def resolve_operator_role(aws: AwsPort, role_arn: str) -> CallerIdentity:
    """The in-cluster operator's role, by ARN, resolved to its current RoleId (iam:GetRole)."""
    return role_session_identity(aws.resolve_role(ExemptRole(arn=role_arn)))


class OperatorExemptionPort(AwsPortWrapper):
    """An AwsPort whose "operator" is ``operator`` (a role's sessions) instead of the caller.

    Everything else, every AWS call included, goes to ``inner`` and is made with the runner's own credentials.
    With ``operator`` None it is ``inner`` unchanged.
    """

    def __init__(self, inner: AwsPort, operator: CallerIdentity | None) -> None:
        super().__init__(inner)
        self.operator = operator

    def caller_identity(self, assume_role: RoleAssumption | None = None) -> CallerIdentity:
        if self.operator is None:
            return self._inner.caller_identity(assume_role)
        return self.operator
