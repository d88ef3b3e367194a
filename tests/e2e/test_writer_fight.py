"""A writer fight through the real operator: another writer removes our statement after every repair.

The bucket becomes Contended after the threshold of repairs, status.contention carries the count (so a restart
keeps it), and the operator's writes back off: far fewer PUTs than reconciles once the fight is detected.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from bucketwarden.aws import AwsGateway, AwsSettings
from bucketwarden.contention import DEFAULT_THRESHOLD
from bucketwarden.k8s import Metrics, OperatorSettings, build_registry
from bucketwarden.reconciler import Reconciler, ReconcileResult
from bucketwarden.spec import ProtectedBucketSpec
from bucketwarden_testkit import (
    PROTECTED_BUCKETS,
    KubeClient,
    KubeTarget,
    MotoServer,
    run_operator_in_thread,
    wait_until,
)
from tests.shared import DEADLINE, OUR_SID, BackgroundLoop

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

FIGHT_DEADLINE = 3 * DEADLINE  # the fight needs a threshold of repairs, each a full reconcile, then 12 more


class Tally:
    """Reconciles and writes of the operator, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wrote: list[bool] = []

    def record(self, _spec: ProtectedBucketSpec, result: ReconcileResult) -> None:
        with self.lock:
            self.wrote.append(result.applied)

    def count(self) -> int:
        with self.lock:
            return len(self.wrote)


class ForeignWriter(BackgroundLoop):
    """Owns the whole policy, as Terraform would: puts its own document back whenever ours shows up."""

    interval = 0.05

    def __init__(self, s3: S3Client, bucket: str, policy: dict[str, Any]) -> None:
        super().__init__("foreign-writer")
        self.s3, self.bucket, self.policy = s3, bucket, json.dumps(policy)

    def tick(self) -> None:
        try:
            text = self.s3.get_bucket_policy(Bucket=self.bucket)["Policy"]
        except ClientError:
            return
        if OUR_SID in text:
            self.s3.put_bucket_policy(Bucket=self.bucket, Policy=self.policy)


@pytest.fixture
def fight(kube: KubeTarget, kube_client: KubeClient, namespace: str, moto: MotoServer) -> Iterator[tuple[Tally, str]]:
    tally = Tally()
    settings = OperatorSettings(resync_interval_seconds=1.0, resync_jitter_seconds=0.0, metrics_port=0, health_port=0)

    def factory(_: OperatorSettings, metrics: Metrics) -> Reconciler:
        gateway = AwsGateway(
            AwsSettings(endpoint_url=moto.endpoint_url, region=moto.region, max_attempts=2), session=moto.session()
        )
        return Reconciler(gateway, on_result=tally.record)

    bucket = f"bw-fight-{secrets.token_hex(3)}"
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=bucket)
    theirs = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TerraformOwned",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(theirs))
    with (
        run_operator_in_thread(build_registry(settings, factory), server_or_kubeconfig=kube, namespaces=[namespace]),
        ForeignWriter(s3, bucket, theirs),
    ):
        spec = {"bucketName": bucket, "allowedSourceIps": ["192.0.2.0/24"]}
        kube_client.create_object(PROTECTED_BUCKETS, {"metadata": {"name": bucket}, "spec": spec}, namespace=namespace)
        try:
            yield tally, bucket
        finally:
            kube_client.delete_object(PROTECTED_BUCKETS, bucket, namespace=namespace)
            kube_client.wait_until_gone(PROTECTED_BUCKETS, bucket, namespace=namespace)


def test_writer_fight_is_contended_and_the_writes_back_off(
    fight: tuple[Tally, str], kube_client: KubeClient, namespace: str
) -> None:
    tally, bucket = fight
    obj = kube_client.wait_for_status(
        PROTECTED_BUCKETS,
        bucket,
        lambda s: any(c.get("reason") == "Contended" for c in s.get("conditions", [])),
        namespace=namespace,
        timeout=FIGHT_DEADLINE,
    )
    synced = next(c for c in obj["status"]["conditions"] if c["type"] == "Synced")
    assert synced["status"] == "False" and "another writer" in synced["message"]
    assert obj["status"]["contention"]["repairs"] >= DEFAULT_THRESHOLD

    start = tally.count()
    wait_until(lambda: tally.count() >= start + 12, timeout=FIGHT_DEADLINE, what="12 more reconciles")
    with tally.lock:
        later = tally.wrote[start : start + 12]
    # Without back-off every one of them would repair (12 PUTs); backing off 1, 2, 4, 8 resyncs allows 4 at most.
    assert sum(later) <= 4, later
    final = kube_client.get_object(PROTECTED_BUCKETS, bucket, namespace=namespace)
    assert final is not None and final["status"]["contention"]["repairs"] >= obj["status"]["contention"]["repairs"]
