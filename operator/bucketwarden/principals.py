"""Resolved identities shared by the policy core and the AWS adapter: the operator itself and exempt roles."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ASSUMED_ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/(.+)$")

ROLE_SESSION_NAME = "bucketwarden"
MAX_SESSION_NAME = 64
_NOT_IN_SESSION_NAME = re.compile(r"[^A-Za-z0-9+=,.@_-]")


def tenant_session_name(namespace: str, name: str) -> str:
    """The RoleSessionName of a ProtectedBucket's AssumeRole: ``bw-<namespace>-<name>``, trimmed to 64.

    CloudTrail shows it as the session of every call made for that resource, so a role's owner sees which
    namespace acted through it.
    """
    return _NOT_IN_SESSION_NAME.sub("-", f"bw-{namespace}-{name}")[:MAX_SESSION_NAME]


@dataclass(frozen=True, slots=True)
class RoleAssumption:
    """A role the operator assumes: sts:AssumeRole's RoleArn, ExternalId and RoleSessionName.

    Sessions (and their clients) are cached per value: a session opened for one namespace never serves another.
    """

    arn: str
    external_id: str | None = None
    session_name: str = ROLE_SESSION_NAME

    @classmethod
    def of(cls, arn: str | None) -> RoleAssumption | None:
        """An admin's own assumption (file mode, audit, bootstrap): no ExternalId, the default session name."""
        return cls(arn) if arn else None


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    """The operator's own principal, from sts:GetCallerIdentity."""

    account: str
    arn: str
    user_id: str

    @property
    def is_assumed_role(self) -> bool:
        return _ASSUMED_ROLE_ARN.match(self.arn) is not None

    @property
    def role_id(self) -> str | None:
        """For a role session (``AROA...:session``), the RoleId part."""
        if self.is_assumed_role and ":" in self.user_id:
            return self.user_id.split(":", 1)[0]
        return None

    @property
    def exempt_pattern(self) -> str:
        """The aws:userId pattern that exempts this principal.

        A role session is exempted as ``<RoleId>:*`` so every future session of the role is covered:
        sessions rotate, the role does not. Any other principal (an IAM user, the root, a federated
        user) is exempted by its exact userid.
        """
        role_id = self.role_id
        if role_id is not None:
            return f"{role_id}:*"
        return self.user_id

    @property
    def session_user_id(self) -> str:
        """A userid a request of this principal carries (used by the verifier)."""
        return self.user_id

    @property
    def principal_arn(self) -> str:
        """aws:PrincipalArn of a request by this principal: for a role session, the role's ARN (path unknown)."""
        m = _ASSUMED_ROLE_ARN.match(self.arn)
        if m:
            return f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}"
        return self.arn


@dataclass(frozen=True, slots=True)
class ResolvedRole:
    """An exempt role with its current RoleId, from iam:GetRole."""

    ref: str  # the name or ARN as the spec wrote it
    name: str
    arn: str
    role_id: str | None  # None only for a role exempted by ARN that could not be looked up (principalArn key)
    # The role's trust policy (JSON) when iam:GetRole returned it; not part of the role's identity.
    trust_policy: str | None = field(default=None, compare=False, hash=False, repr=False)
    # False when the ARN's path is a guess (offline, a role named without --role-arn): the verifier then treats
    # aws:PrincipalArn's path as unknown.
    path_known: bool = True

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]

    @property
    def user_id_pattern(self) -> str:
        """``<RoleId>:*``: every session of the role, whatever its session name."""
        if self.role_id is None:
            raise ValueError(f"role {self.ref} has no resolved RoleId")
        return f"{self.role_id}:*"

    @property
    def session_user_id(self) -> str:
        """The aws:userid of an AWS Backup session of this role (used by the verifier)."""
        return f"{self.role_id or 'AROAUNRESOLVED'}:AWSBackup-{self.name}"
