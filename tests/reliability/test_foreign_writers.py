"""Foreign writers: someone else edits the same bucket policy before our read or after our write.

PutBucketPolicy has no conditional write (no ETag, no If-Match), so between our GET and our PUT another writer's
change is overwritten. bucketwarden keeps that window as short as it can (identities are resolved before the
GET; only pure computation sits between GET and PUT) and measures it: ReconcileResult.get_to_put_seconds.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bucketwarden.aws import AwsGateway, AwsSettings, InMemoryAws
from bucketwarden.policy import PolicyDocument, Statement
from bucketwarden.principals import BucketTarget
from bucketwarden.reconciler import PreviousState, Reconciler, ReconcileResult
from bucketwarden.spec import ProtectedBucketSpec
from bucketwarden_testkit import MotoServer
from tests.reliability._kit import (
    ROLE,
    foreign_of,
    foreign_statements,
    make_spec,
    ms,
    percentile,
    policy_problems,
    policy_text,
    seed_fleet,
)
from tests.shared import OUR_SID

SEED = 7
INTERLEAVINGS = 100
BUCKET = "bw-foreign-writers"
CIDR_CHOICES = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "2001:db8:1::/48"]

Hook = Callable[[], None]


class InterleavedAws(InMemoryAws):
    """InMemoryAws with hooks where a foreign writer acts: just before our GET, just after our PUT, or (the
    window S3 cannot close) between our GET and our PUT. Each hook fires once."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.before_get: Hook | None = None
        self.after_put: Hook | None = None
        self.before_put: Hook | None = None

    def get(self, target: BucketTarget) -> str | None:
        hook, self.before_get = self.before_get, None
        if hook:
            hook()
        return super().get(target)

    def put(self, target: BucketTarget, policy_text: str) -> None:
        hook, self.before_put = self.before_put, None
        if hook:
            hook()
        super().put(target, policy_text)
        hook, self.after_put = self.after_put, None
        if hook:
            hook()


class ForeignWriter:
    """Console users, Terraform, scripts: they add, remove, change and reorder their own statements, sometimes
    read-modify-write (keeping ours), sometimes writing their whole document (dropping ours), sometimes editing
    our statement too. ``last`` is what their last write wants kept: every statement not carrying our Sids."""

    def __init__(self, aws: InMemoryAws, bucket: str, owned: tuple[str, ...], rng: random.Random) -> None:
        self.aws, self.bucket, self.owned, self.rng = aws, bucket, owned, rng
        self.serial = 0
        self.last: list[Statement] = []
        self.writes = 0

    def statement(self) -> dict[str, Any]:
        self.serial += 1
        statement: dict[str, Any] = {
            "Effect": self.rng.choice(["Allow", "Deny"]),
            "Principal": {"AWS": f"arn:aws:iam::444455556666:role/app-{self.serial}"},
            "Action": self.rng.choice(["s3:GetObject", ["s3:PutObject", "s3:GetObject"], "s3:ListBucket"]),
            "Resource": f"arn:aws:s3:::{self.bucket}/app-{self.serial}/*",
        }
        if self.rng.random() < 0.7:  # some have no Sid at all
            statement = {"Sid": f"App{self.serial}", **statement}
        return statement

    def write(self) -> None:
        text = self.aws.policy_of(self.bucket)
        current = json.loads(text)["Statement"] if text else []
        whole_document = self.rng.random() < 0.3
        statements = [s for s in current if not (whole_document and s.get("Sid") in self.owned)]
        for _ in range(self.rng.randint(1, 3)):
            foreign = [i for i, s in enumerate(statements) if s.get("Sid") not in self.owned]
            ours = [i for i, s in enumerate(statements) if s.get("Sid") in self.owned]
            action = self.rng.choice(["add", "add", "remove", "change", "reorder", "tamper"])
            if action == "add" or not foreign:
                statements.insert(self.rng.randint(0, len(statements)), self.statement())
            elif action == "remove" and len(foreign) > 1:
                del statements[self.rng.choice(foreign)]
            elif action == "change":
                statements[self.rng.choice(foreign)]["Action"] = "s3:GetObjectVersion"
            elif action == "reorder":
                self.rng.shuffle(statements)
            elif action == "tamper" and ours:  # someone "fixes" our statement by hand: drift, not theirs
                statements[ours[0]]["Condition"] = {"NotIpAddress": {"aws:SourceIp": "0.0.0.0/0"}}
        document = {"Version": "2012-10-17", "Statement": statements}
        self.aws.put_foreign(self.bucket, json.dumps(document, indent=self.rng.choice([None, 2, 4])))
        self.last = foreign_of(PolicyDocument.from_obj(document), self.owned)
        self.writes += 1


def spec_with(cidrs: list[str]) -> ProtectedBucketSpec:
    return make_spec(BUCKET, allowedSourceIps=cidrs, adoptSids=[])


def run_interleaving(index: int) -> tuple[Counter[str], list[float], list[str]]:
    """One seeded sequence of our reconciles, spec changes and foreign writes; returns (what happened, the
    GET-to-PUT windows, the problems found in the final policy)."""
    rng = random.Random(SEED * 1_000 + index)
    aws = InterleavedAws(seed=index)
    aws.create_role(ROLE, path="/service-role/")
    aws.create_bucket(BUCKET)
    spec = spec_with(rng.sample(CIDR_CHOICES, 2))
    writer = ForeignWriter(aws, BUCKET, spec.owned_sids, rng)
    writer.write()
    reconciler = Reconciler(aws)
    happened: Counter[str] = Counter()
    windows: list[float] = []
    previous: ReconcileResult | None = None

    def reconcile() -> None:
        nonlocal previous
        previous = reconciler.reconcile(spec, PreviousState(previous.statement_hash if previous else None))
        if previous.get_to_put_seconds is not None:
            windows.append(previous.get_to_put_seconds)

    for _ in range(rng.randint(3, 10)):
        step = rng.choice(["reconcile", "foreign-before-read", "foreign-after-write", "spec-change"])
        if step == "foreign-before-read":
            aws.before_get = writer.write
        elif step == "foreign-after-write":
            aws.after_put = writer.write
            spec = spec_with(rng.sample(CIDR_CHOICES, rng.randint(1, 3)))  # a change, so that we write
        elif step == "spec-change":
            spec = spec_with(rng.sample(CIDR_CHOICES, rng.randint(1, 3)))
        writes_before = writer.writes
        reconcile()
        happened[step if step.startswith("foreign") and writer.writes > writes_before else "ours-only"] += 1
        aws.after_put = aws.before_get = None

    reconcile()  # the next resync after the last foreign write
    assert previous is not None and previous.ready, previous.conditions if previous else None
    return happened, windows, policy_problems(aws.policy_of(BUCKET), spec, writer.last)


def test_foreign_writes_before_our_read_or_after_our_write_are_never_lost(figures: dict[str, Any]) -> None:
    happened: Counter[str] = Counter()
    windows: list[float] = []
    failures = {}
    for index in range(INTERLEAVINGS):
        seen, measured, problems = run_interleaving(index)
        happened += seen
        windows += measured
        if problems:
            failures[index] = problems
    assert failures == {}
    assert happened["foreign-before-read"] > 50 and happened["foreign-after-write"] > 50
    figures["foreign_writers"] = {
        "interleavings": INTERLEAVINGS,
        "seed": SEED,
        "foreign_writes_before_our_read": happened["foreign-before-read"],
        "foreign_writes_after_our_write": happened["foreign-after-write"],
        "interleavings_with_a_lost_statement": len(failures),
        "get_to_put_ms_in_memory_p50_p99": [ms(percentile(windows, 50)), ms(percentile(windows, 99))],
        "get_to_put_samples": len(windows),
    }


def test_foreign_write_inside_the_get_to_put_window_is_overwritten() -> None:
    """The limit S3 sets: no conditional PutBucketPolicy. A write landing between our GET and our PUT is lost,
    and nothing afterwards can tell. This test pins the behaviour docs/reliability.md describes."""
    aws = InterleavedAws()
    aws.create_role(ROLE, path="/service-role/")
    aws.create_bucket(BUCKET, policy=policy_text(*foreign_statements(BUCKET)))
    late = {"Sid": "LateWriter", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}

    def racing_write() -> None:
        doc = json.loads(aws.policy_of(BUCKET) or "")
        doc["Statement"].append(late)
        aws.put_foreign(BUCKET, json.dumps(doc))

    aws.before_put = racing_write
    result = Reconciler(aws).reconcile(spec_with(["192.0.2.0/24"]))

    assert result.applied and result.get_to_put_seconds is not None
    final = PolicyDocument.parse(aws.policy_of(BUCKET) or "")
    assert final.find("LateWriter") == []
    assert len(final.find(OUR_SID)) == 1


def test_concurrent_reconciles_of_one_bucket_write_once() -> None:
    """The resync timer and a create/update handler can run together for one object: one PUT, not two."""
    aws = InMemoryAws()
    aws.create_role(ROLE, path="/service-role/")
    aws.create_bucket(BUCKET, policy=policy_text(*foreign_statements(BUCKET)))
    aws.set_latency("GetBucketPolicy", 0.05)
    reconciler = Reconciler(aws)
    spec = spec_with(["192.0.2.0/24"])
    start = threading.Barrier(4)

    def one(_: int) -> str:
        start.wait()
        return reconciler.reconcile(spec).outcome

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(one, range(4)))

    assert outcomes == ["InSync", "InSync", "InSync", "Updated"]
    assert aws.counter.snapshot()["PutBucketPolicy"] == 1


def test_get_to_put_window_over_http(moto: MotoServer, figures: dict[str, Any]) -> None:
    """The window on the wire (moto over loopback HTTP): from the end of our GET to the end of our PUT."""
    fleet = seed_fleet(moto, 100, "bw-window")
    aws = AwsGateway(AwsSettings(region=moto.region, endpoint_url=moto.endpoint_url), session=moto.session())
    reconciler = Reconciler(aws)
    with ThreadPoolExecutor(16) as pool:
        concurrent = list(pool.map(reconciler.reconcile, fleet.specs.values()))
    changed = [spec.model_copy(update={"allowed_source_ips": ["203.0.113.0/24"]}) for spec in fleet.specs.values()]
    sequential = [reconciler.reconcile(spec) for spec in changed[:50]]

    for results in (concurrent, sequential):
        assert all(r.applied and r.ready for r in results)
    busy = [r.get_to_put_seconds for r in concurrent if r.get_to_put_seconds is not None]
    quiet = [r.get_to_put_seconds for r in sequential if r.get_to_put_seconds is not None]
    assert percentile(quiet, 50) < 0.5  # a PUT round trip on loopback, plus microseconds of computation
    figures["get_to_put_ms_moto"] = {
        "sequential_p50_p99": [ms(percentile(quiet, 50)), ms(percentile(quiet, 99))],
        "16_concurrent_p50_p99": [ms(percentile(busy, 50)), ms(percentile(busy, 99))],
        "samples": len(busy) + len(quiet),
    }
    s3 = moto.client("s3")
    for spec in changed[:50]:
        text = s3.get_bucket_policy(Bucket=spec.bucket_name)["Policy"]
        assert policy_problems(text, spec, fleet.foreign[spec.bucket_name]) == []
