"""File mode: reconcile ProtectedBucket manifests once, without a cluster (CI pipelines, first trials)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from bucketwarden._progress import progress_bar
from bucketwarden._table import format_table
from bucketwarden.aws import ReadinessReader
from bucketwarden.dryrun import DryRunAws
from bucketwarden.exitcodes import ExitCode
from bucketwarden.manifests import Manifest, load_manifests
from bucketwarden.operator_exemption import OperatorExemptionPort, resolve_operator_role
from bucketwarden.policy import with_aws_source_ranges
from bucketwarden.readiness import ReadinessPort
from bucketwarden.reconciler import READY, SYNCED, VERIFIED, AwsPort, Reconciler, ReconcileResult
from bucketwarden.spec import Condition, ManagementPolicy

DEFAULT_CONCURRENCY = 16
EXIT_OK, EXIT_ERROR, EXIT_CHANGES = ExitCode.OK, ExitCode.FAILED, ExitCode.CHANGES_PENDING
SEVERITY_ORDER = ("Error", "Warning", "Info")
WOULD_UPDATE = "WouldUpdate"  # plan's name for apply's "Updated": nothing was written
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
    reconciler: Reconciler,
    manifests: Sequence[Manifest],
    *,
    plan_only: bool = False,
    concurrency: int | None = None,
    on_done: Callable[[ReconcileResult], None] | None = None,
    exempt_operator: bool = True,
) -> list[ReconcileResult]:
    """Reconcile every manifest with a bounded pool; results come back in manifest order.

    ``plan_only`` reconciles in Observe mode. The ``plan`` command does not use it: it runs apply's
    Enforce path against a DryRunAws, so it reaches apply's verdicts. ``on_done`` sees each result as it ends.
    ``exempt_operator=False`` exempts no operator principal at all (``--no-exempt-caller``).
    """

    def one(m: Manifest) -> ReconcileResult:
        spec = m.resource.spec
        if plan_only:
            spec = spec.model_copy(update={"management_policy": ManagementPolicy.OBSERVE})
        if not exempt_operator:
            spec = spec.model_copy(update={"exempt_operator": False})
        result = reconciler.reconcile(spec)
        if on_done is not None:
            on_done(result)
        return result

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


# The columns of _row, by name: an added column cannot shift the others.
TABLE_HEADERS = ("RESOURCE", "BUCKET", "OUTCOME", "ACTION", "READY", "REASON", "EXEMPT", "AWS CALLS")


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


def explain(r: ReconcileResult) -> str:
    """What explains a row: the Ready message when not Ready, then every finding not already said.

    The actionable advice ("list 'X' in spec.adoptSids") is often a finding, not the condition's message.
    """
    parts: list[str] = []
    for kind in ("Ready", "Verified"):
        c = r.condition(kind)
        if c is not None and c.status == "False" and c.message and c.message not in parts:
            parts.append(c.message)
    for f in sorted(r.findings, key=lambda f: SEVERITY_ORDER.index(f.severity)):
        if f.code == "ChangesPending" or any(f.message in p for p in parts):
            continue
        parts.append(f"{f.code}: {f.message}")
    return "; ".join(parts) or "-"


def display_outcome(r: ReconcileResult, *, plan: bool) -> str:
    return WOULD_UPDATE if plan and r.outcome == "Updated" else r.outcome


def is_unchanged(r: ReconcileResult) -> bool:
    """In sync and Ready: nothing to do and nothing to say (plan hides these unless --show-unchanged)."""
    return r.action == "none" and r.ready and r.outcome in ("InSync", "Observed") and not r.applied


def summary_line(results: Sequence[ReconcileResult], *, plan: bool, seconds: float, offline: bool = False) -> str:
    """``3 buckets: 2 WouldUpdate, 1 Blocked; 7 AWS calls; 0.42 s``: closes every run."""
    counts = Counter(display_outcome(r, plan=plan) for r in results)
    outcomes = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    calls = "no AWS calls (offline)" if offline else f"{sum(sum(r.aws_calls.values()) for r in results)} AWS calls"
    noun = "bucket" if len(results) == 1 else "buckets"
    return f"{len(results)} {noun}: {outcomes}; {calls}; {seconds:.2f} s"


def exit_code(results: Sequence[ReconcileResult], *, plan: bool) -> ExitCode:
    """The same rule for plan (a dry run) and apply: any failure, refusal or bucket not Ready fails the run."""
    if any(r.outcome in ("Failed", "Blocked") or not r.ready for r in results):
        return ExitCode.FAILED
    if plan and any(r.applied for r in results):
        return ExitCode.CHANGES_PENDING
    return ExitCode.OK


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


def readiness_of(aws: AwsPort) -> ReadinessPort | None:
    """The gateway's AWS Backup readiness reads, unless BUCKETWARDEN_BACKUP_READINESS_CHECKS is false."""
    enabled = os.environ.get("BUCKETWARDEN_BACKUP_READINESS_CHECKS", "true").strip().lower() not in ("false", "0", "no")
    readiness = getattr(aws, "readiness", None)
    return readiness if enabled and isinstance(readiness, ReadinessReader) else None


def plan_to_json(m: Manifest, r: ReconcileResult) -> dict[str, object]:
    """A plan row: apply's result, with nothing applied; ``pending`` says whether apply would write."""
    return {**result_to_json(m, r), "outcome": display_outcome(r, plan=True), "applied": False, "pending": r.applied}


def run_file_mode(
    path: str,
    *,
    plan_only: bool,
    output: str = "table",
    aws: AwsPort | None = None,
    show_unchanged: bool = False,
    exempt_operator_role: str | None = None,
    exempt_caller: bool = True,
    aws_ranges: Sequence[str] = (),
) -> int:
    """Reconcile once. The operator exemption goes to ``exempt_operator_role``'s sessions if given, else to the
    caller unless ``exempt_caller`` is False (then no operator principal is exempted). ``aws_ranges`` (the
    user's ip-ranges.json) narrows where AWS Backup's requests may come from, as awsSourceRanges does."""
    manifests = load_manifests(path)
    if aws_ranges:
        manifests = [
            dataclasses.replace(
                m, resource=m.resource.model_copy(update={"spec": with_aws_source_ranges(m.resource.spec, aws_ranges)})
            )
            for m in manifests
        ]
    if aws is None:
        from bucketwarden.aws import AwsGateway

        aws = AwsGateway()
    readiness = readiness_of(aws)
    if exempt_operator_role is not None:
        aws = OperatorExemptionPort(aws, resolve_operator_role(aws, exempt_operator_role))
    reconciler = Reconciler(DryRunAws(aws) if plan_only else aws, readiness=readiness)
    return run_manifests(
        reconciler,
        manifests,
        plan=plan_only,
        output=output,
        show_unchanged=show_unchanged,
        exempt_operator=exempt_caller or exempt_operator_role is not None,
    )


def run_manifests(
    reconciler: Reconciler,
    manifests: Sequence[Manifest],
    *,
    plan: bool,
    output: str = "table",
    show_unchanged: bool = False,
    offline: bool = False,
    exempt_operator: bool = True,
) -> ExitCode:
    """Reconcile (for a plan: against a port that does not write), print the table or JSON, return the exit code."""
    started = time.perf_counter()
    concurrency = int(os.environ.get("BUCKETWARDEN_MAX_CONCURRENT_RECONCILES", DEFAULT_CONCURRENCY))
    with progress_bar(sys.stderr, total=len(manifests), label="planning" if plan else "applying") as advance:
        results = reconcile_all(
            reconciler,
            manifests,
            concurrency=concurrency,
            on_done=lambda _: advance(),
            exempt_operator=exempt_operator,
        )
    pairs = list(zip(manifests, results, strict=True))
    summary = summary_line(results, plan=plan, seconds=time.perf_counter() - started, offline=offline)
    if output == "json":
        to_json = plan_to_json if plan else result_to_json
        print(json.dumps([to_json(m, r) for m, r in pairs], indent=2))
        print(summary, file=sys.stderr)  # stdout stays one JSON document
        return exit_code(results, plan=plan)
    shown = [(m, r) for m, r in pairs if show_unchanged or not plan or not is_unchanged(r)]
    if shown:
        rows = []
        for m, r in shown:
            row = list(_row(m, r))
            row[TABLE_HEADERS.index("OUTCOME")] = display_outcome(r, plan=plan)
            if offline:  # the in-memory stand-in's calls are not AWS calls
                row[TABLE_HEADERS.index("AWS CALLS")] = "-"
            rows.append((*row, explain(r)))  # last: the explanation, however long
        print(format_table((*TABLE_HEADERS, "MESSAGE"), rows))
    if plan:
        for m, r in shown:
            if r.diff:
                diff = r.diff if r.diff.endswith("\n") else r.diff + "\n"
                print(f"\n--- {m.resource.namespace}/{m.resource.name} ({r.bucket})\n{diff}", end="")
        hidden = len(pairs) - len(shown)
        if hidden:
            gap = "\n" if shown else ""
            print(f"{gap}{hidden} unchanged (in sync and Ready) not shown; --show-unchanged lists them")
    print(summary)
    return exit_code(results, plan=plan)
