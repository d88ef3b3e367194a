"""Sharding end to end: two shards on one Kubernetes API and moto; each object is reconciled by exactly one of
them, and the objects of a shard that dies wait for it (and only for it) and resume when it restarts."""

from __future__ import annotations

import json
import secrets
import threading
from collections import defaultdict

import pytest

from bucketwarden.aws import AwsGateway, AwsSettings
from bucketwarden.k8s import Metrics, OperatorSettings, build_registry
from bucketwarden.k8s._shards import shard_of
from bucketwarden.reconciler import Reconciler
from bucketwarden_testkit import PROTECTED_BUCKETS, KubeClient, MotoServer, OperatorHandle, wait_until
from tests.e2e.conftest import OperatorFactory
from tests.shared import DEADLINE, OUR_SID

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SHARDS = 2
OBJECTS = 6
SHARD_DEADLINE = 1.5 * DEADLINE  # two operators share the two cores


class ShardLog:
    """Which shard ran a full reconcile of which bucket (a quiet tick needs a full one by the same shard first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_shard: defaultdict[int, set[str]] = defaultdict(set)

    def record(self, shard: int, bucket: str) -> None:
        with self._lock:
            self.by_shard[shard].add(bucket)

    def snapshot(self, buckets: set[str]) -> dict[int, set[str]]:
        """Only ``buckets``: the session's namespace may hold other tests' ProtectedBuckets."""
        with self._lock:
            return {k: v & buckets for k, v in self.by_shard.items() if v & buckets}


def start_shard(operator: OperatorFactory, moto: MotoServer, shard: int, log: ShardLog) -> OperatorHandle:
    settings = OperatorSettings(
        resync_interval_seconds=2.0,
        metrics_port=0,
        health_port=0,
        shard_count=SHARDS,
        shard_index=shard,
    )

    def factory(operator_settings: OperatorSettings, metrics: Metrics) -> Reconciler:
        aws_settings = AwsSettings(endpoint_url=moto.endpoint_url, region=moto.region, max_attempts=2)
        gateway = AwsGateway(aws_settings, session=moto.session())
        return Reconciler(gateway, on_result=lambda spec, _result: log.record(shard, spec.bucket_name))

    return operator(build_registry(settings, factory))


def has_our_statement(moto: MotoServer, bucket: str) -> bool:
    try:
        return OUR_SID in moto.client("s3").get_bucket_policy(Bucket=bucket)["Policy"]
    except moto.client("s3").exceptions.ClientError:
        return False


def test_shards_split_the_objects_and_a_dead_shard_resumes_its_own(
    moto: MotoServer, kube_client: KubeClient, namespace: str, operator: OperatorFactory
) -> None:
    s3 = moto.client("s3")
    names = [f"shard-{i}-{secrets.token_hex(2)}" for i in range(OBJECTS)]
    owner = {f"bw-{name}": shard_of(namespace, name, SHARDS) for name in names}
    if len(set(owner.values())) < SHARDS:  # astronomically unlikely with 6 random names; keep the test meaningful
        pytest.skip("every object hashed to one shard")
    for name in names:
        bucket = f"bw-{name}"
        s3.create_bucket(Bucket=bucket)
        spec = {"bucketName": bucket, "allowedSourceIps": ["192.0.2.0/24"]}
        kube_client.create_object(PROTECTED_BUCKETS, {"metadata": {"name": name}, "spec": spec}, namespace=namespace)

    log = ShardLog()
    handles = {shard: start_shard(operator, moto, shard, log) for shard in range(SHARDS)}
    wait_until(
        lambda: all(has_our_statement(moto, b) for b in owner), timeout=SHARD_DEADLINE, what="every bucket protected"
    )
    expected = {shard: {b for b, s in owner.items() if s == shard} for shard in range(SHARDS)}
    assert log.snapshot(set(owner)) == expected  # exactly one owner each, and every object has one

    # Shard 1 dies. Its buckets drift and stay drifted; shard 0 keeps repairing its own.
    handles[1].stop()
    lost = next(b for b, s in owner.items() if s == 1)
    kept = next(b for b, s in owner.items() if s == 0)
    foreign = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Other",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{lost}/*",
            }
        ],
    }
    s3.put_bucket_policy(Bucket=lost, Policy=json.dumps(foreign))
    s3.delete_bucket_policy(Bucket=kept)
    wait_until(lambda: has_our_statement(moto, kept), timeout=SHARD_DEADLINE, what="shard 0 repairs its bucket")
    wait_until(lambda: log.snapshot(set(owner))[0] == expected[0], timeout=SHARD_DEADLINE, what="shard 0 busy")
    assert not has_our_statement(moto, lost)
    assert log.snapshot(set(owner))[1] == expected[1]

    # Restarted, shard 1 resumes its objects (kopf's resume handler reconciles them at once).
    start_shard(operator, moto, 1, log)
    wait_until(
        lambda: has_our_statement(moto, lost), timeout=SHARD_DEADLINE, what="shard 1 repairs its bucket on restart"
    )
    assert all(has_our_statement(moto, b) for b in owner)
    assert log.snapshot(set(owner)) == expected
