"""The B1/B2 workload on moto: N buckets with a hand-written IP Deny to adopt and two foreign statements each.

Built once per run; ``reset_policies`` puts every bucket back to its starting policy so each tool starts alike,
and ``check_converged`` reads every policy back and compares it, by meaning, with the expected result.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.config import Config

from bucketwarden.filemode import DEFAULT_CONCURRENCY
from bucketwarden.manifests import Manifest
from bucketwarden.policy import PolicyDocument, Statement, merge_policy, partition_for_region, render_statement
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.spec import ProtectedBucket, ProtectedBucketSpec
from bucketwarden_testkit import MotoServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")
R = TypeVar("R")

ADOPTED_SID = "SourceIPRestriction001"
FOREIGN_SIDS = ("AllowAnalyticsRead", "DenyInsecureTransport")
BUCKET_PREFIX = "bw-bench"
NAMESPACE = "bench"

# (role name, IAM path). AWS Backup's default role lives under /service-role/, as on AWS.
ROLES: tuple[tuple[str, str], ...] = (
    ("AWSBackupDefaultServiceRole", "/service-role/"),
    ("bench-replication-role", "/"),
    ("bench-audit-role", "/"),
)
# Which roles each group of buckets exempts; bucket i belongs to group i % len(GROUPS).
GROUPS: tuple[tuple[str, ...], ...] = (
    ("AWSBackupDefaultServiceRole",),
    ("AWSBackupDefaultServiceRole", "bench-replication-role"),
    ("AWSBackupDefaultServiceRole", "bench-replication-role", "bench-audit-role"),
)
# The hand-written Deny allows the office range; the spec adds the VPN range, so every bucket needs a write.
HAND_WRITTEN_CIDRS = ("203.0.113.0/24",)
ALLOWED_CIDRS = ("203.0.113.0/24", "198.51.100.0/24", "2001:db8:1234::/48")
TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


def admin_s3(moto: MotoServer) -> S3Client:
    """An uncounted S3 client for setting up and checking, sized for ``DEFAULT_CONCURRENCY`` threads."""
    config = Config(
        s3={"addressing_style": "path"},
        retries={"mode": "standard", "total_max_attempts": 5},
        max_pool_connections=2 * DEFAULT_CONCURRENCY,
    )
    client: S3Client = moto.session().client("s3", endpoint_url=moto.endpoint_url, config=config)
    return client


def parallel_map(fn: Callable[[T], R], items: Iterable[T], workers: int = DEFAULT_CONCURRENCY) -> list[R]:
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench") as pool:
        return list(pool.map(fn, items))


def group_of(index: int) -> int:
    return index % len(GROUPS)


def bucket_name(index: int) -> str:
    return f"{BUCKET_PREFIX}-g{group_of(index)}-{index:05d}"


def group_prefix(group: int) -> str:
    """Every bucket of one group, and no other, starts with this."""
    return f"{BUCKET_PREFIX}-g{group}-"


def initial_policy(bucket: str) -> str:
    """What the bucket carries before any tool runs: two foreign statements, then the hand-written Deny."""
    arn = f"arn:aws:s3:::{bucket}"
    statements: list[dict[str, Any]] = [
        {
            "Sid": FOREIGN_SIDS[0],
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:role/analytics-reader"},
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": [arn, f"{arn}/*"],
        },
        {
            "Sid": FOREIGN_SIDS[1],
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": ADOPTED_SID,
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"NotIpAddress": {"aws:SourceIp": list(HAND_WRITTEN_CIDRS)}},
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, indent=2)


def protected_bucket(index: int) -> ProtectedBucket:
    """The ProtectedBucket a user would write to take over bucket ``index``."""
    return ProtectedBucket.model_validate(
        {
            "apiVersion": "bucketwarden.io/v1alpha1",
            "kind": "ProtectedBucket",
            "metadata": {"name": f"bench-{index:05d}", "namespace": NAMESPACE},
            "spec": {
                "bucketName": bucket_name(index),
                "allowedSourceIps": list(ALLOWED_CIDRS),
                "exemptRoles": [{"name": name} for name in GROUPS[group_of(index)]],
                "adoptSids": [ADOPTED_SID],
            },
        }
    )


@dataclass(frozen=True, slots=True)
class Workload:
    """The buckets, their manifests, starting policies, and the policies a correct tool leaves behind."""

    manifests: tuple[Manifest, ...]
    initial: dict[str, str]  # bucket -> starting policy text
    expected: dict[str, PolicyDocument]  # bucket -> the converged document
    group_statements: tuple[dict[str, Any], ...]  # per group: our statement, Resource as "{bucket_name}" templates

    @property
    def buckets(self) -> list[str]:
        return [m.resource.spec.bucket_name for m in self.manifests]

    @property
    def distinct_roles(self) -> int:
        return len({role.ref for m in self.manifests for role in m.resource.spec.exempt_roles})


def _render(spec: ProtectedBucketSpec, roles: dict[str, ResolvedRole], caller: CallerIdentity) -> Statement:
    resolved = [roles[r.ref] for r in spec.exempt_roles]
    return render_statement(spec, resolved, caller, partition=partition_for_region(spec.region))


def _templated(statement: Statement, bucket: str) -> dict[str, Any]:
    """The statement as a Cloud Custodian policy writes it: the bucket name as c7n's ``{bucket_name}``."""
    obj = statement.to_json()
    obj["Resource"] = [arn.replace(bucket, "{bucket_name}") for arn in obj["Resource"]]
    return obj


def create_workload(moto: MotoServer, buckets: int) -> Workload:
    """Create the roles and buckets in moto and pre-render the expected policies (nothing is timed here)."""
    iam = moto.client("iam")
    for name, path in ROLES:
        iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=TRUST_POLICY)
    roles = {}
    for name, _ in ROLES:
        role = iam.get_role(RoleName=name)["Role"]
        roles[name] = ResolvedRole(ref=name, name=role["RoleName"], arn=role["Arn"], role_id=role["RoleId"])
    who = moto.client("sts").get_caller_identity()
    caller = CallerIdentity(account=who["Account"], arn=who["Arn"], user_id=who["UserId"])

    manifests = tuple(Manifest(f"bench#{i}", protected_bucket(i)) for i in range(buckets))
    s3 = admin_s3(moto)
    parallel_map(lambda m: s3.create_bucket(Bucket=m.resource.spec.bucket_name), manifests)

    initial: dict[str, str] = {}
    expected: dict[str, PolicyDocument] = {}
    group_statements: dict[int, dict[str, Any]] = {}
    for i, m in enumerate(manifests):
        spec = m.resource.spec
        text = initial[spec.bucket_name] = initial_policy(spec.bucket_name)
        ours = _render(spec, roles, caller)
        expected[spec.bucket_name] = merge_policy(PolicyDocument.parse(text), ours, spec.owned_sids)
        group_statements.setdefault(group_of(i), _templated(ours, spec.bucket_name))
    return Workload(manifests, initial, expected, tuple(group_statements[g] for g in sorted(group_statements)))


def reset_policies(s3: S3Client, workload: Workload) -> None:
    """Put every bucket's starting policy back, so the next tool starts from the same state."""
    parallel_map(lambda b: s3.put_bucket_policy(Bucket=b, Policy=workload.initial[b]), workload.buckets)


@dataclass(frozen=True, slots=True)
class Check:
    """What reading every policy back found. ``ok`` only if every bucket holds exactly the expected document."""

    buckets: int
    as_expected: int
    duplicate_sids: int  # buckets with a Sid twice (cloud-custodian#6145)
    adopted_left: int  # buckets still carrying the hand-written statement
    foreign_lost: int  # buckets missing a foreign statement
    ours_missing: int  # buckets without exactly one of our statements

    @property
    def ok(self) -> bool:
        return self.as_expected == self.buckets

    def to_json(self) -> dict[str, int | bool]:
        return {
            "ok": self.ok,
            "buckets": self.buckets,
            "as_expected": self.as_expected,
            "duplicate_sids": self.duplicate_sids,
            "adopted_left": self.adopted_left,
            "foreign_lost": self.foreign_lost,
            "ours_missing": self.ours_missing,
        }


def check_converged(s3: S3Client, workload: Workload) -> Check:
    """Read every policy back and compare it with the expected document (statement order does not matter)."""

    def read(bucket: str) -> PolicyDocument:
        return PolicyDocument.parse(s3.get_bucket_policy(Bucket=bucket)["Policy"])

    buckets = workload.buckets
    found: Sequence[PolicyDocument] = parallel_map(read, buckets)
    tally: Counter[str] = Counter()
    for bucket, doc in zip(buckets, found, strict=True):
        expected = workload.expected[bucket]
        our_sid = next(s.sid for s in expected.statements if s.sid not in (*FOREIGN_SIDS, None))
        tally["as_expected"] += doc == expected
        tally["duplicate_sids"] += bool(doc.duplicate_sids())
        tally["adopted_left"] += bool(doc.find(ADOPTED_SID))
        tally["foreign_lost"] += any(len(doc.find(sid)) != 1 for sid in FOREIGN_SIDS)
        tally["ours_missing"] += len(doc.find(our_sid or "")) != 1
    return Check(
        buckets=len(buckets),
        as_expected=tally["as_expected"],
        duplicate_sids=tally["duplicate_sids"],
        adopted_left=tally["adopted_left"],
        foreign_lost=tally["foreign_lost"],
        ours_missing=tally["ours_missing"],
    )
