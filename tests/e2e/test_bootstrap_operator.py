"""Through the enforcing S3 front: the seed policy locks the in-cluster operator out, `bootstrap` lets it in.

The operator acts as a session of its own IAM role (as with IRSA) from the cluster's NAT address; an admin on
the office network runs bootstrap once; then the operator's next reconcile is Ready and AWS Backup completes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from bucketwarden.aws import AwsGateway, AwsSettings
from bucketwarden.bootstrap import run_bootstrap
from bucketwarden.k8s import OperatorSettings, build_registry
from bucketwarden.reconciler import Reconciler
from bucketwarden_testkit import PROTECTED_BUCKETS, EnforcedMoto, KubeClient, MotoServer, run_backup_job
from tests.e2e.conftest import OperatorFactory
from tests.shared import DEADLINE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROLE = "AWSBackupDefaultServiceRole"
CIDRS = ["192.0.2.0/24", "203.0.113.0/24"]


def seed(bucket: str) -> dict[str, Any]:
    deny = {
        "Sid": "SourceIPRestriction001",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"NotIpAddress": {"aws:SourceIp": CIDRS}},
    }
    return {"Version": "2012-10-17", "Statement": [deny]}


def ready(status: Mapping[str, Any], reason: str) -> bool:
    return any(c.get("type") == "Ready" and c.get("reason") == reason for c in status.get("conditions", []))


def test_operator_locked_out_by_the_seed_policy_is_admitted_after_bootstrap(
    moto: MotoServer, kube_client: KubeClient, namespace: str, operator: OperatorFactory, tmp_path: Path
) -> None:
    if not isinstance(moto, EnforcedMoto):
        pytest.skip("needs the enforcing S3 front (BUCKETWARDEN_S3_FRONT is off)")
    bucket = "awsbackup-bootstrap-e2e"
    s3, iam = moto.client("s3"), moto.client("iam")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="data/object-1", Body=b"payload")
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(seed(bucket)))
    backup_arn = iam.create_role(RoleName=ROLE, Path="/service-role/", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    operator_arn = moto.create_operator_role()
    assert not run_backup_job(moto, bucket, backup_arn).completed  # the outage

    session = moto.role_session(operator_arn, "botocore-session-1")
    settings = OperatorSettings(resync_interval_seconds=1.0, resync_jitter_seconds=0.1, metrics_port=0, health_port=0)

    def factory(_: OperatorSettings, __: Any) -> Reconciler:
        aws = AwsSettings(endpoint_url=moto.endpoint("nat"), region=moto.region, max_attempts=2)
        return Reconciler(AwsGateway(aws, session=session, ttl_seconds=1.0))

    operator(build_registry(settings, factory))
    spec = {"bucketName": bucket, "allowedSourceIps": CIDRS, "exemptRoles": [{"name": ROLE}]}
    spec["adoptSids"] = ["SourceIPRestriction001"]
    manifest = {"apiVersion": "bucketwarden.io/v1alpha1", "kind": "ProtectedBucket", "metadata": {"name": "boot"}}
    kube_client.create_object(PROTECTED_BUCKETS, {**manifest, "spec": spec}, namespace=namespace)
    locked = kube_client.wait_for_status(
        PROTECTED_BUCKETS, "boot", lambda s: ready(s, "AccessDenied"), namespace=namespace, timeout=DEADLINE
    )
    message = next(c["message"] for c in locked["status"]["conditions"] if c["type"] == "Ready")
    assert f"bucketwarden bootstrap -f <manifest of bucket {bucket}> --operator-role {operator_arn}" in message

    path = tmp_path / "pb.yaml"
    path.write_text(yaml.safe_dump({**manifest, "metadata": {"name": "boot", "namespace": namespace}, "spec": spec}))
    admin = AwsGateway(
        AwsSettings(endpoint_url=moto.endpoint("office"), region=moto.region, max_attempts=2),
        session=moto.user_session("admin"),
    )
    assert run_bootstrap(str(path), operator_arn, aws=admin, out=lambda _: None) == 0

    kube_client.wait_for_status(
        PROTECTED_BUCKETS, "boot", lambda s: ready(s, "Protected"), namespace=namespace, timeout=DEADLINE
    )
    job = run_backup_job(moto, bucket, backup_arn)
    assert job.completed, job.describe()
    # Deleted while the operator runs and is let in, so its finalizer is released.
    kube_client.delete_object(PROTECTED_BUCKETS, "boot", namespace=namespace)
    kube_client.wait_until_gone(PROTECTED_BUCKETS, "boot", namespace=namespace, timeout=DEADLINE)
