"""File mode: reconcile ProtectedBucket manifests once, without a cluster (CI pipelines, first trials)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from bucketwarden._table import format_table
from bucketwarden.manifests import Manifest, load_manifests
from bucketwarden.operator_exemption import OperatorExemptionPort, resolve_operator_role
from bucketwarden.reconciler import AwsPort, Reconciler, ReconcileResult
from bucketwarden.spec import ManagementPolicy

DEFAULT_CONCURRENCY = 16
EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def reconcile_all(
    reconciler: Reconciler,
    manifests: Sequence[Manifest],
    *,
    plan_only: bool = False,
    concurrency: int | None = None,
    exempt_operator: bool = True,
) -> list[ReconcileResult]:
    """Reconcile every manifest with a bounded pool; results come back in manifest order.

    ``exempt_operator=False`` exempts no operator principal at all (``--no-exempt-caller``).
    """

    def one(m: Manifest) -> ReconcileResult:
        spec = m.resource.spec
        if plan_only:
            spec = spec.model_copy(update={"management_policy": ManagementPolicy.OBSERVE})
        if not exempt_operator:
            spec = spec.model_copy(update={"exempt_operator": False})
        return reconciler.reconcile(spec)

    workers = max(1, min(concurrency or DEFAULT_CONCURRENCY, len(manifests)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile") as pool:
        return list(pool.map(one, manifests))


def _row(m: Manifest, r: ReconcileResult) -> tuple[str, ...]:
    ready = r.condition("Ready")
    return (
        f"{m.resource.namespace}/{m.resource.name}",
        r.bucket,
        r.outcome,
        r.action,
        ready.status if ready else "-",
        ready.reason if ready else "-",
        exempted(r),
        str(sum(r.aws_calls.values())),
    )


def exempted(r: ReconcileResult) -> str:
    """The principals the policy exempts, as written: each role's pattern, and the operator's (marked)."""
    parts = [e.pattern if e.kind == "Role" else f"operator {e.pattern}" for e in r.exempt_principals if e.pattern]
    return ", ".join(parts) or "-"


def result_to_json(m: Manifest, r: ReconcileResult) -> dict[str, object]:
    return {
        "resource": f"{m.resource.namespace}/{m.resource.name}",
        "source": m.source,
        "bucket": r.bucket,
        "outcome": r.outcome,
        "action": r.action,
        "applied": r.applied,
        "conditions": [c.to_k8s() for c in r.conditions],
        "findings": [f.to_k8s() for f in r.findings],
        "exemptPrincipals": [e.to_k8s() for e in r.exempt_principals],
        "policyHash": r.policy_hash,
        "diff": r.diff,
        "awsCalls": r.aws_calls,
    }


def run_file_mode(
    path: str,
    *,
    plan_only: bool,
    output: str = "table",
    aws: AwsPort | None = None,
    exempt_operator_role: str | None = None,
    exempt_caller: bool = True,
) -> int:
    """Reconcile once. The operator exemption goes to ``exempt_operator_role``'s sessions if given, else to the
    caller unless ``exempt_caller`` is False (then no operator principal is exempted)."""
    manifests = load_manifests(path)
    if aws is None:
        from bucketwarden.aws import AwsGateway

        aws = AwsGateway()
    if exempt_operator_role is not None:
        aws = OperatorExemptionPort(aws, resolve_operator_role(aws, exempt_operator_role))
    concurrency = int(os.environ.get("BUCKETWARDEN_MAX_CONCURRENT_RECONCILES", DEFAULT_CONCURRENCY))
    results = reconcile_all(
        Reconciler(aws),
        manifests,
        plan_only=plan_only,
        concurrency=concurrency,
        exempt_operator=exempt_caller or exempt_operator_role is not None,
    )
    if output == "json":
        print(json.dumps([result_to_json(m, r) for m, r in zip(manifests, results, strict=True)], indent=2))
    else:
        headers = ("RESOURCE", "BUCKET", "OUTCOME", "ACTION", "READY", "REASON", "EXEMPT", "AWS CALLS")
        print(format_table(headers, [_row(m, r) for m, r in zip(manifests, results, strict=True)]))
        for m, r in zip(manifests, results, strict=True):
            if plan_only and r.diff:
                print(f"\n--- {m.resource.namespace}/{m.resource.name} ({r.bucket})\n{r.diff}", end="")
            for c in r.conditions:
                if c.status == "False":
                    print(f"{r.bucket}: {c.type}=False {c.reason}: {c.message}")
                    break
    failed = any(r.outcome in ("Failed", "Blocked") for r in results)
    if failed:
        return EXIT_ERROR
    if plan_only:
        return EXIT_CHANGES if any(r.action != "none" for r in results) else EXIT_OK
    return EXIT_OK if all(r.ready for r in results) else EXIT_ERROR
