"""File mode over moto: `bucketwarden plan/apply -f DIR` as a user runs it, and the calls 100 buckets cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from bucketwarden.filemode import reconcile_all
from bucketwarden.manifests import Manifest, parse_manifest
from bucketwarden.policy import PolicyDocument
from bucketwarden.reconciler import Reconciler
from bucketwarden_testkit import MotoServer
from tests.aws._cli import backup_world, manifest, run_cli
from tests.aws._harness import AdminClients
from tests.aws._world import MotoWorld


@pytest.fixture
def world(moto: MotoServer, boto_session: boto3.session.Session, admin: AdminClients) -> MotoWorld:
    return backup_world(moto, boto_session, admin)


def test_cli_plan_then_apply_then_plan_against_aws_endpoint(world: MotoWorld, moto: MotoServer, tmp_path: Path) -> None:
    for i in range(3):
        world.create_bucket(f"filemode-bucket-{i}")
    docs = [manifest(f"b{i}", f"filemode-bucket-{i}") for i in range(3)]
    (tmp_path / "buckets.yaml").write_text(yaml.safe_dump_all(docs))

    plan = run_cli(moto, "plan", "-f", str(tmp_path))
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert '+      "Sid": "BucketWardenIpRestriction"' in plan.stdout
    assert all(world.policy_of(f"filemode-bucket-{i}") is None for i in range(3))  # plan writes nothing

    apply = run_cli(moto, "apply", "-f", str(tmp_path), "--output", "json")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    rows = json.loads(apply.stdout)
    assert [r["outcome"] for r in rows] == ["Updated"] * 3
    for i in range(3):
        text = world.policy_of(f"filemode-bucket-{i}")
        assert text is not None and PolicyDocument.parse(text).sids == ["BucketWardenIpRestriction"]

    again = run_cli(moto, "plan", "-f", str(tmp_path))
    assert again.returncode == 0, again.stdout + again.stderr


def test_cli_apply_reports_errors_with_exit_1_and_no_traceback(
    world: MotoWorld, moto: MotoServer, tmp_path: Path
) -> None:
    (tmp_path / "missing.yaml").write_text(yaml.safe_dump(manifest("gone", "no-such-bucket-anywhere")))
    result = run_cli(moto, "apply", "-f", str(tmp_path))
    assert result.returncode == 1
    assert "BucketNotFound" in result.stdout
    assert "Traceback" not in result.stderr


def test_reconcile_all_100_buckets_cost_one_get_role_and_steady_state_is_one_get_each(world: MotoWorld) -> None:
    buckets = [f"economy-{i:03d}" for i in range(100)]
    for b in buckets:
        world.create_bucket(b)
    manifests = [Manifest(b, parse_manifest(manifest(b, b), b)) for b in buckets]
    reconciler = Reconciler(world)

    world.counter.reset()
    first = reconcile_all(reconciler, manifests)
    assert all(r.outcome == "Updated" for r in first)
    assert world.counter.snapshot() == {
        "GetCallerIdentity": 1,
        "GetRole": 1,
        "GetBucketPolicy": 100,
        "PutBucketPolicy": 100,
    }
    # Per-reconcile counts add up to the global ones (each reconcile sees only its own thread's calls).
    per_bucket = sum(r.aws_calls.get("GetBucketPolicy", 0) for r in first)
    assert per_bucket == 100

    world.counter.reset()
    second = reconcile_all(reconciler, manifests)
    assert all(r.outcome == "InSync" for r in second)
    assert world.counter.snapshot() == {"GetBucketPolicy": 100}


def test_reconcile_assume_role_path_uses_the_assumed_identity(world: MotoWorld, admin: AdminClients) -> None:
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    target = admin.iam.create_role(RoleName="bucketwarden-cross-account", AssumeRolePolicyDocument=trust)["Role"]
    world.create_bucket("assumed-bucket")
    spec = manifest("x", "assumed-bucket", assumeRoleArn=target["Arn"])
    result = Reconciler(world).reconcile(parse_manifest(spec, "x").spec)
    assert result.outcome == "Updated", result.conditions
    assert result.aws_calls.get("AssumeRole", 0) <= 1
    operator = next(e for e in result.exempt_principals if e.kind == "Operator")
    assert operator.pattern == f"{target['RoleId']}:*"  # every session of the assumed role is exempt
    assert "assumed-role/bucketwarden-cross-account/" in (result.operator_principal or "")


def test_reconcile_sends_expected_bucket_owner_on_every_s3_call(world: MotoWorld) -> None:
    seen: list[tuple[str, str | None]] = []

    def capture(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen.append((model.name, params.get("headers", {}).get("x-amz-expected-bucket-owner")))

    s3 = world.factory.s3()
    s3.meta.events.register("before-call.s3", capture)
    world.create_bucket("owned-bucket")
    spec = parse_manifest(manifest("x", "owned-bucket", expectedBucketOwner="123456789012"), "x").spec
    reconciler = Reconciler(world)
    reconciler.reconcile(spec)
    reconciler.cleanup(spec)
    apis = {api for api, _ in seen}
    assert {"GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"} <= apis
    assert all(owner == "123456789012" for _, owner in seen)
