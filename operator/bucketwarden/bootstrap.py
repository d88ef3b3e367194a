"""``bucketwarden bootstrap``: the way onto a bucket whose policy already locks the operator out.

A hand-written IP Deny (the seed's ``SourceIPRestriction001``) denies the in-cluster operator, whose requests
come from the cluster's NAT address or a VPC endpoint, so its first GetBucketPolicy is Access Denied. Someone
the policy allows (an admin on an allowed network, or the account root, who may always manage a bucket policy)
runs this once: it writes our statement with every session of the OPERATOR'S role exempted (RoleId from
iam:GetRole, not the runner's own principal), reads the policy back, verifies it and says what it did.
"""

from __future__ import annotations

from collections.abc import Callable

from bucketwarden._table import format_table
from bucketwarden.aws import AwsGateway, AwsPort
from bucketwarden.errors import AccessDeniedError, BucketWardenError, InvalidSpecError
from bucketwarden.filemode import exempted, reconcile_all
from bucketwarden.manifests import load_manifests
from bucketwarden.operator_exemption import OperatorExemptionPort, resolve_operator_role
from bucketwarden.policy import PolicyDocument, verify_policy
from bucketwarden.principals import RoleAssumption
from bucketwarden.reconciler import BucketTarget, Reconciler

EXIT_OK, EXIT_ERROR = 0, 1

MSG_CALLER_DENIED = (
    "{bucket}: the current bucket policy denies you too ({detail}); run bootstrap from an allowed network "
    "(inside spec.allowedSourceIps) or with the account root's credentials, which may always manage a bucket policy"
)


def run_bootstrap(
    path: str, operator_role_arn: str, *, aws: AwsPort | None = None, out: Callable[[str], None] = print
) -> int:
    """Write, read back and verify each manifest's policy with the operator role exempted; 0 when all verify."""
    manifests = load_manifests(path)
    for m in manifests:
        if not m.resource.spec.exempt_operator:
            raise InvalidSpecError(f"{m.source}: exemptOperator is false; bootstrap exists to exempt the operator")
    port = aws if aws is not None else AwsGateway()
    caller = port.caller_identity()
    operator = resolve_operator_role(port, operator_role_arn)
    out(f"running as {caller.arn}")
    out(
        f"exempting every session of {operator_role_arn} (RoleId {operator.role_id}, pattern {operator.exempt_pattern})"
    )
    results = reconcile_all(Reconciler(OperatorExemptionPort(port, operator)), manifests)

    rows = []
    failures = 0
    for m, r in zip(manifests, results, strict=True):
        spec = m.resource.spec
        verdict = "-"
        if isinstance(r.error, AccessDeniedError):
            out(MSG_CALLER_DENIED.format(bucket=r.bucket, detail=r.error.message))
        elif r.error is not None:
            out(f"{r.bucket}: {r.error.reason}: {r.error.message}")
        else:
            try:
                text = port.get(spec.bucket_name, **BucketTarget.of(spec).options)
                roles = [
                    port.resolve_role(role, assume_role=RoleAssumption.of(spec.assume_role_arn))
                    for role in spec.exempt_roles
                ]
                document = PolicyDocument.parse(text) if text else None
                verification = verify_policy(spec, roles, operator, document)
                verdict = "OK" if verification.ok else "FAILED"
                for result in verification.results:
                    if not result.passed:
                        out(
                            f"{r.bucket}: {result.scenario.name}: expected {result.scenario.expect}, "
                            f"got {result.evaluation.decision} ({result.evaluation.sid or 'no statement'})"
                        )
            except BucketWardenError as exc:
                verdict = "FAILED"
                out(f"{r.bucket}: could not read the policy back: {exc.message}")
        failures += verdict != "OK"
        ready = r.condition("Ready")
        rows.append(
            (r.bucket, r.action, "yes" if r.applied else "no", ready.reason if ready else "-", exempted(r), verdict)
        )
    for line in format_table(("BUCKET", "ACTION", "WRITTEN", "REASON", "EXEMPT", "VERIFIED"), rows).splitlines():
        out(line)
    if failures:
        return EXIT_ERROR
    out("done: the operator can now read and write these bucket policies; apply the ProtectedBuckets in the cluster")
    return EXIT_OK
