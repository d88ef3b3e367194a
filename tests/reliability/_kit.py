"""Shared pieces of the reliability suite: policies with foreign statements, checks that nothing was lost,
an InMemoryAws that records and fails per bucket, and a fast-resyncing operator on the Kubernetes emulator."""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import kopf

from bucketwarden.aws import InMemoryAws
from bucketwarden.k8s import Metrics, OperatorSettings, build_registry
from bucketwarden.policy import PolicyDocument, Statement
from bucketwarden.principals import BucketTarget, RoleAssumption
from bucketwarden.reconciler import AwsPort, Reconciler
from bucketwarden.spec import ProtectedBucketSpec
from bucketwarden_testkit import (
    PROTECTED_BUCKETS,
    KubeClient,
    KubeEmulator,
    MotoServer,
    OperatorHandle,
    run_operator_in_thread,
)
from tests.shared import TRUST_POLICY

ACCOUNT = "123456789012"
ROLE = "AWSBackupDefaultServiceRole"
ADOPT_SID = "SourceIPRestriction001"
CIDRS = ["192.0.2.0/24", "2001:db8::/32"]


def policy_text(*statements: Mapping[str, Any], version: str | None = "2012-10-17") -> str:
    doc: dict[str, Any] = {"Statement": [dict(s) for s in statements]}
    if version is not None:
        doc = {"Version": version, **doc}
    return json.dumps(doc)


def foreign_statements(bucket: str, variant: int = 0) -> list[dict[str, Any]]:
    """Statements other people wrote: with and without a Sid, NotPrincipal, a deleted principal's bare id."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": f"ForeignRead{variant % 3}",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::444455556666:role/reader-{variant % 7}"},
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        },
        {  # no Sid: adoptSids can never name it, merge must keep it
            "Effect": "Deny",
            "NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "s3:DeleteBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
        },
    ]
    if variant % 2 == 0:
        statements.append(
            {  # a principal deleted since: IAM shows its bare unique id (fact 21)
                "Sid": "LegacyWriter",
                "Effect": "Allow",
                "Principal": {"AWS": "AIDAJQABLZS4A3QDU576Q"},
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{bucket}/incoming/*",
            }
        )
    return statements


def hand_written_deny(bucket: str, sid: str = ADOPT_SID) -> dict[str, Any]:
    """The Deny that broke AWS Backup: IP-restricted, no exemption. Adopted through adoptSids."""
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"NotIpAddress": {"aws:SourceIp": ["198.51.100.0/24"]}},
    }


def make_spec(bucket: str, **overrides: Any) -> ProtectedBucketSpec:
    doc: dict[str, Any] = {
        "bucketName": bucket,
        "allowedSourceIps": list(CIDRS),
        "exemptRoles": [{"name": ROLE}],
        "adoptSids": [ADOPT_SID],
    }
    doc.update(overrides)
    return ProtectedBucketSpec.model_validate(doc)


def foreign_of(doc: PolicyDocument | None, owned: Sequence[str]) -> list[Statement]:
    if doc is None:
        return []
    return [s for s in doc.statements if s.sid is None or s.sid not in owned]


def policy_problems(text: str | None, spec: ProtectedBucketSpec, expected_foreign: Sequence[Statement]) -> list[str]:
    """What is wrong with a bucket's final policy: lost or altered foreign statements, not exactly one of ours,
    a duplicated Sid. Foreign statements are compared by meaning and in order."""
    if text is None:
        return ["the bucket has no policy"]
    doc = PolicyDocument.parse(text)
    problems = []
    foreign = foreign_of(doc, spec.owned_sids)
    if foreign != list(expected_foreign):
        problems.append(f"foreign statements differ: {lost_statements(expected_foreign, foreign)} lost")
    ours = doc.find(spec.statement_sid)
    if len(ours) != 1:
        problems.append(f"{len(ours)} statements with our Sid {spec.statement_sid}")
    if any(doc.find(sid) for sid in spec.adopt_sids):
        problems.append("an adopted Sid survived")
    expected_duplicates = [sid for sid, n in Counter(s.sid for s in expected_foreign if s.sid).items() if n > 1]
    if sorted(doc.duplicate_sids()) != sorted(expected_duplicates):
        problems.append(f"duplicate Sids: {doc.duplicate_sids()}")
    return problems


def lost_statements(expected: Sequence[Statement], actual: Sequence[Statement]) -> int:
    """How many expected statements are missing from ``actual`` (by meaning, with multiplicity)."""
    remaining = Counter(s.canonical_key() for s in actual)
    lost = 0
    for statement in expected:
        key = statement.canonical_key()
        if remaining[key] > 0:
            remaining[key] -= 1
        else:
            lost += 1
    return lost


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


@dataclass
class Fleet:
    specs: dict[str, ProtectedBucketSpec] = field(default_factory=dict)
    foreign: dict[str, list[Statement]] = field(default_factory=dict)  # what must survive, per bucket


def seed_fleet(moto: MotoServer, count: int, prefix: str) -> Fleet:
    """Buckets with foreign statements; some also hold our Sid with foreign content, or a Deny to adopt."""
    moto.reset()
    s3, iam = moto.client("s3"), moto.client("iam")
    iam.create_role(RoleName=ROLE, Path="/service-role/", AssumeRolePolicyDocument=TRUST_POLICY)
    fleet = Fleet()

    def seed(i: int) -> None:
        bucket = f"{prefix}-{i:03d}"
        foreign = foreign_statements(bucket, i)
        statements = list(foreign)
        if i % 4 == 0:  # our Sid, someone else's content: replaced, never duplicated
            statements.insert(1, {**hand_written_deny(bucket), "Sid": "BucketWardenIpRestriction"})
        if i % 5 == 0:
            statements.append(hand_written_deny(bucket))
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_policy(Bucket=bucket, Policy=policy_text(*statements))
        spec = make_spec(bucket)
        fleet.specs[bucket] = spec
        fleet.foreign[bucket] = foreign_of(PolicyDocument.parse(policy_text(*statements)), spec.owned_sids)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(seed, range(count)))
    return fleet


# --- an InMemoryAws that records per bucket and fails per bucket ---------------------------------------------


class RecordingAws(InMemoryAws):
    """InMemoryAws that logs (api, bucket or role) for every call attempt, and fails calls per bucket."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log: list[tuple[str, str]] = []
        self._log_lock = threading.Lock()
        self._bucket_failures: dict[tuple[str, str], tuple[Exception, int | None]] = {}

    def fail_bucket(self, bucket: str, api: str, error: Exception, *, times: int | None = None) -> None:
        """Calls of ``api`` on ``bucket`` raise ``error`` (``times`` of them, or all)."""
        with self._log_lock:
            self._bucket_failures[(api, bucket)] = (error, times)

    def calls(self, api: str | None = None, bucket: str | None = None) -> int:
        with self._log_lock:
            return sum(1 for a, b in self.log if api in (None, a) and bucket in (None, b))

    def subjects(self) -> set[str]:
        """Every bucket name and role ref any call was about."""
        with self._log_lock:
            return {b for _, b in self.log}

    def _note(self, api: str, subject: str) -> None:
        with self._log_lock:
            self.log.append((api, subject))
            failure = self._bucket_failures.get((api, subject))
            if failure is None:
                return
            error, times = failure
            if times is not None:
                if times <= 1:
                    del self._bucket_failures[(api, subject)]
                else:
                    self._bucket_failures[(api, subject)] = (error, times - 1)
        self.counter.record(api, "error")
        raise error

    def get(self, target: BucketTarget) -> str | None:
        self._note("GetBucketPolicy", target.bucket)
        return super().get(target)

    def put(self, target: BucketTarget, policy_text: str) -> None:
        self._note("PutBucketPolicy", target.bucket)
        super().put(target, policy_text)

    def delete(self, target: BucketTarget) -> None:
        self._note("DeleteBucketPolicy", target.bucket)
        super().delete(target)

    def resolve_role(self, role: Any, *, assume_role: RoleAssumption | None = None) -> Any:
        self._note("ResolveRole", role.ref)
        return super().resolve_role(role, assume_role=assume_role)


# --- the operator on the emulator ----------------------------------------------------------------------------


def fast_kopf_settings(*, request_timeout: float = 10.0, error_backoffs: Sequence[float] = (0.2, 0.4, 0.8)) -> Any:
    """kopf settings for tests: API errors retried quickly, and no long waits anywhere."""
    settings = kopf.OperatorSettings()
    settings.networking.request_timeout = request_timeout
    settings.networking.error_backoffs = tuple(error_backoffs)
    settings.watching.reconnect_backoff = 0.2
    settings.background.instant_exit_timeout = 2.0
    return settings


@contextmanager
def operator_on(
    kube: KubeEmulator,
    aws: AwsPort,
    namespaces: Sequence[str],
    *,
    settings: OperatorSettings | None = None,
    kopf_settings: Any = None,
    reconciler_factory: Callable[[AwsPort], Reconciler] = Reconciler,
    metrics_sink: list[Metrics] | None = None,
) -> Iterator[OperatorHandle]:
    """bucketwarden's registry over ``aws``, resyncing every second, in a thread, watching ``namespaces``."""
    operator_settings = settings or OperatorSettings(
        resync_interval_seconds=1.0, resync_jitter_seconds=0.2, metrics_port=0, health_port=0
    )

    def factory(_: OperatorSettings, metrics: Metrics) -> Reconciler:
        if metrics_sink is not None:
            metrics_sink.append(metrics)
        return reconciler_factory(aws)

    registry = build_registry(operator_settings, factory)
    handle = run_operator_in_thread(
        registry,
        server_or_kubeconfig=kube,
        namespaces=list(namespaces),
        settings=kopf_settings or fast_kopf_settings(),
    )
    with handle:
        yield handle


def create_pb(client: KubeClient, namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return client.create_object(
        PROTECTED_BUCKETS, {"metadata": {"name": name}, "spec": dict(spec)}, namespace=namespace
    )


def condition(obj_or_status: Mapping[str, Any] | None, kind: str) -> dict[str, Any]:
    status = (obj_or_status or {}).get("status", obj_or_status) or {}
    found = [c for c in status.get("conditions", []) if c.get("type") == kind]
    return found[0] if found else {}


def wait_for_reason(
    client: KubeClient, namespace: str, name: str, reason: str, *, status: str | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    """Wait until the Ready condition has ``reason`` (and ``status``) for the current generation."""

    def done(obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        ready = condition(obj, "Ready")
        return (
            ready.get("reason") == reason
            and (status is None or ready.get("status") == status)
            and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"].get("generation")
        )

    obj = client.wait_for(
        PROTECTED_BUCKETS, name, done, namespace=namespace, timeout=timeout, what=f"Ready reason {reason}"
    )
    assert obj is not None
    return obj


def delete_all(client: KubeClient, namespace: str) -> None:
    """Drop finalizers (no operator may be running) and delete every ProtectedBucket in the namespace."""
    for obj in client.list_objects(PROTECTED_BUCKETS, namespace=namespace):
        name = obj["metadata"]["name"]
        if obj["metadata"].get("finalizers"):
            client.patch_object(PROTECTED_BUCKETS, name, {"metadata": {"finalizers": None}}, namespace=namespace)
        client.delete_object(PROTECTED_BUCKETS, name, namespace=namespace)
