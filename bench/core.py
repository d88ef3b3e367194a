"""B5: what the pure policy core costs per reconcile, as CIDR lists and existing policies grow.

Times render, merge, plan and (once the verifier exists) verify for 1, 10 and 100 CIDRs against existing
policies of 0, 10 and 100 foreign statements, in microseconds per call. No pass/fail: it prints a table.
Also times the symbolic prover (``bucketwarden.policy.prove``, the 'prove' extra) on the typical, large and
typical-with-denies cases, next to the fast engine: cold (first proof for a spec) and warm (the same spec again).
Run: ``python -m bench.core [--quick] [--no-prover] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import statistics
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from bench import _report
from bucketwarden.policy import PolicyDocument, Statement, merge_policy, plan_change, render_statement
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.spec import ProtectedBucketSpec

CIDR_COUNTS = (1, 10, 100)
FOREIGN_COUNTS = (0, 10, 100)
TYPICAL = (10, 10)  # (CIDRs, foreign statements)
LARGE = (100, 100)
OPERATIONS = ("render", "merge", "plan", "verify", "render_merge_verify")

ACCOUNT = "123456789012"
BUCKET = "bench-bucket-001"
ROLE = ResolvedRole(
    ref="AWSBackupDefaultServiceRole",
    name="AWSBackupDefaultServiceRole",
    arn=f"arn:aws:iam::{ACCOUNT}:role/service-role/AWSBackupDefaultServiceRole",
    role_id="AROASAMPLESAMPLESAMPL",
)
# The same role before it was deleted and recreated (fact 3): the existing policy names this old RoleId.
STALE_ROLE = ResolvedRole(ref=ROLE.ref, name=ROLE.name, arn=ROLE.arn, role_id="AROAOLDROLEIDOLDROLE1")
OPERATOR = CallerIdentity(
    account=ACCOUNT,
    arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/bucketwarden-operator/botocore-session-1700000000",
    user_id="AROAOPERATOROPERATOR1:botocore-session-1700000000",
)

Verifier = Callable[[ProtectedBucketSpec, Sequence[ResolvedRole], CallerIdentity | None, PolicyDocument], object]


def find_verifier() -> Verifier | None:
    """``bucketwarden.policy.verify_policy`` when it exists; this benchmark predates it."""
    verifier: Verifier | None = getattr(importlib.import_module("bucketwarden.policy"), "verify_policy", None)
    return verifier


def allowed_cidrs(n: int) -> list[str]:
    """``n`` public /24s, 512 addresses apart, so none collapses into another."""
    base = int(ipaddress.IPv4Address("20.0.0.0"))
    return [str(ipaddress.IPv4Network((base + i * 512, 24))) for i in range(n)]


def foreign_statement(i: int) -> dict[str, Any]:
    """A typical cross-account read grant, different for every ``i``."""
    return {
        "Sid": f"CrossAccountRead{i}",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{444455556666 + i}:role/reader-{i}"},
        "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/team-{i}/*"],
        "Condition": {"StringEquals": {"s3:ExistingObjectTag/team": f"team-{i}"}},
    }


def foreign_deny_statement(i: int) -> dict[str, Any]:
    """A typical foreign Deny (HTTPS only, encrypted uploads, protected deletes), on a prefix of its own.

    The whole-bucket verifier judges every Deny for AWS Backup's and the operator's requests; Allows cost it
    nothing, so the typical case is timed with these as well.
    """
    prefix = f"arn:aws:s3:::{BUCKET}/team-{i}/*"
    kind = i % 3
    if kind == 0:
        return {
            "Sid": f"DenyInsecureTransport{i}",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{BUCKET}", prefix],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    if kind == 1:
        return {
            "Sid": f"DenyUnencryptedUploads{i}",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": prefix,
            "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
        }
    return {
        "Sid": f"ProtectDeletes{i}",
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
        "Resource": prefix,
        "Condition": {"ArnNotLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/admin-*"}},
    }


@dataclass(frozen=True, slots=True)
class Case:
    """One combination: the spec, and the policy found on the bucket (foreign statements around a stale one of ours)."""

    cidrs: int
    foreign: int
    spec: ProtectedBucketSpec
    existing: PolicyDocument

    @classmethod
    def make(cls, cidrs: int, foreign: int, *, denies: bool = False) -> Case:
        spec = ProtectedBucketSpec.model_validate(
            {
                "bucketName": BUCKET,
                "allowedSourceIps": allowed_cidrs(cidrs),
                "exemptRoles": [{"name": ROLE.name}],
                "adoptSids": ["SourceIPRestriction001"],
            }
        )
        stale = render_statement(spec, [STALE_ROLE], OPERATOR).to_json()
        others = [(foreign_deny_statement if denies else foreign_statement)(i) for i in range(foreign)]
        statements = [*others[: foreign // 2], stale, *others[foreign // 2 :]]
        existing = PolicyDocument.from_obj({"Version": "2012-10-17", "Statement": statements})
        return cls(cidrs, foreign, spec, existing)

    def render(self) -> Statement:
        return render_statement(self.spec, [ROLE], OPERATOR)

    def merge(self, ours: Statement) -> PolicyDocument:
        return merge_policy(self.existing, ours, self.spec.owned_sids)


@dataclass(frozen=True, slots=True)
class Timing:
    best_us: float
    median_us: float


def measure(fn: Callable[[], object], *, quick: bool) -> Timing:
    """Microseconds per call: the best and the median of several timeit repeats.

    Full mode runs each repeat long enough (about 20 ms) to rise above timer resolution; quick mode only
    checks that everything runs.
    """
    timer = timeit.Timer(fn)
    if quick:
        number, repeat = 1, 3
    else:
        number, repeat = 1, 7
        while timer.timeit(number) < 0.02:
            number *= 2
    per_call = [t / number * 1e6 for t in timer.repeat(repeat=repeat, number=number)]
    return Timing(best_us=min(per_call), median_us=statistics.median(per_call))


def run_case(case: Case, verify: Verifier | None, *, quick: bool) -> dict[str, Any]:
    ours = case.render()
    desired = case.merge(ours)

    def pipeline() -> None:
        merged = case.merge(case.render())
        if verify is not None:
            verify(case.spec, [ROLE], OPERATOR, merged)

    operations: dict[str, Callable[[], object] | None] = {
        "render": case.render,
        "merge": lambda: case.merge(ours),
        "plan": lambda: plan_change(case.existing, desired),
        "verify": None if verify is None else lambda: verify(case.spec, [ROLE], OPERATOR, desired),
        "render_merge_verify": pipeline,
    }
    timings = {name: None if fn is None else measure(fn, quick=quick) for name, fn in operations.items()}
    return {
        "cidrs": case.cidrs,
        "foreign": case.foreign,
        "policy_bytes": desired.size_bytes,
        "median_us": {name: None if t is None else t.median_us for name, t in timings.items()},
        "best_us": {name: None if t is None else t.best_us for name, t in timings.items()},
    }


def prover_timings(quick: bool) -> dict[str, dict[str, float]] | None:
    """Milliseconds per prove_policy call on B5's typical, large and typical-with-denies cases; None without z3.

    Cold: a clock no earlier call used, so the callers (and the proofs remembered on them) are new. Warm: the same
    spec and clock again, as a repeated ``verify --prove`` of an unchanged bucket would be.
    """
    try:
        from bucketwarden.policy.prove import available, prove_policy
    except ImportError:  # pragma: no cover
        return None
    if not available():
        return None
    cases = {
        "typical": Case.make(*TYPICAL),
        "large": Case.make(*LARGE),
        "typical_denies": Case.make(*TYPICAL, denies=True),
    }
    out: dict[str, dict[str, float]] = {}
    clock = 1_800_000_000.0
    for name, case in cases.items():
        desired = case.merge(case.render())
        cold: list[float] = []
        for _ in range(1 if quick else 5):
            clock += 3600
            started = timeit.default_timer()
            prove_policy(case.spec, [ROLE], OPERATOR, desired, now=clock)
            cold.append((timeit.default_timer() - started) * 1e3)
        warm = measure(partial(prove_policy, case.spec, [ROLE], OPERATOR, desired, now=clock), quick=quick)
        out[name] = {"cold_ms": statistics.median(cold), "warm_ms": warm.median_us / 1e3}
    return out


def run(quick: bool, *, prover: bool = True) -> dict[str, Any]:
    """Time every combination, print the table, and return the numbers (``b5_core_us`` is the headline)."""
    verify = find_verifier()
    cases = [run_case(Case.make(c, f), verify, quick=quick) for c in CIDR_COUNTS for f in FOREIGN_COUNTS]
    by_size = {(r["cidrs"], r["foreign"]): r for r in cases}
    with_denies = run_case(Case.make(*TYPICAL, denies=True), verify, quick=quick)
    _report.print_table(
        ["CIDRs", "foreign", "bytes", *(f"{op} us" for op in OPERATIONS)],
        [
            [r["cidrs"], r["foreign"], r["policy_bytes"], *(_report.format_us(r["median_us"][op]) for op in OPERATIONS)]
            for r in cases
        ],
        title="B5 policy core: microseconds per call (median" + (", quick mode: not a measurement)" if quick else ")"),
    )
    print(
        "Existing policy: the foreign statements around a stale statement of ours (an old RoleId), so merge\n"
        "replaces it and plan computes a diff. bytes: the merged document (S3 allows 20,480).\n"
    )
    print(
        f"Typical case ({TYPICAL[0]} CIDRs) with {TYPICAL[1]} foreign DENY statements (HTTPS-only, encrypted uploads, "
        f"protected deletes): verify {_report.format_us(with_denies['median_us']['verify'])} us, "
        f"render_merge_verify {_report.format_us(with_denies['median_us']['render_merge_verify'])} us\n"
    )
    if verify is None:
        print("verify: bucketwarden.policy.verify_policy not available; render_merge_verify is render + merge\n")
    proofs = prover_timings(quick) if prover else None
    if proofs is not None:
        fast = {
            "typical": by_size[TYPICAL]["median_us"]["verify"],
            "large": by_size[LARGE]["median_us"]["verify"],
            "typical_denies": with_denies["median_us"]["verify"],
        }
        _report.print_table(
            ["case", "fast verify us", "prover cold ms", "prover warm ms"],
            [
                [name, _report.format_us(fast[name]), f"{t['cold_ms']:.1f}", f"{t['warm_ms']:.2f}"]
                for name, t in proofs.items()
            ],
            title="B5 prover (z3, verify --prove) next to the fast engine (reconcile path)",
        )
    elif prover:
        print("prover: z3-solver not installed (the 'prove' extra); not measured\n")
    return {
        "benchmark": "core",
        "quick": quick,
        "verify_included": verify is not None,
        "cases": cases,
        "b5_core_us": {
            "render_merge_verify_typical": by_size[TYPICAL]["median_us"]["render_merge_verify"],
            "render_merge_verify_large": by_size[LARGE]["median_us"]["render_merge_verify"],
            "render_merge_verify_typical_denies": with_denies["median_us"]["render_merge_verify"],
        },
        "b5_prover_ms": proofs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.core", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations only: checks it runs, not speed")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--no-prover", action="store_true", help="skip timing the symbolic prover")
    args = parser.parse_args(argv)
    results = run(args.quick, prover=not args.no_prover)
    if args.json:
        _report.write_json(args.json, {"core": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
