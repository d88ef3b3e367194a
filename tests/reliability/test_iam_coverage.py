"""docs/iam-policy.json grants what the operator calls, no more and no less.

A representative set of reconciles, cleanups and cross-account (assume-role) work runs through the real
AwsGateway against moto, behind AwsFaultProxy (no faults): the proxy sees each request's service (from its SigV4
credential scope) and operation, which names the IAM action it needs; AwsCallCounter sees the same operations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bucketwarden.aws import AwsCallCounter, AwsGateway, AwsSettings, DriftQueue
from bucketwarden.filemode import run_file_mode
from bucketwarden.reconciler import Reconciler
from bucketwarden.spec import ProtectedBucketSpec
from bucketwarden_testkit import AwsFaultProxy, MotoServer
from tests.reliability._kit import ACCOUNT, ROLE, foreign_statements, policy_text
from tests.shared import REPO_ROOT, TRUST_POLICY

IAM_POLICIES = [REPO_ROOT / "docs" / "iam-policy.json", REPO_ROOT / "docs" / "iam-policy-scoped.json"]
# STS answers GetCallerIdentity for any valid credentials: no policy grants or denies it.
NEEDS_NO_PERMISSION = {"sts:GetCallerIdentity"}
MANIFEST = """
apiVersion: bucketwarden.io/v1alpha1
kind: ProtectedBucket
metadata: {{name: file-mode}}
spec:
  bucketName: {bucket}
  allowedSourceIps: [192.0.2.0/24]
  exemptRoles: [{{name: {role}}}]
"""


def granted_actions(path: Path) -> set[str]:
    policy = json.loads(path.read_text(encoding="utf-8"))
    actions: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        value = statement["Action"]
        actions.update([value] if isinstance(value, str) else value)
    return actions


def spec(bucket: str, **extra: Any) -> ProtectedBucketSpec:
    doc = {"bucketName": bucket, "allowedSourceIps": ["192.0.2.0/24"], "exemptRoles": [{"name": ROLE}], **extra}
    return ProtectedBucketSpec.model_validate(doc)


def test_every_aws_call_is_an_action_the_iam_policy_grants(
    moto: MotoServer, tmp_path: Path, figures: dict[str, Any]
) -> None:
    moto.reset()
    s3, iam = moto.client("s3"), moto.client("iam")
    iam.create_role(RoleName=ROLE, Path="/service-role/", AssumeRolePolicyDocument=TRUST_POLICY)
    # An inline policy, so the AWS Backup readiness check reads it (iam:GetRolePolicy) too.
    inline = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}]}
    iam.put_role_policy(RoleName=ROLE, PolicyName="s3-backup-inline", PolicyDocument=json.dumps(inline))
    target = iam.create_role(RoleName="bucketwarden-target", AssumeRolePolicyDocument=TRUST_POLICY)["Role"]["Arn"]
    buckets = ["bw-iam-foreign", "bw-iam-alone", "bw-iam-assumed", "bw-iam-file"]
    for bucket in buckets:
        s3.create_bucket(Bucket=bucket)
    for bucket in ("bw-iam-foreign", "bw-iam-assumed"):
        s3.put_bucket_policy(Bucket=bucket, Policy=policy_text(*foreign_statements(bucket)))

    queue_url = moto.client("sqs").create_queue(QueueName="bucketwarden-drift")["QueueUrl"]
    moto.client("sqs").send_message(QueueUrl=queue_url, MessageBody="{}")

    with AwsFaultProxy(moto.endpoint_url) as proxy:
        counter = AwsCallCounter()
        settings = AwsSettings(region=moto.region, endpoint_url=proxy.endpoint_url, max_attempts=2)
        aws = AwsGateway(settings, counter, session=moto.session())
        reconciler = Reconciler(aws)
        role_arn = f"arn:aws:iam::{ACCOUNT}:role/service-role/{ROLE}"
        outcomes = [
            reconciler.reconcile(spec("bw-iam-foreign")).outcome,  # GET, PUT, whoami, GetRole
            reconciler.reconcile(spec("bw-iam-foreign")).outcome,  # in sync: GET only
            reconciler.reconcile(spec("bw-iam-alone", exemptRoles=[{"arn": role_arn}])).outcome,
            reconciler.reconcile(spec("bw-iam-alone", exemptionKey="principalArn")).outcome,
            reconciler.reconcile(spec("bw-iam-assumed", assumeRoleArn=target)).outcome,  # AssumeRole, then as it
            reconciler.reconcile(spec("bw-iam-missing")).outcome,
            reconciler.reconcile(spec("bw-iam-alone", exemptRoles=[{"name": "NoSuchRole"}])).outcome,
            reconciler.cleanup(spec("bw-iam-foreign")).outcome,  # foreign statements remain: PUT
            reconciler.cleanup(spec("bw-iam-alone")).outcome,  # nothing remains: DELETE
            reconciler.cleanup(spec("bw-iam-assumed", assumeRoleArn=target)).outcome,
        ]
        # Event-driven drift (BUCKETWARDEN_DRIFT_QUEUE_URL): check the queue once, long-poll, delete what was handled.
        queue = DriftQueue(aws.factory, queue_url, wait_seconds=1)
        queue.check()
        for message in queue.receive():
            queue.delete(message)
        # File mode runs the AWS Backup readiness checks (versioning, the exempt role's policies), as the operator does.
        manifest = tmp_path / "m.yaml"
        manifest.write_text(MANIFEST.format(bucket="bw-iam-file", role=ROLE), encoding="utf-8")
        assert run_file_mode(str(manifest), plan_only=False, aws=aws) == 0
        records = proxy.records()

    assert outcomes == [
        "Updated",
        "InSync",
        "Updated",
        "Updated",
        "Updated",
        "Failed",
        "Failed",
        "Deleted",
        "Deleted",
        "Deleted",
    ]
    called = {f"{r.service}:{r.api}" for r in records}
    assert {r.api for r in records} == set(counter.snapshot())  # the counter and the wire agree
    assert called >= NEEDS_NO_PERMISSION
    needed = called - NEEDS_NO_PERMISSION
    for path in IAM_POLICIES:
        assert needed - granted_actions(path) == set(), f"the operator calls an action {path.name} does not grant"
        assert granted_actions(path) - needed == set(), f"{path.name} grants an action the operator never calls"
    figures["iam_actions_called"] = sorted(called)


AUDIT_POLICY = REPO_ROOT / "docs" / "iam-audit-policy.json"
# IAM action names that differ from the API's name.
ACTION_OF_API = {"s3:ListBuckets": "s3:ListAllMyBuckets"}


def test_the_audit_calls_exactly_what_docs_iam_audit_policy_grants(moto: MotoServer, tmp_path: Path) -> None:
    from bucketwarden.audit import run_audit
    from bucketwarden.cli import build_parser

    moto.reset()
    s3, iam = moto.client("s3"), moto.client("iam")
    iam.create_role(RoleName=ROLE, Path="/service-role/", AssumeRolePolicyDocument=TRUST_POLICY)
    target = iam.create_role(RoleName="bucketwarden-auditor", AssumeRolePolicyDocument=TRUST_POLICY)["Role"]["Arn"]
    s3.create_bucket(Bucket="bw-audit-a")
    s3.put_bucket_tagging(Bucket="bw-audit-a", Tagging={"TagSet": [{"Key": "team", "Value": "a"}]})
    s3.put_bucket_policy(Bucket="bw-audit-a", Policy=policy_text(*foreign_statements("bw-audit-a")))
    with AwsFaultProxy(moto.endpoint_url) as proxy:
        counter = AwsCallCounter()
        settings = AwsSettings(region=moto.region, endpoint_url=proxy.endpoint_url, max_attempts=2)
        aws = AwsGateway(settings, counter, session=moto.session())
        out = tmp_path / "out.json"
        with out.open("w", encoding="utf-8") as sink:
            argv = ["audit", "--output", "json", "--tag", "team=a", "--assume-role-arn", target]
            assert run_audit(build_parser().parse_args(argv), gateway=aws, out=sink, err=sink) in (0, 2)
        records = proxy.records()
    called = {ACTION_OF_API.get(f"{r.service}:{r.api}", f"{r.service}:{r.api}") for r in records}
    assert {r.api for r in records} == set(counter.snapshot())
    granted = {
        a
        for s in json.loads(AUDIT_POLICY.read_text(encoding="utf-8"))["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert called == granted
    assert not [a for a in called if any(w in a for w in ("Put", "Delete", "Create"))]  # read-only
