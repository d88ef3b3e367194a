"""B1 (first convergence) and B2 (steady state): bucketwarden's reconcile engine against the plain-boto3 floor.

bucketwarden runs in-process exactly as file mode does: ``reconcile_all(Reconciler(AwsGateway(...)), manifests)``
at its default concurrency. The floor is the least any tool must do: one GetBucketPolicy and one PutBucketPolicy
per bucket, with policies rendered beforehand, on the same number of threads sharing one client. Neither timing
includes building boto3 clients (a one-off ~0.1 s each); bucketwarden's includes its cold identity lookups.
The peer, Cloud Custodian, is timed between two bucketwarden passes, and compared with their mean, because load
on a shared machine drifts over the minutes a Custodian run takes.
Run: ``python -m bench.convergence [--quick] [--buckets N] [--repeat R] [--no-custodian] [--profile]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.config import Config

from bench import _profile, _report, custodian
from bench._cpu import Cost, ServerCpu, measure
from bench.workload import Check, Workload, admin_s3, check_converged, create_workload, reset_policies
from bucketwarden.aws import AwsGateway, AwsSettings
from bucketwarden.filemode import DEFAULT_CONCURRENCY, reconcile_all
from bucketwarden.reconciler import Reconciler, ReconcileResult
from bucketwarden_testkit import MotoServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")

POLICY_APIS = ("GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy")
WRITE_APIS = ("PutBucketPolicy", "DeleteBucketPolicy")
QUICK_BUCKETS = 20
FULL_BUCKETS = 1000
GOAL_RATIO_VS_FLOOR = 0.8
GOAL_SPEEDUP_VS_CUSTODIAN = 3.0
OUT_DIR = Path(__file__).resolve().parent / "out"


# --- the tools ---------------------------------------------------------------------------------------------------


def floor_client(moto: MotoServer) -> S3Client:
    """Plain boto3 as a careful user would set it up: enough pooled connections for the threads."""
    config = Config(retries={"mode": "standard", "total_max_attempts": 5}, max_pool_connections=2 * DEFAULT_CONCURRENCY)
    client: S3Client = moto.session().client("s3", endpoint_url=moto.endpoint_url, config=config)
    return client


def run_floor(s3: S3Client, workload: Workload, *, write: bool = True) -> None:
    """One GET (and, if ``write``, one PUT of the pre-rendered policy) per bucket, DEFAULT_CONCURRENCY threads."""
    rendered = {bucket: doc.to_json() for bucket, doc in workload.expected.items()}

    def one(bucket: str) -> None:
        s3.get_bucket_policy(Bucket=bucket)
        if write:
            s3.put_bucket_policy(Bucket=bucket, Policy=rendered[bucket])

    with ThreadPoolExecutor(max_workers=DEFAULT_CONCURRENCY, thread_name_prefix="floor") as pool:
        list(pool.map(one, workload.buckets))


def new_gateway(moto: MotoServer) -> AwsGateway:
    """A fresh gateway (cold identity caches) with its clients already built, as at operator start-up."""
    gateway = AwsGateway(AwsSettings(region=moto.region, endpoint_url=moto.endpoint_url), session=moto.session())
    gateway.factory.s3()
    gateway.factory.sts()
    gateway.factory.iam()
    return gateway


@dataclass(frozen=True, slots=True)
class Pass:
    """One reconcile_all over every manifest."""

    results: list[ReconcileResult]
    calls: dict[str, int]  # API -> calls over the whole pass, identity lookups included
    attempts: dict[str, int]  # API -> HTTP requests, retries included

    @property
    def buckets(self) -> int:
        return len(self.results)

    def outcomes(self) -> dict[str, int]:
        return dict(Counter(r.outcome for r in self.results))

    @property
    def all_ready(self) -> bool:
        return all(r.ready for r in self.results)

    def calls_per_bucket(self) -> dict[str, float]:
        """Policy calls per bucket, from each reconcile's own count (ReconcileResult.aws_calls)."""
        totals: Counter[str] = Counter()
        for r in self.results:
            totals.update(r.aws_calls)
        return {api: totals[api] / self.buckets for api in POLICY_APIS}

    @property
    def retries(self) -> int:
        return sum(self.attempts.values()) - sum(self.calls.values())


def run_pass(gateway: AwsGateway, workload: Workload) -> Pass:
    """One reconcile_all at file mode's default concurrency, with the gateway's call counts."""
    gateway.counter.reset()
    results = reconcile_all(Reconciler(gateway), workload.manifests)
    return Pass(results, gateway.counter.snapshot(), gateway.counter.attempts())


# --- the benchmark -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    buckets: int
    repeats: int = 3  # rounds of (floor, bucketwarden); medians are reported
    custodian: tuple[custodian.Variant, ...] = ("tuned", "default")
    profile_to: Path | None = None  # if set, one more floor and bucketwarden pass each, under py-spy


@dataclass
class Measurements:
    """Everything benchmark() measured; turned into results.json sections by _b1 and _b2."""

    workload: Workload
    floor: list[Cost]
    b1: list[tuple[Pass, Cost]]
    b2: list[tuple[Pass, Cost]]
    b2_floor: list[Cost]
    bracket: list[Cost]  # bucketwarden passes before, between and after the Custodian runs
    custodian: dict[str, tuple[custodian.CustodianRun, Cost]]
    checks: dict[str, dict[str, int | bool]]
    profile: dict[str, dict[str, float] | None]


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def benchmark(moto: MotoServer, settings: Settings) -> Measurements:
    """Run B1 and B2 on a fresh moto server."""
    started = time.perf_counter()
    workload = create_workload(moto, settings.buckets)
    admin, floor, server = admin_s3(moto), floor_client(moto), ServerCpu()
    _log(f"B1/B2: {settings.buckets} buckets created in {time.perf_counter() - started:.1f} s")
    m = Measurements(workload, [], [], [], [], [], {}, {}, {})

    def check(tool: str) -> None:
        found: Check = check_converged(admin, workload)
        if not found.ok:
            _log(f"WARNING: {tool} left {found.buckets - found.as_expected} of {found.buckets} buckets not as expected")
        m.checks[tool] = found.to_json()

    def timed(step: Callable[[], T]) -> tuple[T, Cost]:
        return measure(server, step)

    for round_ in range(settings.repeats):
        # Alternate the order, so a slow drift in machine load does not always hit the same tool.
        for tool in ("floor", "bucketwarden") if round_ % 2 == 0 else ("bucketwarden", "floor"):
            reset_policies(admin, workload)
            if tool == "floor":
                m.floor.append(timed(lambda: run_floor(floor, workload))[1])
                check("floor")
                m.b2_floor.append(timed(lambda: run_floor(floor, workload, write=False))[1])
                b1_s, b2_s = m.floor[-1].seconds, m.b2_floor[-1].seconds
                _log(f"  round {round_ + 1}: floor        {b1_s:7.2f} s (B2 {b2_s:.2f} s)")
                continue
            gateway = new_gateway(moto)
            m.b1.append(timed(lambda: run_pass(gateway, workload)))  # noqa: B023 (called at once)
            check("bucketwarden")
            # B2 at once, with the same gateway: nothing changed, every cached RoleId is still fresh.
            m.b2.append(timed(lambda: run_pass(gateway, workload)))  # noqa: B023 (called at once)
            check("bucketwarden_b2")
            _log(f"  round {round_ + 1}: bucketwarden {m.b1[-1][1].seconds:7.2f} s (B2 {m.b2[-1][1].seconds:.2f} s)")

    def bracket() -> None:
        reset_policies(admin, workload)
        m.bracket.append(timed(lambda: run_pass(new_gateway(moto), workload))[1])
        _log(f"  bucketwarden (bracketing Custodian) {m.bracket[-1].seconds:.2f} s")

    if settings.custodian:
        bracket()
    for variant in settings.custodian:
        reset_policies(admin, workload)
        m.custodian[variant] = timed(lambda: custodian.run(moto, workload, variant))  # noqa: B023 (called at once)
        check(f"custodian_{variant}")
        run, cost = m.custodian[variant]
        _log(f"  custodian ({variant}): {run.engine_s:.2f} s in c7n, {cost.seconds:.2f} s wall")
        bracket()

    if settings.profile_to is not None:
        out = settings.profile_to
        reset_policies(admin, workload)
        profiled = _profile.profile(lambda: run_pass(new_gateway(moto), workload), out, "b1-bucketwarden")
        m.profile["bucketwarden"] = profiled.shares
        reset_policies(admin, workload)
        m.profile["floor"] = _profile.profile(lambda: run_floor(floor, workload), out, "b1-floor").shares
        _log(f"  profiles: {profiled.error or f'{out}/b1-bucketwarden-profile.txt and b1-floor-profile.txt'}")
    return m


# --- results -----------------------------------------------------------------------------------------------------


def _ms(sorted_seconds: list[float], quantile: float) -> float | None:
    if not sorted_seconds:
        return None
    index = min(len(sorted_seconds) - 1, int(quantile * len(sorted_seconds)))
    return round(sorted_seconds[index] * 1000, 2)


def _cpu_per_bucket(costs: Sequence[Cost], buckets: int) -> dict[str, float | None]:
    """Median CPU per bucket of the client and of moto, in ms."""
    servers = [c.server_cpu_s for c in costs if c.server_cpu_s is not None]
    median = Cost(0.0, _median([c.client_cpu_s for c in costs]), _median(servers) if servers else None)
    return median.per_bucket_ms(buckets)


def _b1(m: Measurements) -> dict[str, Any]:
    n = len(m.workload.manifests)
    bw_s = _median([cost.seconds for _, cost in m.b1])
    floor_s = _median([cost.seconds for cost in m.floor])
    last = m.b1[-1][0]
    windows = sorted(r.get_to_put_seconds for r in last.results if r.get_to_put_seconds is not None)
    peers: dict[str, Any] = {}
    for i, (variant, (run, cost)) in enumerate(m.custodian.items()):
        # The bucketwarden passes just before and just after this Custodian run.
        adjacent = (m.bracket[i].seconds + m.bracket[i + 1].seconds) / 2
        peers[variant] = {
            "engine_s": round(run.engine_s, 3),
            "wall_s": round(cost.seconds, 3),
            "bucketwarden_adjacent_s": round(adjacent, 3),
            "speedup": round(run.engine_s / adjacent, 2),
            "calls_per_bucket": round(run.calls_per_bucket(n), 2),
            "api_calls": run.api_calls,
            "cpu_ms_per_bucket": cost.per_bucket_ms(n),
        }
    tuned = peers.get("tuned")
    return {
        "buckets": n,
        "concurrency": DEFAULT_CONCURRENCY,
        "bucketwarden_s": round(bw_s, 3),
        "floor_s": round(floor_s, 3),
        "custodian_s": tuned["engine_s"] if tuned else None,
        "ratio_vs_floor": round(floor_s / bw_s, 3),
        "speedup_vs_custodian": tuned["speedup"] if tuned else None,
        "calls_per_bucket": last.calls_per_bucket(),
        "total_calls_per_bucket": round(sum(last.calls.values()) / n, 3),
        "iam_get_role_total": last.calls.get("GetRole", 0),
        "sts_get_caller_identity_total": last.calls.get("GetCallerIdentity", 0),
        "distinct_roles": m.workload.distinct_roles,
        "retries": sum(p.retries for p, _ in m.b1),
        "outcomes": last.outcomes(),
        "all_ready": all(p.all_ready for p, _ in m.b1),
        "buckets_per_s": {"bucketwarden": round(n / bw_s, 1), "floor": round(n / floor_s, 1)},
        # On 2 cores the client and moto share the CPUs: CPU per bucket is what the wall clock is made of.
        "cpu_ms_per_bucket": {
            "bucketwarden": _cpu_per_bucket([cost for _, cost in m.b1], n),
            "floor": _cpu_per_bucket(m.floor, n),
        },
        "get_to_put_ms": {"p50": _ms(windows, 0.5), "p99": _ms(windows, 0.99), "max": _ms(windows, 1.0)},
        "runs_s": {
            "bucketwarden": [round(cost.seconds, 3) for _, cost in m.b1],
            "floor": [round(cost.seconds, 3) for cost in m.floor],
            "bucketwarden_bracketing_custodian": [round(cost.seconds, 3) for cost in m.bracket],
        },
        "custodian": peers,
        "profile_gil_share_percent": m.profile or None,
        "checks": m.checks,
    }


def _b2(m: Measurements) -> dict[str, Any]:
    n = len(m.workload.manifests)
    passes = [p for p, _ in m.b2]
    bw_s = _median([cost.seconds for _, cost in m.b2])
    floor_s = _median([cost.seconds for cost in m.b2_floor])
    return {
        "buckets": n,
        "get_per_bucket": passes[-1].calls.get("GetBucketPolicy", 0) / n,
        "writes": sum(p.calls.get(api, 0) for p in passes for api in WRITE_APIS),
        "iam_calls": max(p.calls.get("GetRole", 0) for p in passes),
        "distinct_roles": m.workload.distinct_roles,
        "sts_calls": max(p.calls.get("GetCallerIdentity", 0) for p in passes),
        "bucketwarden_s": round(bw_s, 3),
        "floor_get_only_s": round(floor_s, 3),
        "ratio_vs_floor": round(floor_s / bw_s, 3),
        "cpu_ms_per_bucket": {
            "bucketwarden": _cpu_per_bucket([cost for _, cost in m.b2], n),
            "floor": _cpu_per_bucket(m.b2_floor, n),
        },
        "outcomes": passes[-1].outcomes(),
    }


def goals(results: dict[str, Any]) -> dict[str, bool | None]:
    """Issue 6's goals; None when not measured (Custodian skipped)."""
    b1, b2 = results["b1_first_convergence"], results["b2_steady_state"]
    speedup = b1["speedup_vs_custodian"]
    return {
        "b1_ratio_vs_floor_at_least_0.8": b1["ratio_vs_floor"] >= GOAL_RATIO_VS_FLOOR,
        "b1_speedup_vs_custodian_at_least_3": None if speedup is None else speedup >= GOAL_SPEEDUP_VS_CUSTODIAN,
        "b1_converged_correctly": all(c["ok"] for c in b1["checks"].values()) and b1["all_ready"],
        "b2_one_get_per_bucket_no_writes": b2["get_per_bucket"] == 1 and b2["writes"] == 0,
        "b2_iam_calls_within_distinct_roles": b2["iam_calls"] <= b2["distinct_roles"],
    }


def print_tables(results: dict[str, Any], *, quick: bool) -> None:
    b1, b2 = results["b1_first_convergence"], results["b2_steady_state"]
    n, rounds = b1["buckets"], len(b1["runs_s"]["floor"])
    cpu = b1["cpu_ms_per_bucket"]

    def row(tool: str, seconds: float, relative: str, calls: object, cpu: dict[str, float | None]) -> list[object]:
        return [tool, seconds, relative, calls, cpu["client"], cpu["server"]]

    rows = [
        row(
            "bucketwarden (reconcile_all)",
            b1["bucketwarden_s"],
            "1.00",
            b1["total_calls_per_bucket"],
            cpu["bucketwarden"],
        ),
        row("floor (boto3 GET+PUT)", b1["floor_s"], f"{b1['ratio_vs_floor']:.2f}", 2, cpu["floor"]),
    ]
    for variant, peer in b1["custodian"].items():
        label = f"custodian set-statements ({variant})"
        rows.append(
            row(label, peer["engine_s"], f"{peer['speedup']:.2f}", peer["calls_per_bucket"], peer["cpu_ms_per_bucket"])
        )
    note = ", quick mode: not a measurement" if quick else ""
    _report.print_table(
        ["tool", "seconds", "time / bucketwarden's", "calls/bucket", "client CPU ms/bucket", "moto CPU ms/bucket"],
        rows,
        title=f"B1 first convergence: {n} buckets, {b1['concurrency']} threads, median of {rounds} rounds{note}",
    )
    if b1["custodian"]:
        print("Custodian is compared with the mean of the bucketwarden passes just before and after it.\n")
    calls = b1["calls_per_bucket"]
    _report.print_table(
        ["API", "per bucket (B1)", "B2 total"],
        [
            ["GetBucketPolicy", calls["GetBucketPolicy"], f"{b2['get_per_bucket'] * n:.0f}"],
            ["PutBucketPolicy", calls["PutBucketPolicy"], b2["writes"]],
            ["DeleteBucketPolicy", calls["DeleteBucketPolicy"], 0],
            ["iam:GetRole (total)", b1["iam_get_role_total"], b2["iam_calls"]],
            ["sts:GetCallerIdentity (total)", b1["sts_get_caller_identity_total"], b2["sts_calls"]],
        ],
        title="bucketwarden's AWS calls (B2: a second pass, nothing changed)",
    )
    _report.print_table(
        ["B2 steady state", "seconds", "time / bucketwarden's"],
        [
            ["bucketwarden (reconcile_all)", b2["bucketwarden_s"], "1.00"],
            ["floor (boto3 GET only)", b2["floor_get_only_s"], f"{b2['ratio_vs_floor']:.2f}"],
        ],
        title=f"B2 steady state: {n} buckets",
    )
    _report.print_table(
        ["goal", "met"],
        [[name, "-" if met is None else ("yes" if met else "NO")] for name, met in results["goals"].items()],
        title="Goals (issue 6)",
    )


def run(
    quick: bool,
    *,
    buckets: int | None = None,
    repeats: int | None = None,
    with_custodian: bool = True,
    profile: bool = False,
) -> dict[str, Any]:
    """B1 and B2 on a fresh moto server: print the tables, return the numbers.

    Quick mode: 20 buckets, one round, and Custodian only if its venv already exists (tuned variant only).
    A full run installs Custodian's venv when missing and runs both its variants.
    """
    variants: tuple[custodian.Variant, ...] = ()
    if with_custodian and quick and custodian.available():
        variants = ("tuned",)
    elif with_custodian and not quick:
        custodian.ensure_installed()
        variants = ("tuned", "default")
    settings = Settings(
        buckets=buckets or (QUICK_BUCKETS if quick else FULL_BUCKETS),
        repeats=repeats or (1 if quick else 3),
        custodian=variants,
        profile_to=OUT_DIR if profile else None,
    )
    with MotoServer() as moto:
        measured = benchmark(moto, settings)
    results: dict[str, Any] = {"b1_first_convergence": _b1(measured), "b2_steady_state": _b2(measured)}
    results["b1_first_convergence"]["custodian_version"] = custodian.version() if variants else None
    results["goals"] = goals(results)
    print_tables(results, quick=quick)
    return {"benchmark": "convergence", "quick": quick, "repeats": settings.repeats, **results}


# --- command line ------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, *, standalone: bool = True) -> None:
    if standalone:
        parser.add_argument("--quick", action="store_true", help="20 buckets, one round: checks it runs")
        parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--buckets", type=int, metavar="N", help="B1/B2 buckets (default 1000, quick 20)")
    parser.add_argument("--repeat", type=int, metavar="R", help="B1 rounds of floor and bucketwarden (default 3)")
    parser.add_argument("--no-custodian", action="store_true", help="skip the Cloud Custodian peer in B1")
    parser.add_argument("--profile", action="store_true", help="profile one B1 pass per tool with py-spy (bench/out/)")


def options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "buckets": args.buckets,
        "repeats": args.repeat,
        "with_custodian": not args.no_custodian,
        "profile": args.profile,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.convergence", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    results = run(args.quick, **options(args))
    if args.json:
        _report.write_json(args.json, {"convergence": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
