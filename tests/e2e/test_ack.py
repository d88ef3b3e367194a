"""Beside ACK: an ACK Bucket CRD installed in the Kubernetes API, a stand-in ACK controller writing spec.policy.

Detection: a ProtectedBucket for a bucket an ACK Bucket manages says so (naming it) and writes nothing.
Write-through: with policyWriter: ACK it merges our statement into the ACK Bucket's spec.policy, keeping every
other statement and every other field; the stand-in controller writes it to S3; verification reads it back.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from botocore.exceptions import ClientError

from bucketwarden.aws import AwsGateway, AwsSettings
from bucketwarden.k8s import Metrics, OperatorSettings, build_registry
from bucketwarden.policy import PolicyDocument
from bucketwarden.reconciler import Reconciler
from bucketwarden_testkit import (
    PROTECTED_BUCKETS,
    KubeClient,
    KubeTarget,
    MotoServer,
    ResourceSpec,
    run_operator_in_thread,
    wait_until,
)
from tests.shared import DEADLINE, OUR_SID, BackgroundLoop

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ACK_CRD_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "ack" / "s3.services.k8s.aws_buckets.yaml"
ACK_CRD = yaml.safe_load(ACK_CRD_FILE.read_text())
(ACK_BUCKETS,) = ResourceSpec.from_crd(ACK_CRD)


class StandInAck(BackgroundLoop):
    """What the ACK S3 controller does with spec.policy: PUT it to the bucket whenever it changes."""

    interval = 0.2

    def __init__(self, kube: KubeClient, namespace: str, s3: S3Client) -> None:
        super().__init__("stand-in-ack")
        self.kube, self.namespace, self.s3 = kube, namespace, s3
        self.written: dict[str, str] = {}

    def tick(self) -> None:
        for obj in self.kube.list_objects(ACK_BUCKETS, namespace=self.namespace):
            spec = obj.get("spec") or {}
            bucket, policy = spec.get("name"), spec.get("policy")
            if bucket and policy and self.written.get(bucket) != policy:
                self.s3.put_bucket_policy(Bucket=bucket, Policy=policy)
                self.written[bucket] = policy


@dataclass
class Env:
    kube: KubeClient
    namespace: str
    s3: S3Client
    created: list[tuple[ResourceSpec, str]] = field(default_factory=list)


@pytest.fixture(scope="module")
def warden(kube: KubeTarget, kube_client: KubeClient, namespace: str, moto: MotoServer) -> Iterator[Env]:
    kube_client.apply_crd(ACK_CRD)
    settings = OperatorSettings(resync_interval_seconds=1.0, metrics_port=0, health_port=0, ack_coexistence=True)

    def factory(operator_settings: OperatorSettings, metrics: Metrics) -> Reconciler:
        gateway = AwsGateway(
            AwsSettings(endpoint_url=moto.endpoint_url, region=moto.region, max_attempts=2), session=moto.session()
        )
        return Reconciler(gateway)

    s3 = moto.client("s3")
    with (
        run_operator_in_thread(build_registry(settings, factory), server_or_kubeconfig=kube, namespaces=[namespace]),
        StandInAck(kube_client, namespace, s3),
    ):
        yield Env(kube_client, namespace, s3)


@pytest.fixture
def env(warden: Env, moto: MotoServer) -> Iterator[Env]:
    warden.created = []
    yield warden
    with contextlib.ExitStack() as deleting:
        for resource, name in reversed(warden.created):
            warden.kube.delete_object(resource, name, namespace=warden.namespace)
            deleting.callback(warden.kube.wait_until_gone, resource, name, namespace=warden.namespace)


def foreign_policy(bucket: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CloudFrontRead",
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            },
            {
                "Sid": "PartnerList",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
            },
        ],
    }


def create_ack_bucket(env: Env, name: str, bucket: str) -> dict[str, Any]:
    env.s3.create_bucket(Bucket=bucket)
    spec = {
        "name": bucket,
        "policy": json.dumps(foreign_policy(bucket)),
        "acl": "private",
        "tagging": {"tagSet": [{"key": "team", "value": "data"}]},
    }
    obj = env.kube.create_object(ACK_BUCKETS, {"metadata": {"name": name}, "spec": spec}, namespace=env.namespace)
    env.created.append((ACK_BUCKETS, name))
    return obj


def create_protected_bucket(env: Env, name: str, spec: Mapping[str, Any]) -> None:
    env.kube.create_object(PROTECTED_BUCKETS, {"metadata": {"name": name}, "spec": dict(spec)}, namespace=env.namespace)
    env.created.append((PROTECTED_BUCKETS, name))


def live_policy(env: Env, bucket: str) -> str | None:
    try:
        return env.s3.get_bucket_policy(Bucket=bucket)["Policy"]
    except ClientError:
        return None


def condition(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in status.get("conditions", []) if c.get("type") == kind]
    return found[0] if found else {}


def test_ack_bucket_for_the_same_bucket_is_detected_and_nothing_is_written(env: Env) -> None:
    bucket, ack_name = f"bw-ack-d-{secrets.token_hex(3)}", "data-bucket"
    create_ack_bucket(env, ack_name, bucket)
    wait_until(lambda: live_policy(env, bucket), timeout=DEADLINE, what="ACK writing its policy")
    written_by_ack = live_policy(env, bucket)

    create_protected_bucket(env, "beside-ack", {"bucketName": bucket, "allowedSourceIps": ["192.0.2.0/24"]})
    obj = env.kube.wait_for_status(
        PROTECTED_BUCKETS,
        "beside-ack",
        lambda s: condition(s, "Synced").get("reason") == "ManagedByACK",
        namespace=env.namespace,
        timeout=DEADLINE,
    )
    ready = condition(obj["status"], "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ManagedByACK")
    assert f"ACK Bucket {env.namespace}/{ack_name}" in ready["message"] and "policyWriter: ACK" in ready["message"]
    assert live_policy(env, bucket) == written_by_ack  # byte for byte: bucketwarden wrote nothing


def test_ack_write_through_merges_our_statement_and_keeps_every_other(env: Env) -> None:
    bucket, ack_name = f"bw-ack-w-{secrets.token_hex(3)}", "served-bucket"
    before = create_ack_bucket(env, ack_name, bucket)
    spec = {
        "bucketName": bucket,
        "allowedSourceIps": ["192.0.2.0/24"],
        "policyWriter": "ACK",
        "bucketRef": {"name": ack_name},
    }
    create_protected_bucket(env, "through-ack", spec)

    def ack_policy() -> PolicyDocument | None:
        obj = env.kube.get_object(ACK_BUCKETS, ack_name, namespace=env.namespace) or {}
        text = (obj.get("spec") or {}).get("policy")
        document = PolicyDocument.parse(text) if text else None
        return document if document is not None and document.find(OUR_SID) else None

    merged = wait_until(ack_policy, timeout=DEADLINE, what="our statement in the ACK Bucket's spec.policy")
    foreign = PolicyDocument.from_obj(foreign_policy(bucket))
    assert [s for s in merged.statements if s.sid != OUR_SID] == list(foreign.statements)  # kept, in order
    assert len(merged.find(OUR_SID)) == 1
    after = env.kube.get_object(ACK_BUCKETS, ack_name, namespace=env.namespace)
    assert after is not None
    assert {k: v for k, v in after["spec"].items() if k != "policy"} == {
        k: v for k, v in before["spec"].items() if k != "policy"
    }

    obj = env.kube.wait_for_status(
        PROTECTED_BUCKETS,
        "through-ack",
        lambda s: condition(s, "Ready").get("reason") == "Protected",
        namespace=env.namespace,
        timeout=DEADLINE,
    )
    assert condition(obj["status"], "Synced")["reason"] == "WrittenThroughACK"
    assert condition(obj["status"], "Verified")["status"] == "True"
    live = live_policy(env, bucket)
    assert live is not None and PolicyDocument.parse(live) == merged  # ACK wrote it; we read it back
