"""Event-driven drift end to end: CloudTrail-via-EventBridge events on moto's SQS, the operator in kopf, boto3 on moto.

The resync is 10 minutes, so whatever repairs a bucket within the test's deadline came through the queue. The
events are the real EventBridge JSON of CloudTrail's PutBucketPolicy (tests/fixtures/cloudtrail), pointed at the
test's bucket and principal.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest

from bucketwarden.aws import AwsGateway, AwsSettings
from bucketwarden.k8s import Metrics, OperatorSettings, build_registry
from bucketwarden.k8s._drift import DRIFT_ANNOTATION
from bucketwarden.reconciler import Reconciler
from bucketwarden_testkit import PROTECTED_BUCKETS, KubeClient, MotoServer, wait_until
from tests.e2e.conftest import OperatorFactory
from tests.shared import DEADLINE, OUR_SID, TRUST_POLICY

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

EVENT = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "cloudtrail" / "put-bucket-policy.json").read_text("utf-8")
)


def cloudtrail_event(bucket: str, *, arn: str, principal_id: str) -> str:
    event = copy.deepcopy(EVENT)
    event["detail"]["requestParameters"]["bucketName"] = bucket
    event["detail"]["userIdentity"].update(arn=arn, principalId=principal_id)
    event["detail"]["eventID"] = secrets.token_hex(8)
    return json.dumps(event)


def foreign_only(bucket: str) -> str:
    statement = {
        "Sid": "ForeignReadOnly",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def has_our_statement(moto: MotoServer, bucket: str) -> bool:
    return OUR_SID in moto.client("s3").get_bucket_policy(Bucket=bucket)["Policy"]


class Setup:
    def __init__(self, moto: MotoServer, kube: KubeClient, namespace: str, memo: Any, queue_url: str) -> None:
        self.moto, self.kube, self.namespace, self.memo, self.queue_url = moto, kube, namespace, memo, queue_url
        self.created: list[str] = []

    def verdicts(self, verdict: str) -> float:
        metrics: Metrics = self.memo.runtime.metrics
        return metrics.registry.get_sample_value("bucketwarden_drift_events_total", {"verdict": verdict}) or 0.0

    def send(self, body: str) -> None:
        self.moto.client("sqs").send_message(QueueUrl=self.queue_url, MessageBody=body)

    def status(self, name: str) -> dict[str, Any]:
        obj = self.kube.get_object(PROTECTED_BUCKETS, name, namespace=self.namespace) or {}
        return dict(obj.get("status") or {})


@pytest.fixture
def drift_setup(
    moto: MotoServer, kube_client: KubeClient, namespace: str, operator: OperatorFactory
) -> Iterator[Setup]:
    """The operator with the drift queue on; this test's ProtectedBuckets are deleted (finalizers released) after."""
    queue_url = moto.client("sqs").create_queue(QueueName=f"bw-drift-{secrets.token_hex(3)}")["QueueUrl"]
    settings = OperatorSettings(
        resync_interval_seconds=600,
        metrics_port=0,
        health_port=0,
        drift_queue_url=queue_url,
        drift_queue_wait_seconds=1,
    )

    def factory(operator_settings: OperatorSettings, metrics: Metrics) -> Reconciler:
        aws_settings = AwsSettings(endpoint_url=moto.endpoint_url, region=moto.region, max_attempts=2)
        return Reconciler(AwsGateway(aws_settings, session=moto.session()))

    memo = kopf.Memo()
    operator(build_registry(settings, factory), memo=memo)
    setup = Setup(moto, kube_client, namespace, memo, queue_url)
    yield setup
    for name in setup.created:
        kube_client.delete_object(PROTECTED_BUCKETS, name, namespace=namespace)
    for name in setup.created:
        kube_client.wait_until_gone(PROTECTED_BUCKETS, name, namespace=namespace)


def protect(setup: Setup, bucket: str) -> str:
    moto = setup.moto
    role = f"backup-{secrets.token_hex(3)}"
    moto.client("iam").create_role(RoleName=role, Path="/service-role/", AssumeRolePolicyDocument=TRUST_POLICY)
    moto.client("s3").create_bucket(Bucket=bucket)
    name = f"drift-{secrets.token_hex(3)}"
    spec = {"bucketName": bucket, "allowedSourceIps": ["192.0.2.0/24"], "exemptRoles": [{"name": role}]}
    setup.kube.create_object(PROTECTED_BUCKETS, {"metadata": {"name": name}, "spec": spec}, namespace=setup.namespace)
    setup.created.append(name)
    setup.kube.wait_for_status(
        PROTECTED_BUCKETS,
        name,
        lambda s: any(c.get("type") == "Ready" and c.get("status") == "True" for c in s.get("conditions", [])),
        namespace=setup.namespace,
        timeout=DEADLINE,
    )
    return name


def test_drift_queue_ignores_own_writes_and_repairs_foreign_ones_at_once(drift_setup: Setup) -> None:
    setup, moto = drift_setup, drift_setup.moto
    bucket = f"bw-drift-{secrets.token_hex(3)}"
    name = protect(setup, bucket)
    me = moto.client("sts").get_caller_identity()  # moto: the operator and the test share one identity

    # An edit that claims to be the operator's own write is left alone (until the 10-minute resync).
    moto.client("s3").put_bucket_policy(Bucket=bucket, Policy=foreign_only(bucket))
    setup.send(cloudtrail_event(bucket, arn=me["Arn"], principal_id=me["UserId"]))
    wait_until(lambda: setup.verdicts("own-write") == 1, timeout=DEADLINE, what="the own-write event handled")
    assert not has_our_statement(moto, bucket)
    assert DRIFT_ANNOTATION not in (setup.kube.get_object(PROTECTED_BUCKETS, name, namespace=setup.namespace) or {})[
        "metadata"
    ].get("annotations", {})

    # The same edit by someone else is repaired through the queue, and counted as a drift correction.
    foreign = cloudtrail_event(
        bucket, arn="arn:aws:sts::123456789012:assumed-role/Admin/alice", principal_id="AROAEXAMPLEADMIN12345:alice"
    )
    setup.send(foreign)
    wait_until(lambda: has_our_statement(moto, bucket), timeout=DEADLINE, what="the bucket repaired via the queue")
    wait_until(lambda: setup.status(name).get("driftCorrections") == 1, timeout=DEADLINE, what="driftCorrections 1")

    # The same event again (SQS delivers at least once) is harmless: nothing changes, nothing is written.
    setup.send(foreign)
    wait_until(lambda: setup.verdicts("reconciled") == 2, timeout=DEADLINE, what="the duplicate handled")
    assert has_our_statement(moto, bucket)
    assert setup.status(name).get("driftCorrections") == 1


def test_drift_queue_skips_buckets_no_protectedbucket_claims(drift_setup: Setup) -> None:
    setup = drift_setup
    setup.send(cloudtrail_event("nobody-claims-this", arn="arn:aws:iam::123456789012:user/bob", principal_id="AIDA1"))
    setup.send("not even json")
    wait_until(
        lambda: setup.verdicts("unmanaged") == 1 and setup.verdicts("not-a-policy-event") == 1,
        timeout=DEADLINE,
        what="both messages handled",
    )
    attributes = setup.moto.client("sqs").get_queue_attributes(
        QueueUrl=setup.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
