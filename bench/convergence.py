"""B1 (first convergence) and B2 (steady state): bucketwarden's reconcile engine against the plain-boto3 floor.

bucketwarden runs in-process exactly as file mode does: ``reconcile_all(Reconciler(AwsGateway(...)), manifests)``
at its default concurrency. The floor is the least any tool must do: one GetBucketPolicy and one PutBucketPolicy
per bucket, with policies rendered beforehand, on the same number of threads sharing one client. Neither timing
includes building boto3 clients (a one-off ~0.1 s each); bucketwarden's includes its cold identity lookups.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.config import Config

from bench import _report, custodian
from bench.workload import Check, Workload, admin_s3, check_converged, create_workload, reset_policies
from bucketwarden.aws import AwsGateway, AwsSettings
from bucketwarden.filemode import DEFAULT_CONCURRENCY, reconcile_all
from bucketwarden.reconciler import Reconciler, ReconcileResult
from bucketwarden.testing import MotoServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

POLICY_APIS = ("GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy")
WRITE_APIS = ("PutBucketPolicy", "DeleteBucketPolicy")


def floor_client(moto: MotoServer) -> S3Client:
    """Plain boto3 as a careful user would set it up: enough pooled connections for the threads."""
    config = Config(retries={"mode": "standard", "total_max_attempts": 5}, max_pool_connections=2 * DEFAULT_CONCURRENCY)
    client: S3Client = moto.session().client("s3", endpoint_url=moto.endpoint_url, config=config)
    return client


@dataclass(frozen=True, slots=True)
class FloorRun:
    seconds: float
    cpu_s: float  # CPU time of this (client) process, every thread; moto's CPU is in its own process


def run_floor(s3: S3Client, workload: Workload) -> FloorRun:
    """One GET and one PUT of a pre-rendered policy per bucket, DEFAULT_CONCURRENCY threads."""
    rendered = {bucket: doc.to_json() for bucket, doc in workload.expected.items()}

    def one(bucket: str) -> None:
        s3.get_bucket_policy(Bucket=bucket)
        s3.put_bucket_policy(Bucket=bucket, Policy=rendered[bucket])

    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=DEFAULT_CONCURRENCY, thread_name_prefix="floor") as pool:
        list(pool.map(one, workload.buckets))
    return FloorRun(time.perf_counter() - started, time.process_time() - cpu)


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

    seconds: float
    cpu_s: float  # CPU time of this (client) process, every thread
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
    """One timed reconcile_all at file mode's default concurrency, with the gateway's call counts."""
    reconciler = Reconciler(gateway)
    gateway.counter.reset()
    started, cpu = time.perf_counter(), time.process_time()
    results = reconcile_all(reconciler, workload.manifests)
    seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    return Pass(seconds, cpu_s, results, gateway.counter.snapshot(), gateway.counter.attempts())


@dataclass(frozen=True, slots=True)
class Settings:
    buckets: int
    repeats: int = 3  # rounds of (floor, bucketwarden); medians are reported
    custodian: tuple[custodian.Variant, ...] = ("tuned", "default")
    profile_to: Path | None = None  # if set, one extra profiled bucketwarden pass writes its report here


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _checked(check: Check, tool: str) -> dict[str, int | bool]:
    if not check.ok:
        _log(f"WARNING: {tool} left {check.buckets - check.as_expected} of {check.buckets} buckets not as expected")
    return check.to_json()


def benchmark(moto: MotoServer, settings: Settings) -> dict[str, Any]:
    """Run B1 and B2 on a fresh moto server; returns the two sections of results.json."""
    started = time.perf_counter()
    workload = create_workload(moto, settings.buckets)
    admin = admin_s3(moto)
    floor = floor_client(moto)
    n = settings.buckets
    _log(f"B1/B2: {n} buckets created in {time.perf_counter() - started:.1f} s")

    floor_runs: list[FloorRun] = []
    b1_passes: list[Pass] = []
    b2_passes: list[Pass] = []
    checks: dict[str, dict[str, int | bool]] = {}
    for round_ in range(settings.repeats):
        # Alternate the order, so a slow drift in machine load does not always hit the same tool.
        for tool in ("floor", "bucketwarden") if round_ % 2 == 0 else ("bucketwarden", "floor"):
            reset_policies(admin, workload)
            if tool == "floor":
                floor_runs.append(run_floor(floor, workload))
                checks["floor"] = _checked(check_converged(admin, workload), "floor")
                _log(f"  round {round_ + 1}: floor        {floor_runs[-1].seconds:7.2f} s")
                continue
            gateway = new_gateway(moto)
            b1_passes.append(run_pass(gateway, workload))
            checks["bucketwarden"] = _checked(check_converged(admin, workload), "bucketwarden")
            # B2 at once, with the same gateway: nothing changed, every cached RoleId is still fresh.
            b2_passes.append(run_pass(gateway, workload))
            checks["bucketwarden_b2"] = _checked(check_converged(admin, workload), "bucketwarden (B2)")
            b1_s, b2_s = b1_passes[-1].seconds, b2_passes[-1].seconds
            _log(f"  round {round_ + 1}: bucketwarden {b1_s:7.2f} s (B2 {b2_s:.2f} s)")

    custodian_runs: dict[str, custodian.CustodianRun] = {}
    for variant in settings.custodian:
        reset_policies(admin, workload)
        custodian_runs[variant] = custodian.run(moto, workload, variant)
        checks[f"custodian_{variant}"] = _checked(check_converged(admin, workload), f"custodian ({variant})")
        run = custodian_runs[variant]
        _log(f"  custodian ({variant}): {run.engine_s:.2f} s in c7n, {run.wall_s:.2f} s wall")

    if settings.profile_to is not None:
        reset_policies(admin, workload)
        profile_pass(new_gateway(moto), workload, settings.profile_to)

    return {
        "b1_first_convergence": _b1(workload, floor_runs, b1_passes, custodian_runs, checks),
        "b2_steady_state": _b2(workload, b2_passes),
    }


def _b1(
    workload: Workload,
    floor_runs: list[FloorRun],
    passes: list[Pass],
    custodian_runs: dict[str, custodian.CustodianRun],
    checks: dict[str, dict[str, int | bool]],
) -> dict[str, Any]:
    n = len(workload.manifests)
    bw_s = _median([p.seconds for p in passes])
    floor_s = _median([f.seconds for f in floor_runs])
    last = passes[-1]
    windows = sorted(r.get_to_put_seconds for r in last.results if r.get_to_put_seconds is not None)
    tuned = custodian_runs.get("tuned")
    b1: dict[str, Any] = {
        "buckets": n,
        "concurrency": DEFAULT_CONCURRENCY,
        "bucketwarden_s": round(bw_s, 3),
        "floor_s": round(floor_s, 3),
        "custodian_s": round(tuned.engine_s, 3) if tuned else None,
        "ratio_vs_floor": round(floor_s / bw_s, 3) if bw_s else None,
        "speedup_vs_custodian": round(tuned.engine_s / bw_s, 2) if tuned and bw_s else None,
        "calls_per_bucket": last.calls_per_bucket(),
        "total_calls_per_bucket": round(sum(last.calls.values()) / n, 3),
        "iam_get_role_total": last.calls.get("GetRole", 0),
        "sts_get_caller_identity_total": last.calls.get("GetCallerIdentity", 0),
        "distinct_roles": workload.distinct_roles,
        "retries": sum(p.retries for p in passes),
        "outcomes": last.outcomes(),
        "all_ready": all(p.all_ready for p in passes),
        "buckets_per_s": {"bucketwarden": round(n / bw_s, 1), "floor": round(n / floor_s, 1)} if bw_s else {},
        "get_to_put_ms": {"p50": _ms(windows, 0.5), "p99": _ms(windows, 0.99), "max": _ms(windows, 1.0)},
        "runs_s": {
            "bucketwarden": [round(p.seconds, 3) for p in passes],
            "floor": [round(f.seconds, 3) for f in floor_runs],
        },
        # CPU this process spent per bucket: the client's share of two cores that moto also needs.
        "client_cpu_ms_per_bucket": {
            "bucketwarden": round(_median([p.cpu_s for p in passes]) / n * 1000, 3),
            "floor": round(_median([f.cpu_s for f in floor_runs]) / n * 1000, 3),
        },
        "custodian": {
            variant: {
                "engine_s": round(run.engine_s, 3),
                "wall_s": round(run.wall_s, 3),
                "speedup": round(run.engine_s / bw_s, 2) if bw_s else None,
                "calls_per_bucket": round(run.calls_per_bucket(n), 2),
                "api_calls": run.api_calls,
            }
            for variant, run in custodian_runs.items()
        },
        "checks": checks,
    }
    return b1


def _ms(sorted_seconds: list[float], quantile: float) -> float | None:
    if not sorted_seconds:
        return None
    index = min(len(sorted_seconds) - 1, int(quantile * len(sorted_seconds)))
    return round(sorted_seconds[index] * 1000, 2)


def _b2(workload: Workload, passes: list[Pass]) -> dict[str, Any]:
    n = len(workload.manifests)
    last = passes[-1]
    return {
        "buckets": n,
        "get_per_bucket": last.calls.get("GetBucketPolicy", 0) / n,
        "writes": sum(p.calls.get(api, 0) for p in passes for api in WRITE_APIS),
        "iam_calls": max(p.calls.get("GetRole", 0) for p in passes),
        "distinct_roles": workload.distinct_roles,
        "sts_calls": max(p.calls.get("GetCallerIdentity", 0) for p in passes),
        "bucketwarden_s": round(_median([p.seconds for p in passes]), 3),
        "outcomes": last.outcomes(),
    }


def profile_pass(gateway: AwsGateway, workload: Workload, out: Path) -> None:
    """One more B1 pass sampled by py-spy, which sees every worker thread (pyinstrument sees only one).

    py-spy is not a dependency: ``.venv/bin/pip install py-spy``. It attaches to this process, which needs
    ptrace rights (root, or kernel.yama.ptrace_scope=0). Writes collapsed stacks and a summary into ``out``.
    """
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        _log("profile skipped: py-spy is not installed (.venv/bin/pip install py-spy)")
        return
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "b1-pyspy.txt"
    # --nonblocking: sample without pausing the process, or the pass runs several times slower.
    argv = [spy, "record", "--pid", str(os.getpid()), "--rate", "200", "--nonblocking", "--format", "raw"]
    argv += ["--output", str(raw)]
    recorder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # let it attach
    result = run_pass(gateway, workload)
    recorder.send_signal(signal.SIGINT)
    _, errors = recorder.communicate(timeout=60)
    if not raw.exists():
        _log(f"profile failed: {errors.strip()[-500:]}")
        return
    (out / "b1-profile.txt").write_text(summarise_stacks(raw.read_text()))
    _log(f"  profiled bucketwarden pass: {result.seconds:.2f} s; summary in {out / 'b1-profile.txt'}")


def summarise_stacks(collapsed: str, top: int = 40) -> str:
    """Self and inclusive sample counts per function from py-spy's collapsed stacks ("a;b;c COUNT")."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples of threads on CPU (idle threads are not sampled)", "", "inclusive %  function"]
    lines += [f"{100 * c / total:10.1f}  {f}" for f, c in inclusive.most_common(top)]
    lines += ["", "self %      function"]
    lines += [f"{100 * c / total:10.1f}  {f}" for f, c in own.most_common(top)]
    return "\n".join(lines) + "\n"


def _frame(frame: str) -> str:
    # "function (path/to/module.py:LINE)" -> "function (module.py)": lines split one function into many rows.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.replace("\\", "/").split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})" if where else name


QUICK_BUCKETS = 20
FULL_BUCKETS = 1000
GOAL_RATIO_VS_FLOOR = 0.8
GOAL_SPEEDUP_VS_CUSTODIAN = 3.0


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
        results = benchmark(moto, settings)
    results["b1_first_convergence"]["custodian_version"] = custodian.version() if variants else None
    results["goals"] = goals(results)
    print_tables(results, quick=quick)
    return {"benchmark": "convergence", "quick": quick, "repeats": settings.repeats, **results}


OUT_DIR = Path(__file__).resolve().parent / "out"


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
    note = ", quick mode: not a measurement" if quick else ""
    rows: list[list[object]] = [
        [
            "bucketwarden (reconcile_all)",
            f"{b1['bucketwarden_s']:.2f}",
            b1["buckets_per_s"]["bucketwarden"],
            "1.00",
            b1["total_calls_per_bucket"],
        ],
        [
            "floor (boto3 GET+PUT)",
            f"{b1['floor_s']:.2f}",
            b1["buckets_per_s"]["floor"],
            f"{b1['ratio_vs_floor']:.2f}",
            2,
        ],
    ]
    for variant, run in b1["custodian"].items():
        speedup = f"{run['speedup']:.2f}" if run["speedup"] is not None else "-"
        label = f"custodian set-statements ({variant})"
        rows.append([label, f"{run['engine_s']:.2f}", round(n / run["engine_s"], 1), speedup, run["calls_per_bucket"]])
    _report.print_table(
        ["tool", "seconds", "buckets/s", "time / bucketwarden's", "calls/bucket"],
        rows,
        title=f"B1 first convergence: {n} buckets, {b1['concurrency']} threads, median of {rounds} rounds{note}",
    )
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
        title=f"bucketwarden's AWS calls (B2: second pass, nothing changed, {b2['bucketwarden_s']:.2f} s)",
    )
    _report.print_table(
        ["goal", "met"],
        [[name, "-" if met is None else ("yes" if met else "NO")] for name, met in results["goals"].items()],
        title="Goals (issue 6)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.convergence", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    results = run(args.quick, **options(args))
    if args.json:
        _report.write_json(args.json, {"convergence": results})
    return 0


def add_arguments(parser: argparse.ArgumentParser, *, standalone: bool = True) -> None:
    if standalone:
        parser.add_argument("--quick", action="store_true", help="20 buckets, one round: checks it runs")
        parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--buckets", type=int, metavar="N", help="B1/B2 buckets (default 1000, quick 20)")
    parser.add_argument("--repeat", type=int, metavar="R", help="B1 rounds of floor and bucketwarden (default 3)")
    parser.add_argument("--no-custodian", action="store_true", help="skip the Cloud Custodian peer in B1")
    parser.add_argument("--profile", action="store_true", help="one more B1 pass under py-spy, into bench/out/")


def options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "buckets": args.buckets,
        "repeats": args.repeat,
        "with_custodian": not args.no_custodian,
        "profile": args.profile,
    }


if __name__ == "__main__":
    raise SystemExit(main())
