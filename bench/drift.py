"""B3 drift: how long an out-of-band edit of a bucket policy survives while the operator runs.

``bucketwarden run`` runs as its own process against moto and the Kubernetes emulator at a short resync interval.
Once every ProtectedBucket is Ready, each of N buckets is edited once with boto3, alternately stripping the
exemptions (StringNotLike) from our statement and replacing the whole policy with the hand-written Deny. A poller
reads every edited bucket's policy every ~100 ms and parses it; the edit counts as undone when the policy means
exactly what a correct reconcile makes of the edited policy. The edits are scheduled at random times, so each
lands at a random phase of its bucket's resync timer: latency should be about uniform in [0, interval] plus one
reconcile. Run: ``python -m bench.drift [--quick] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bench import _report
from bench._operator import OperatorProcess, count_ready, create_objects, load_average
from bench.workload import ADOPTED_SID, Workload, admin_s3, check_converged, create_workload
from bench.workload import reset_policies as put_initial_policies
from bucketwarden.policy import PolicyDocument, Statement, merge_policy
from bucketwarden_testkit import KubeEmulator, MotoServer, grant_namespaces, wait_until

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FULL = {"samples": 50, "interval_s": 10.0}
QUICK = {"samples": 5, "interval_s": 2.0}
GOAL_SLACK_S = 2.0  # goal: p95 <= interval + 2 s
POLL_S = 0.1
DRIFT_METRIC = "bucketwarden_drift_corrections_total"
# Edits start this far apart (plus a random delay of up to one interval): a few are in flight at once.
SPACING_INTERVALS = 0.25
EditKind = Literal["strip-exemptions", "hand-written-deny"]
EDIT_KINDS: tuple[EditKind, ...] = ("strip-exemptions", "hand-written-deny")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``q`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Edit:
    bucket: str
    kind: EditKind
    policy: str  # what the edit PUTs
    restored: PolicyDocument  # what a correct reconcile makes of it


def plan_edit(workload: Workload, bucket: str, kind: EditKind) -> Edit:
    """The out-of-band edit, and the document that counts as restored (computed with the pure merge)."""
    expected = workload.expected[bucket]
    spec = next(m.resource.spec for m in workload.manifests if m.resource.spec.bucket_name == bucket)
    ours = expected.find(spec.statement_sid)[0]
    if kind == "strip-exemptions":
        # Someone "fixes" a blocked backup by deleting the exemptions: the Deny now hits AWS Backup too.
        stripped = ours.to_json()
        del stripped["Condition"]["StringNotLike"]
        others = [s for s in expected.statements if s.sid != spec.statement_sid]
        edited = expected.with_statements([*others, Statement.parse(stripped)])
    else:
        # Someone pastes the old hand-written Deny over the whole policy.
        edited = expected.with_statements(PolicyDocument.parse(workload.initial[bucket]).find(ADOPTED_SID))
    return Edit(bucket, kind, edited.to_json(), merge_policy(edited, ours, spec.owned_sids))


def wait_all_ready(kube: KubeEmulator, operator: OperatorProcess, expected: int, timeout: float) -> float:
    """Seconds from the operator's start until every ProtectedBucket's status says Ready=True."""
    with kube.client() as client:

        def ready() -> bool:
            operator.check_alive()
            return count_ready(client) == (expected, expected)

        wait_until(ready, timeout=timeout, interval=0.5, what=f"{expected} ProtectedBuckets Ready")
    return time.monotonic() - operator.started


def run_edits(s3: S3Client, edits: Sequence[Edit], interval_s: float, *, timeout_s: float) -> list[float]:
    """Apply each edit at its scheduled time; poll until each is undone. Latency per edit, in edit order."""
    rng = random.Random(6)  # reproducible schedule; the operator's timer phases are random anyway
    spacing = SPACING_INTERVALS * interval_s
    start = time.monotonic() + 0.5
    schedule = sorted((start + k * spacing + rng.uniform(0, interval_s), k) for k in range(len(edits)))
    edited_at: dict[int, float] = {}
    latency: dict[int, float] = {}
    deadline = start + len(edits) * spacing + interval_s + timeout_s
    while len(latency) < len(edits):
        now = time.monotonic()
        if now > deadline:
            missing = [edits[k].bucket for k in edited_at if k not in latency]
            raise TimeoutError(f"edits not undone within {timeout_s} s of their interval: {missing}")
        while schedule and schedule[0][0] <= now:
            _, k = schedule.pop(0)
            s3.put_bucket_policy(Bucket=edits[k].bucket, Policy=edits[k].policy)
            edited_at[k] = time.monotonic()  # the edit has landed: moto answered
        for k, at in list(edited_at.items()):
            if k in latency:
                continue
            seen = time.monotonic()
            policy = PolicyDocument.parse(s3.get_bucket_policy(Bucket=edits[k].bucket)["Policy"])
            if policy == edits[k].restored:
                latency[k] = seen - at  # the read that found it restored was sent at `seen`
        time.sleep(max(0.0, POLL_S - (time.monotonic() - now)))
    return [latency[k] for k in range(len(edits))]


def metric_total(text: str, name: str, labels: str = "") -> float:
    """One sample of a Prometheus text exposition; 0 when absent."""
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def benchmark(samples: int, interval_s: float) -> dict[str, Any]:
    load_start = load_average()
    with MotoServer() as moto, KubeEmulator() as kube, tempfile.TemporaryDirectory(prefix="bench-b3-") as tmp:
        workload = create_workload(moto, samples)
        s3 = admin_s3(moto)
        put_initial_policies(s3, workload)
        with kube.client() as client:
            client.create_namespace(workload.manifests[0].resource.namespace)
            grant_namespaces(client)
            create_objects(client, range(samples))
        operator = OperatorProcess(moto, kube, Path(tmp), resync_interval_s=interval_s)
        with operator:
            converge_s = wait_all_ready(kube, operator, samples, timeout=120)
            converged = check_converged(s3, workload)
            _log(f"B3: {samples} buckets converged in {converge_s:.1f} s; editing one policy at a time")
            edits = [plan_edit(workload, b, EDIT_KINDS[k % len(EDIT_KINDS)]) for k, b in enumerate(workload.buckets)]
            before_text, before = operator.metrics_text() or "", operator.sample()
            started = time.monotonic()
            latencies = run_edits(s3, edits, interval_s, timeout_s=max(60.0, 3 * interval_s))
            elapsed = time.monotonic() - started
            # The poller can see a policy restored before that reconcile has ended and counted it.
            drift_before = metric_total(before_text, DRIFT_METRIC)

            def all_counted() -> bool:
                return metric_total(operator.metrics_text() or "", DRIFT_METRIC) - drift_before >= len(edits)

            with contextlib.suppress(TimeoutError):
                wait_until(all_counted, timeout=10, what="the drift corrections to be counted")
            after_text, after = operator.metrics_text() or "", operator.sample()
    corrections = metric_total(after_text, DRIFT_METRIC) - metric_total(before_text, DRIFT_METRIC)
    put = 'api="PutBucketPolicy",outcome="ok"'
    puts = metric_total(after_text, "bucketwarden_aws_calls_total", put) - metric_total(
        before_text, "bucketwarden_aws_calls_total", put
    )
    by_kind = {kind: [lat for lat, e in zip(latencies, edits, strict=True) if e.kind == kind] for kind in EDIT_KINDS}
    headline = {
        "interval_s": interval_s,
        "samples": len(latencies),
        "p50": round(percentile(latencies, 0.5), 3),
        "p95": round(percentile(latencies, 0.95), 3),
        "max": round(max(latencies), 3),
        "mean": round(statistics.fmean(latencies), 3),
    }
    return {
        "b3_drift_latency_s": headline,
        "goal_p95_s": interval_s + GOAL_SLACK_S,
        "goal_met": headline["p95"] <= interval_s + GOAL_SLACK_S,
        "jitter_s": round(interval_s * 0.1, 3),  # the operator's default: 10 % of the interval
        "poll_s": POLL_S,
        "first_convergence_s": round(converge_s, 2),
        "converged_as_expected": converged.to_json(),
        "latencies_s": [round(x, 3) for x in latencies],
        "by_edit_kind": {
            kind: {"samples": len(v), "p50": round(percentile(v, 0.5), 3), "max": round(max(v), 3)}
            for kind, v in by_kind.items()
            if v
        },
        "operator": {
            "drift_corrections": int(corrections),
            "put_bucket_policy": int(puts),
            "cpu_s_during_edits": round(after.cpu_s - before.cpu_s, 2),
            "edits_elapsed_s": round(elapsed, 1),
            "rss_mb": round(after.rss_mb, 1),
        },
        "load_average": {"start": load_start, "end": load_average()},
    }


def print_tables(results: dict[str, Any], *, quick: bool) -> None:
    b3 = results["b3_drift_latency_s"]
    op = results["operator"]
    note = ", quick mode: not a measurement" if quick else ""
    rows: list[list[object]] = [
        ["all edits", b3["samples"], b3["p50"], b3["p95"], b3["max"]],
        *[[kind, v["samples"], v["p50"], "-", v["max"]] for kind, v in results["by_edit_kind"].items()],
    ]
    _report.print_table(
        ["edit", "samples", "p50 s", "p95 s", "max s"],
        rows,
        title=f"B3 drift: edit -> restored, resync every {b3['interval_s']:g} s{note}",
    )
    met = "yes" if results["goal_met"] else "NO"
    print(f"goal p95 <= {results['goal_p95_s']:g} s: {met}")
    print(
        f"operator: {op['drift_corrections']} drift corrections, {op['put_bucket_policy']} PutBucketPolicy, "
        f"{op['cpu_s_during_edits']} s CPU over {op['edits_elapsed_s']} s, RSS {op['rss_mb']} MB\n"
    )


def run(quick: bool) -> dict[str, Any]:
    """B3 on a fresh moto server and emulator: print the table, return the numbers."""
    settings = QUICK if quick else FULL
    results = benchmark(int(settings["samples"]), float(settings["interval_s"]))
    print_tables(results, quick=quick)
    return {"benchmark": "drift", "quick": quick, **results}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drift", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 edits at a 2 s interval: checks it runs")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.quick)
    if args.json:
        _report.write_json(args.json, {"drift": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
