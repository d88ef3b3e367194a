"""File mode: reconcile ProtectedBucket manifests once, without a cluster (CI pipelines, first trials)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from bucketwarden._table import format_table
from bucketwarden.aws import ReadinessReader
from bucketwarden.manifests import Manifest, load_manifests
from bucketwarden.readiness import ReadinessPort
from bucketwarden.reconciler import AwsPort, Reconciler, ReconcileResult
from bucketwarden.spec import ManagementPolicy

DEFAULT_CONCURRENCY = 16
EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def reconcile_all(
    reconciler: Reconciler, manifests: Sequence[Manifest], *, plan_only: bool = False, concurrency: int | None = None
) -> list[ReconcileResult]:
    """Reconcile every manifest with a bounded pool; results come back in manifest order."""

    def one(m: Manifest) -> ReconcileResult:
        spec = m.resource.spec
        if plan_only:
            spec = spec.model_copy(update={"management_policy": ManagementPolicy.OBSERVE})
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
        str(sum(r.aws_calls.values())),
    )


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


def readiness_of(aws: AwsPort) -> ReadinessPort | None:
    """The gateway's AWS Backup readiness reads, unless BUCKETWARDEN_BACKUP_READINESS_CHECKS is false."""
    enabled = os.environ.get("BUCKETWARDEN_BACKUP_READINESS_CHECKS", "true").strip().lower() not in ("false", "0", "no")
    readiness = getattr(aws, "readiness", None)
    return readiness if enabled and isinstance(readiness, ReadinessReader) else None


def run_file_mode(path: str, *, plan_only: bool, output: str = "table", aws: AwsPort | None = None) -> int:
    manifests = load_manifests(path)
    if aws is None:
        from bucketwarden.aws import AwsGateway

        aws = AwsGateway()
    concurrency = int(os.environ.get("BUCKETWARDEN_MAX_CONCURRENT_RECONCILES", DEFAULT_CONCURRENCY))
    reconciler = Reconciler(aws, readiness=readiness_of(aws))
    results = reconcile_all(reconciler, manifests, plan_only=plan_only, concurrency=concurrency)
    if output == "json":
        print(json.dumps([result_to_json(m, r) for m, r in zip(manifests, results, strict=True)], indent=2))
    else:
        headers = ("RESOURCE", "BUCKET", "OUTCOME", "ACTION", "READY", "REASON", "AWS CALLS")
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
