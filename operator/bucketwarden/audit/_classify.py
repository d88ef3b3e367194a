"""Classify one bucket from what was read about it: the pure half of the audit (no I/O, no boto3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bucketwarden.audit._model import (
    BACKUP_INCONCLUSIVE,
    BUCKETWARDEN_STATEMENT_MISSING,
    BUCKETWARDEN_STATEMENT_STALE,
    DENIES_BACKUP_ROLE,
    DENIES_RESTORE,
    IP_RESTRICTION_WITHOUT_EXEMPTION,
    NO_BACKUP_ROLE,
    NOT_SUPERSEDABLE,
    OPERATOR_LOCKED_OUT,
    POLICY_UNJUDGEABLE,
    POLICY_UNREADABLE,
    VERSIONING_NOT_ENABLED,
    VERSIONING_UNREADABLE,
    BucketAudit,
    IpRestriction,
    Verdict,
)
from bucketwarden.audit._verdict import verdict_for
from bucketwarden.errors import BucketWardenError
from bucketwarden.policy import (
    PolicyDocument,
    Statement,
    Verification,
    bucket_arns,
    supersede_problems,
    verify_policy,
)
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.spec import DEFAULT_STATEMENT_SID, Finding, ProtectedBucketSpec

# Verification needs some allowed range to build its scenarios; only the role and operator scenarios are read
# when a bucket has no IP restriction of its own (TEST-NET-1, which no real client has).
PLACEHOLDER_CIDR = "192.0.2.0/24"
VERSIONING_UNKNOWN = "Unknown"

_EXEMPTION_KEYS = frozenset({"aws:userid", "aws:principalarn"})
_NEGATED_STRING = frozenset({"StringNotEquals", "StringNotEqualsIfExists", "StringNotLike", "StringNotLikeIfExists"})
_NEGATED_ARN = frozenset({"ArnNotEquals", "ArnNotEqualsIfExists", "ArnNotLike", "ArnNotLikeIfExists"})


@dataclass(frozen=True, slots=True)
class BucketFacts:
    """What the AWS half read about one bucket. ``policy_error`` set means the policy could not be read."""

    bucket: str
    region: str | None
    policy_text: str | None
    versioning: str | None
    policy_error: str | None = None


@dataclass(frozen=True, slots=True)
class AuditContext:
    """Shared by every bucket of one audit."""

    roles: tuple[ResolvedRole, ...]
    operator: CallerIdentity | None
    statement_sid: str = DEFAULT_STATEMENT_SID
    missing_roles: tuple[str, ...] = ()  # requested backup roles that do not exist
    aws_ranges: tuple[str, ...] = ()  # --aws-ip-ranges: where AWS Backup's requests may come from
    prove: bool = False  # --prove: also run the symbolic prover on every bucket


def source_ips_of(statement: Statement) -> tuple[str, ...]:
    return statement.conditions.get("NotIpAddress", {}).get("aws:sourceip", ())


def has_principal_exemption(statement: Statement) -> bool:
    return any(
        key in _EXEMPTION_KEYS and (op in _NEGATED_STRING or op in _NEGATED_ARN)
        for op, keys in statement.conditions.items()
        for key in keys
    )


def is_supersedable(statement: Statement, bucket: str, partition: str = "aws") -> bool:
    """Can bucketwarden's statement replace this hand-written IP Deny without loosening it?

    The operator's own rule (policy._adopt.supersede_problems), so an emitted adoptSids is never refused later;
    the audit also asks for an aws:SourceIp restriction, since it takes allowedSourceIps from it.
    """
    return bool(source_ips_of(statement)) and not supersede_problems(statement, bucket_arns(bucket, partition))


def _label(statement: Statement, index: int) -> str:
    return statement.sid if statement.sid is not None else f"Statement[{index}]"


def ip_restrictions(policy: PolicyDocument, bucket: str, *, skip_sid: str | None = None) -> list[IpRestriction]:
    """Every Deny that restricts by aws:SourceIp (NotIpAddress), in document order."""
    out = []
    for index, statement in enumerate(policy.statements):
        ips = source_ips_of(statement)
        if statement.effect != "Deny" or not ips or (skip_sid is not None and statement.sid == skip_sid):
            continue
        network = statement.conditions.get("StringNotEquals", {})
        out.append(
            IpRestriction(
                sid=statement.sid,
                label=_label(statement, index),
                source_ips=ips,
                vpc_endpoints=network.get("aws:sourcevpce", ()),
                vpcs=network.get("aws:sourcevpc", ()),
                has_exemption=has_principal_exemption(statement),
                supersedable=statement.sid is not None and is_supersedable(statement, bucket),
            )
        )
    return out


def verification_spec(bucket: str, restriction: IpRestriction | None, statement_sid: str) -> ProtectedBucketSpec:
    """The spec the audit verifies against: the bucket's own allow list, or a placeholder.

    Built without validation: a legacy bucket name or a long CIDR list must still be judged, not rejected.
    """
    return ProtectedBucketSpec.model_construct(
        bucket_name=bucket,
        allowed_source_ips=list(restriction.source_ips) if restriction else [PLACEHOLDER_CIDR],
        allowed_vpc_endpoints=list(restriction.vpc_endpoints) if restriction else [],
        allowed_vpcs=list(restriction.vpcs) if restriction else [],
        statement_sid=statement_sid,
        adopt_sids=[restriction.sid] if restriction and restriction.sid and restriction.supersedable else [],
    )


def _verify(
    spec: ProtectedBucketSpec, ctx: AuditContext, policy: PolicyDocument | None
) -> tuple[Verification | None, str | None]:
    try:
        return verify_policy(spec, ctx.roles, ctx.operator, policy, aws_ranges=ctx.aws_ranges), None
    except BucketWardenError as exc:
        return None, exc.message
    except ValueError as exc:  # e.g. a hand-written "NotIpAddress" value that is no CIDR: AWS would reject it too
        return None, f"the policy cannot be judged: {exc}"


def _role_denials(verification: Verification) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    findings = []
    for r in verification.failures:
        if r.scenario.promise != "backup":
            continue
        label = r.evaluation.label or "?"
        key = (label, r.scenario.principal or "")
        if key in seen:
            continue
        seen.add(key)
        findings.append(
            Finding(
                severity="Error",
                code=DENIES_BACKUP_ROLE,
                sid=label,
                message=f"statement {label} denies {r.scenario.principal} ({r.scenario.request.action} from "
                f"{(r.scenario.request.get('aws:SourceIp') or ('-',))[0]}): AWS Backup jobs fail with AccessDenied",
            )
        )
    return findings


def _bucketwarden_state(spec: ProtectedBucketSpec, ctx: AuditContext, policy: PolicyDocument | None) -> str:
    ours = policy.find(ctx.statement_sid) if policy is not None else []
    if not ours:
        return "absent"
    alone, _ = _verify(spec, ctx, PolicyDocument(tuple(ours)))
    if alone is None or not ctx.roles:
        return "unknown"
    verdict, _ = verdict_for(alone, "backup")
    return "current" if verdict is Verdict.PASS else "stale"


def classify(facts: BucketFacts, ctx: AuditContext) -> BucketAudit:
    """Every finding for one bucket."""
    findings = _setup_findings(facts.versioning, ctx)
    policy, facts = _parsed(facts)
    if facts.policy_error is not None:
        unreadable = Finding(severity="Error", code=POLICY_UNREADABLE, message=facts.policy_error)
        return _unknown(facts, ctx, [*findings, unreadable], has_policy=None)

    restrictions = ip_restrictions(policy, facts.bucket, skip_sid=ctx.statement_sid) if policy else []
    # Prefer the restriction bucketwarden can adopt; a bucket rarely has more than one.
    restriction = next((r for r in restrictions if r.supersedable), restrictions[0] if restrictions else None)
    ours = [r for r in (ip_restrictions(policy, facts.bucket) if policy else []) if r.sid == ctx.statement_sid]
    spec = verification_spec(facts.bucket, restriction or (ours[0] if ours else None), ctx.statement_sid)
    verification, unjudgeable = _verify(spec, ctx, policy)
    if unjudgeable is not None:
        findings.append(Finding(severity="Error", code=POLICY_UNJUDGEABLE, message=unjudgeable))
    backup, counterexample = verdict_for(verification, "backup")
    restore, _ = verdict_for(verification, "restore")
    operator, _ = verdict_for(verification, "operator")
    findings += _verdict_findings(verification, ctx)
    findings += _restriction_findings(restrictions + ours, restriction)
    state = _bucketwarden_state(spec, ctx, policy)
    findings += _statement_findings(state, ctx.statement_sid, hand_written=bool(restrictions))
    return BucketAudit(
        facts.bucket,
        facts.region,
        backup,
        operator if ctx.operator is not None else Verdict.UNKNOWN,
        facts.versioning,
        policy is not None,
        state,
        restriction=restriction or (ours[0] if ours else None),
        findings=tuple(findings),
        counterexample=counterexample,
        backup_roles=tuple(r.name for r in ctx.roles),
        restore=restore if ctx.roles else Verdict.UNKNOWN,
        prover=_prove(spec, ctx, policy) if ctx.prove and unjudgeable is None else None,
    )


def _setup_findings(versioning: str | None, ctx: AuditContext) -> list[Finding]:
    """What AWS Backup needs before any policy matters: versioning Enabled, and a backup role to check."""
    findings: list[Finding] = []
    if versioning == VERSIONING_UNKNOWN:
        message = "versioning could not be read (GetBucketVersioning failed): AWS Backup for S3 requires it"
        findings.append(Finding(severity="Warning", code=VERSIONING_UNREADABLE, message=message))
    elif versioning != "Enabled":
        state = "never enabled" if versioning is None else versioning
        message = f"versioning is {state}: AWS Backup for S3 requires versioning Enabled"
        findings.append(Finding(severity="Warning", code=VERSIONING_NOT_ENABLED, message=message))
    if not ctx.roles:
        missing = ", ".join(ctx.missing_roles) or "none given"
        message = f"no AWS Backup role to check ({missing}): pass --backup-role NAME"
        findings.append(Finding(severity="Warning", code=NO_BACKUP_ROLE, message=message))
    return findings


def _parsed(facts: BucketFacts) -> tuple[PolicyDocument | None, BucketFacts]:
    """The bucket's policy, if it has a readable one; a text that is no valid policy becomes a read error."""
    if facts.policy_error is not None or facts.policy_text is None:
        return None, facts
    try:
        return PolicyDocument.parse(facts.policy_text), facts
    except BucketWardenError as exc:
        unreadable = f"not a valid policy: {exc.message}"
        return None, BucketFacts(facts.bucket, facts.region, None, facts.versioning, unreadable)


def _verdict_findings(verification: Verification | None, ctx: AuditContext) -> list[Finding]:
    """What the verdicts say: backup roles denied, restores denied, an inconclusive backup, the operator locked out."""
    if verification is None:
        return []
    findings = _role_denials(verification)
    backup, counterexample = verdict_for(verification, "backup")
    restore, restore_example = verdict_for(verification, "restore")
    operator, operator_example = verdict_for(verification, "operator")
    if restore is Verdict.FAIL:
        message = f"AWS Backup restores into this bucket fail (backups are judged apart): {restore_example}"
        findings.append(Finding(severity="Error", code=DENIES_RESTORE, message=message))
    if backup is Verdict.UNKNOWN and counterexample is not None:
        findings.append(Finding(severity="Warning", code=BACKUP_INCONCLUSIVE, message=counterexample))
    if operator is Verdict.FAIL and ctx.operator is not None:
        message = (
            f"the operator ({ctx.operator.arn}) would be denied from outside the allowed ranges: "
            f"{operator_example}; run it from an allowed address or VPC endpoint, or exempt it"
        )
        findings.append(Finding(severity="Warning", code=OPERATOR_LOCKED_OUT, message=message))
    return findings


def _restriction_findings(found: Sequence[IpRestriction], adoptable: IpRestriction | None) -> list[Finding]:
    """Hand-written IP restrictions that deny every backup role, and the one bucketwarden cannot adopt."""
    findings = [
        Finding(
            severity="Warning",
            code=IP_RESTRICTION_WITHOUT_EXEMPTION,
            sid=r.label,
            message=f"IP restriction {r.label} exempts no principal: every AWS Backup role is denied "
            "from AWS's addresses",
        )
        for r in found
        if not r.has_exemption
    ]
    if adoptable is not None and not adoptable.supersedable:
        message = (
            f"IP restriction {adoptable.label} does more than restrict by network (or has no Sid), so bucketwarden "
            "cannot adopt it; it is kept and must exempt the backup roles by hand"
        )
        findings.append(Finding(severity="Info", code=NOT_SUPERSEDABLE, sid=adoptable.label, message=message))
    return findings


def _statement_findings(state: str, sid: str, *, hand_written: bool) -> list[Finding]:
    """bucketwarden's own statement: absent beside a hand-written restriction, or stale."""
    if state == "absent" and hand_written:
        message = f"bucketwarden's statement {sid} is absent: the IP restriction is hand-written"
        return [Finding(severity="Info", code=BUCKETWARDEN_STATEMENT_MISSING, message=message)]
    if state == "stale":
        message = (
            f"bucketwarden's statement {sid} does not exempt the current RoleId of every backup role (a role "
            "recreated since, or a resource that no longer reconciles)"
        )
        return [Finding(severity="Warning", code=BUCKETWARDEN_STATEMENT_STALE, sid=sid, message=message)]
    return []


def _prove(spec: ProtectedBucketSpec, ctx: AuditContext, policy: PolicyDocument | None) -> str:
    """audit --prove: the symbolic prover's answer for the exempt roles and the operator, in one line."""
    from bucketwarden.policy.prove import ProverUnavailableError, prove_policy

    try:
        proof = prove_policy(spec, ctx.roles, ctx.operator, policy, aws_ranges=ctx.aws_ranges)
    except ProverUnavailableError as exc:
        return f"not run: {exc.message}"
    return "; ".join(proof.lines())


def unjudged(facts: BucketFacts, ctx: AuditContext, why: str) -> BucketAudit:
    """The Unknown result for a bucket the audit could not judge."""
    finding = Finding(severity="Error", code=POLICY_UNJUDGEABLE, message=why)
    has_policy = facts.policy_text is not None if facts.policy_error is None else None
    return _unknown(facts, ctx, [finding], has_policy=has_policy)


def _unknown(
    facts: BucketFacts, ctx: AuditContext, findings: Sequence[Finding], *, has_policy: bool | None
) -> BucketAudit:
    """Unknown for every promise: what explains why is in ``findings``."""
    return BucketAudit(
        facts.bucket,
        facts.region,
        Verdict.UNKNOWN,
        Verdict.UNKNOWN,
        facts.versioning,
        has_policy,
        "unknown",
        findings=tuple(findings),
        backup_roles=tuple(r.name for r in ctx.roles),
    )


def classify_all(facts: Sequence[BucketFacts], ctx: AuditContext) -> list[BucketAudit]:
    return [classify(f, ctx) for f in facts]
