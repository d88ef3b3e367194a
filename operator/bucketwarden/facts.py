"""The facts a command states instead of looking them up (offline plan, render, verify, evaluate).

Exempt roles from --role-id/--role-arn, the operator from --operator-user-id, and a caller's context keys from
--principal-arn: identity synthesis and ARN parsing, apart from the CLI's parsing and printing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bucketwarden.errors import BucketWardenError
from bucketwarden.principals import (
    ASSUMED_ROLE_ARN,
    IAM_PRINCIPAL_ARN,
    ROLE_ARN,
    CallerIdentity,
    ResolvedRole,
    session_arn,
)
from bucketwarden.spec import ExemptionKey, ProtectedBucketSpec


class UsageError(BucketWardenError):
    """A command line that cannot mean anything (exit 64); never a condition reason."""

    reason = "UsageError"


# IAM unique ids: "AROA" + 17 upper-case letters or digits for a role (IAM User Guide, "Unique identifiers").
ROLE_ID_RE = re.compile(r"AROA[A-Z0-9]{17}")


def parse_role_ids(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        ref, sep, role_id = pair.partition("=")
        if not sep or not ref or not role_id:
            raise UsageError(f"--role-id {pair!r}: expected NAME_OR_ARN=ROLEID, e.g. MyRole=AROAEXAMPLE123456789")
        if not ROLE_ID_RE.fullmatch(role_id):
            raise UsageError(
                f"--role-id {pair!r}: {role_id!r} is not a RoleId: AROA followed by 17 upper-case letters or digits "
                f"(aws iam get-role --role-name {ref.rsplit('/', 1)[-1]} --query Role.RoleId)"
            )
        out[ref] = role_id
    return out


def parse_role_arns(pairs: Sequence[str]) -> dict[str, str]:
    """--role-arn NAME=ARN: the full ARN of an exempt role named by name, so its path is right offline."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, arn = pair.partition("=")
        if not sep or not name or not ROLE_ARN.fullmatch(arn):
            raise UsageError(
                f"--role-arn {pair!r}: expected NAME=ARN, e.g. "
                "AWSBackupDefaultServiceRole=arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole"
            )
        if arn.rsplit("/", 1)[-1] != name:
            raise UsageError(f"--role-arn {pair!r}: the ARN names role {arn.rsplit('/', 1)[-1]!r}, not {name!r}")
        out[name] = arn
    return out


def offline_roles(
    spec: ProtectedBucketSpec, role_ids: dict[str, str], account: str, role_arns: dict[str, str] | None = None
) -> list[ResolvedRole]:
    """Exempt roles resolved from --role-id (and --role-arn) flags instead of iam:GetRole."""
    roles = []
    for role in spec.exempt_roles:
        given = role.arn or (role_arns or {}).get(role.role_name)
        arn = given or f"arn:aws:iam::{account}:role/{role.role_name}"
        role_id = role_ids.get(role.ref) or role_ids.get(role.role_name) or role_ids.get(arn)
        if role_id is None and spec.exemption_key is ExemptionKey.USER_ID:
            raise UsageError(
                f"no RoleId for exempt role {role.ref!r}: pass --role-id {role.ref}=AROA... "
                f"(aws iam get-role --role-name {role.role_name} --query Role.RoleId)"
            )
        # Without an ARN the role's path is a guess (none): the verifier says Unknown where the path decides.
        roles.append(ResolvedRole(ref=role.ref, name=role.role_name, arn=arn, role_id=role_id, path_known=bool(given)))
    return roles


def offline_operator(user_id: str | None, account: str) -> CallerIdentity | None:
    """An operator identity from --operator-user-id: ``AROA...:session`` (or ``AROA...:*``) or ``AIDA...``."""
    if user_id is None:
        return None
    if ":" in user_id and user_id.startswith("AROA"):
        role_id, _, session = user_id.partition(":")
        session = "bucketwarden" if session in ("", "*") else session
        arn = session_arn("aws", account, "bucketwarden-operator", session)
        return CallerIdentity(account=account, arn=arn, user_id=f"{role_id}:{session}")
    return CallerIdentity(account=account, arn=f"arn:aws:iam::{account}:user/bucketwarden-operator", user_id=user_id)


def principal_context(arn: str) -> dict[str, str]:
    """The context keys a request by ``arn`` carries: aws:PrincipalArn, aws:PrincipalAccount, aws:PrincipalType,
    and for a role session its own ARN (bucketwarden:callerArn; aws:PrincipalArn is then the role's ARN)."""
    session = ASSUMED_ROLE_ARN.fullmatch(arn)
    if session is not None:
        part, account, role, _ = session.groups()
        # The role's path is not part of a session ARN: give --context aws:PrincipalArn=... when it has one.
        return {
            "aws:PrincipalArn": f"arn:{part}:iam::{account}:role/{role}",
            "bucketwarden:callerArn": arn,
            "aws:PrincipalAccount": account,
            "aws:PrincipalType": "AssumedRole",
        }
    iam = IAM_PRINCIPAL_ARN.fullmatch(arn)
    if iam is None:
        raise UsageError(
            f"--principal-arn {arn!r}: expected an IAM user, role or root ARN, or an assumed-role session ARN "
            "(arn:aws:sts::123456789012:assumed-role/ROLE/SESSION)"
        )
    kind = {"root": "Account", "user": "User", "role": "AssumedRole"}[iam.group(2).split("/", 1)[0]]
    return {"aws:PrincipalArn": arn, "aws:PrincipalAccount": iam.group(1), "aws:PrincipalType": kind}
