"""B7 (audit): ``bucketwarden audit`` of 1,000 buckets against the plain-boto3 floor of the same calls.

The floor is the least any audit must do: one ListBuckets, then per bucket GetBucketLocation, GetBucketPolicy and
GetBucketVersioning, on the same number of threads sharing one client, classifying nothing. bucketwarden's pass
is the audit as the CLI runs it (roles and caller resolved, every bucket classified with the verifier, results
streamed), minus printing. Neither timing includes building boto3 clients. A third pass measures the audit's peak
Python memory with tracemalloc (slower, so it is not timed): it must not grow with the policies it has read.
Run: ``python -m bench.audit [--quick] [--buckets N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import ClientError

from bench import _report
from bucketwarden.audit import DEFAULT_BACKUP_ROLE, AuditScope, audit_buckets, audit_context
from bucketwarden.aws import AwsGateway, AwsSettings
from bucketwarden.filemode import DEFAULT_CONCURRENCY
from bucketwarden_testkit import MotoServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

QUICK_BUCKETS = 20
FULL_BUCKETS = 1000
GOAL_RATIO_VS_FLOOR = 2.0
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
KINDS = ("ip-deny", "no-policy", "exempt", "versioned")


def _client(moto: MotoServer) -> S3Client:
    config = Config(retries={"mode": "standard", "total_max_attempts": 5}, max_pool_connections=2 * DEFAULT_CONCURRENCY)
    client: S3Client = moto.session().client("s3", endpoint_url=moto.endpoint_url, config=config)
    return client


def seed(moto: MotoServer, buckets: int) -> Counter[str]:
    """A mixed account: a quarter each of hand-written IP Denies, no policy, exempting Denies, versioned buckets."""
    s3, iam = _client(moto), moto.client("iam")
    role_id = iam.create_role(RoleName=DEFAULT_BACKUP_ROLE, Path="/service-role/", AssumeRolePolicyDocument=TRUST)[
        "Role"
    ]["RoleId"]
    kinds: Counter[str] = Counter()

    def one(i: int) -> None:
        bucket, kind = f"audit-bench-{i:05d}", KINDS[i % len(KINDS)]
        s3.create_bucket(Bucket=bucket)
        if kind in ("ip-deny", "exempt"):
            condition: dict[str, Any] = {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "198.51.100.0/24"]}}
            if kind == "exempt":
                condition["StringNotLike"] = {"aws:userId": [f"{role_id}:*"]}
            statement = {
                "Sid": "SourceIPRestriction001",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": condition,
            }
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
        if kind == "versioned":
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        kinds[kind] += 1

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(buckets)))
    return kinds


def run_floor(s3: S3Client) -> int:
    """The same calls as the audit, nothing else: ListBuckets, then three reads per bucket on 16 threads."""
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]

    def one(bucket: str) -> None:
        s3.get_bucket_location(Bucket=bucket)
        try:
            s3.get_bucket_policy(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucketPolicy":
                raise
        s3.get_bucket_versioning(Bucket=bucket)

    with ThreadPoolExecutor(max_workers=DEFAULT_CONCURRENCY, thread_name_prefix="floor") as pool:
        list(pool.map(one, names))
    return len(names)


def new_gateway(moto: MotoServer) -> AwsGateway:
    gateway = AwsGateway(AwsSettings(region=moto.region, endpoint_url=moto.endpoint_url), session=moto.session())
    gateway.factory.s3()
    gateway.factory.iam()
    gateway.factory.sts()
    return gateway


def run_audit(gateway: AwsGateway) -> Counter[str]:
    ctx = audit_context(gateway)
    return Counter(a.status.value for a in audit_buckets(gateway, ctx, AuditScope(), concurrency=DEFAULT_CONCURRENCY))


def run(quick: bool, *, buckets: int | None = None, repeats: int | None = None) -> dict[str, Any]:
    n = buckets or (QUICK_BUCKETS if quick else FULL_BUCKETS)
    rounds = repeats or (1 if quick else 3)
    floor_s: list[float] = []
    audit_s: list[float] = []
    with MotoServer() as moto:
        kinds = seed(moto, n)
        s3 = _client(moto)
        s3.list_buckets()  # warm the floor's client as the gateway's are warmed
        statuses: Counter[str] = Counter()
        calls: dict[str, int] = {}
        for _ in range(rounds):
            started = time.perf_counter()
            assert run_floor(s3) == n
            floor_s.append(time.perf_counter() - started)
            gateway = new_gateway(moto)
            started = time.perf_counter()
            statuses = run_audit(gateway)
            audit_s.append(time.perf_counter() - started)
            calls = gateway.counter.snapshot()
        gateway = new_gateway(moto)
        tracemalloc.start()
        run_audit(gateway)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    floor, audit = statistics.median(floor_s), statistics.median(audit_s)
    ratio = audit / floor
    result: dict[str, Any] = {
        "buckets": n,
        "rounds": rounds,
        "seeded": dict(kinds),
        "floor_s": round(floor, 3),
        "bucketwarden_s": round(audit, 3),
        "ratio_vs_floor": round(ratio, 2),
        "buckets_per_s": round(n / audit, 1),
        "goal_ratio_vs_floor": GOAL_RATIO_VS_FLOOR,
        "meets_goal": ratio < GOAL_RATIO_VS_FLOOR,
        "calls": calls,
        "statuses": dict(statuses),
        "peak_python_memory_kib": round(peak / 1024),
    }
    _report.print_table(
        ("tool", "buckets", "seconds", "vs floor", "buckets/s"),
        [
            ("plain boto3 loop (floor)", n, f"{floor:.2f}", "1.00", f"{n / floor:.0f}"),
            ("bucketwarden audit", n, f"{audit:.2f}", f"{ratio:.2f}", f"{n / audit:.0f}"),
        ],
        title=f"B7 audit: {n} buckets, median of {rounds} (goal: under {GOAL_RATIO_VS_FLOOR:.0f}x the floor)",
    )
    print(f"audit calls: {calls}; statuses: {dict(statuses)}; peak Python memory {peak / 1024:,.0f} KiB\n")
    return {"benchmark": "audit", "quick": quick, "b7_audit": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_BUCKETS} buckets, one round")
    parser.add_argument("--buckets", type=int, help=f"default {FULL_BUCKETS}")
    parser.add_argument("--repeat", type=int, help="rounds (default 3)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.quick, buckets=args.buckets, repeats=args.repeat)
    if args.json:
        _report.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
