"""File mode: reconcile ProtectedBucket manifests once, without a cluster (CI pipelines, first trials)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from bucketwarden._table import format_table
from bucketwarden.manifests import Manifest, load_manifests
from bucketwarden.reconciler import READY, SYNCED, VERIFIED, AwsPort, Reconciler, ReconcileResult
from bucketwarden.spec import Condition, ManagementPolicy

DEFAULT_CONCURRENCY = 16
EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
CONFLICT = "Conflict"  # the same reason the operator gives a second claim on one bucket


def _label(m: Manifest) -> str:
    return f"{m.resource.namespace}/{m.resource.name} ({m.source})"


def conflicts(manifests: Sequence[Manifest]) -> dict[int, str]:
    """Manifest index -> why it may not act: every bucket named by more than one manifest has no owner.

    Writing both would let the last one win on every run (its statement, perhaps without the AWS Backup
    exemption the other one had); picking one silently would be a guess. So neither writes.
    """
    by_bucket: defaultdict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(manifests):
        by_bucket[m.resource.spec.bucket_name].append(i)
    out: dict[int, str] = {}
    for bucket, owners in by_bucket.items():
        if len(owners) < 2:
            continue
        names = ", ".join(_label(manifests[i]) for i in owners)
        message = (
            f"bucket {bucket} is named by {len(owners)} manifests in this run ({names}); a bucket has at most "
            "one owner: nothing was written for it, keep exactly one of them"
        )
        out.update(dict.fromkeys(owners, message))
    return out


def conflict_result(bucket: str, message: str) -> ReconcileResult:
    """The result for a manifest that shares its bucket: refused before any AWS call."""
    return ReconcileResult(
        bucket,
        "Blocked",
        [
            Condition(type=READY, status="False", reason=CONFLICT, message=message),
            Condition(type=SYNCED, status="False", reason=CONFLICT, message=message),
            Condition(type=VERIFIED, status="Unknown", reason="NotChecked", message=message),
        ],
    )


def reconcile_all(
    reconciler: Reconciler, manifests: Sequence[Manifest], *, plan_only: bool = False, concurrency: int | None = None
) -> list[ReconcileResult]:
    """Reconcile every manifest with a bounded pool; results come back in manifest order."""

    def one(m: Manifest) -> ReconcileResult:
        spec = m.resource.spec
        if plan_only:
            spec = spec.model_copy(update={"management_policy": ManagementPolicy.OBSERVE})
        return reconciler.reconcile(spec)

    refused = conflicts(manifests)
    results: list[ReconcileResult | None] = [
        conflict_result(m.resource.spec.bucket_name, refused[i]) if i in refused else None
        for i, m in enumerate(manifests)
    ]
    todo = [m for i, m in enumerate(manifests) if i not in refused]
    workers = max(1, min(concurrency or DEFAULT_CONCURRENCY, len(todo)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile") as pool:
        done = iter(pool.map(one, todo))
    return [r if r is not None else next(done) for r in results]


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
        "adoptedStatements": [a.to_k8s() for a in r.adopted],
        "diff": r.diff,
        "awsCalls": r.aws_calls,
    }


def run_file_mode(path: str, *, plan_only: bool, output: str = "table", aws: AwsPort | None = None) -> int:
    manifests = load_manifests(path)
    if aws is None:
        from bucketwarden.aws import AwsGateway

        aws = AwsGateway()
    concurrency = int(os.environ.get("BUCKETWARDEN_MAX_CONCURRENT_RECONCILES", DEFAULT_CONCURRENCY))
    results = reconcile_all(Reconciler(aws), manifests, plan_only=plan_only, concurrency=concurrency)
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
