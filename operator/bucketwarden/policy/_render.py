"""Render our Deny statement from a spec and the resolved exemptions."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bucketwarden.policy._cidr import analyse_cidrs
from bucketwarden.policy._document import Statement
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.spec import ExemptionKey, ExemptPrincipal, ProtectedBucketSpec

S3_ALL_ACTIONS = "s3:*"
# us-iso-east-1 -> aws-iso, us-isob-east-1 -> aws-iso-b, eu-isoe-west-1 -> aws-iso-e, us-isof-south-1 -> aws-iso-f
_ISO_REGION_RE = re.compile(r"^[a-z]{2}-iso([a-z]?)-")


def partition_for_region(region: str | None) -> str:
    """The ARN partition: aws, aws-cn, aws-us-gov or one of the aws-iso partitions."""
    if region and region.startswith("cn-"):
        return "aws-cn"
    if region and region.startswith("us-gov-"):
        return "aws-us-gov"
    iso = _ISO_REGION_RE.match(region or "")
    if iso:
        return f"aws-iso-{iso.group(1)}" if iso.group(1) else "aws-iso"
    return "aws"


def bucket_arns(bucket: str, partition: str = "aws") -> list[str]:
    """The bucket and every object in it: both are needed, s3:* covers bucket and object actions."""
    return [f"arn:{partition}:s3:::{bucket}", f"arn:{partition}:s3:::{bucket}/*"]


def _one_or_many(values: Sequence[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else list(values)


def user_id_patterns(
    spec: ProtectedBucketSpec, roles: Sequence[ResolvedRole], operator: CallerIdentity | None
) -> list[str]:
    patterns: list[str] = []
    if spec.exemption_key is ExemptionKey.USER_ID:
        patterns += [r.user_id_pattern for r in roles]
    if operator is not None and spec.exempt_operator:
        patterns.append(operator.exempt_pattern)
    return list(dict.fromkeys(patterns))


def render_statement(
    spec: ProtectedBucketSpec,
    roles: Sequence[ResolvedRole],
    operator: CallerIdentity | None,
    *,
    partition: str | None = None,
) -> Statement:
    """The one statement bucketwarden owns.

    Deny s3:* to everyone unless ANY of these holds: the source address is allowed, the request came
    through an allowed VPC endpoint or VPC, or the caller is an exempt role or the operator. IAM ANDs
    the condition operators, so each "unless" is a negated operator, and the Deny applies only when
    every one of them is true.
    """
    conditions: dict[str, dict[str, str | list[str]]] = {}
    patterns = user_id_patterns(spec, roles, operator)
    if patterns:
        conditions["StringNotLike"] = {"aws:userId": _one_or_many(patterns)}
    if spec.exemption_key is ExemptionKey.PRINCIPAL_ARN and roles:
        arns = list(dict.fromkeys(r.arn for r in roles))
        conditions["ArnNotLike"] = {"aws:PrincipalArn": _one_or_many(arns)}
    if spec.allowed_source_ips:
        conditions["NotIpAddress"] = {"aws:SourceIp": _one_or_many(analyse_cidrs(spec.allowed_source_ips).texts)}
    vpc_keys: dict[str, str | list[str]] = {}
    if spec.allowed_vpc_endpoints:
        vpc_keys["aws:SourceVpce"] = _one_or_many(sorted(set(spec.allowed_vpc_endpoints)))
    if spec.allowed_vpcs:
        vpc_keys["aws:SourceVpc"] = _one_or_many(sorted(set(spec.allowed_vpcs)))
    if vpc_keys:
        conditions["StringNotEquals"] = vpc_keys
    return Statement.build(
        sid=spec.statement_sid,
        effect="Deny",
        principal="*",
        action=S3_ALL_ACTIONS,
        resource=bucket_arns(spec.bucket_name, partition or partition_for_region(spec.region)),
        condition=conditions,
    )


def describe_exemptions(
    spec: ProtectedBucketSpec, roles: Sequence[ResolvedRole], operator: CallerIdentity | None
) -> list[ExemptPrincipal]:
    """What the status reports: each exempt principal and the pattern written for it."""
    out = [
        ExemptPrincipal(
            kind="Role",
            name=r.name,
            arn=r.arn,
            role_id=r.role_id,
            pattern=r.arn if spec.exemption_key is ExemptionKey.PRINCIPAL_ARN else r.user_id_pattern,
        )
        for r in roles
    ]
    if operator is not None and spec.exempt_operator:
        out.append(
            ExemptPrincipal(
                kind="Operator", arn=operator.arn, role_id=operator.role_id, pattern=operator.exempt_pattern
            )
        )
    return out
