"""`bucketwarden bootstrap` and file mode's choice of exempted principals, through the enforcing S3 front."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from bucketwarden.aws import AwsGateway, AwsSettings
from bucketwarden.bootstrap import run_bootstrap
from bucketwarden.cli import main
from bucketwarden.filemode import run_file_mode
from bucketwarden.policy import PolicyDocument
from bucketwarden.reconciler import Reconciler
from bucketwarden.spec import ProtectedBucketSpec
from bucketwarden_testkit import EnforcedMoto, run_backup_job, scrubbed_environ

BUCKET = "bootstrap-bucket"
ROLE = "AWSBackupDefaultServiceRole"
CIDRS = ["192.0.2.0/24", "203.0.113.0/24"]
SPEC = {"bucketName": BUCKET, "allowedSourceIps": CIDRS, "exemptRoles": [{"name": ROLE}], "adoptSids": ["Seed"]}
SEED = {
    "Sid": "Seed",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
    "Condition": {"NotIpAddress": {"aws:SourceIp": CIDRS}},
}


@pytest.fixture
def world(enforced: EnforcedMoto, tmp_path: Path) -> dict[str, Any]:
    enforced.reset()
    s3, iam = enforced.client("s3"), enforced.client("iam")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET, Key="data/object-1", Body=b"payload")
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [SEED]}))
    backup = iam.create_role(RoleName=ROLE, Path="/service-role/", AssumeRolePolicyDocument="{}")["Role"]
    operator_arn = enforced.create_operator_role()
    manifest = tmp_path / "pb.yaml"
    doc = {"apiVersion": "bucketwarden.io/v1alpha1", "kind": "ProtectedBucket", "metadata": {"name": "pb"}}
    manifest.write_text(yaml.safe_dump({**doc, "spec": SPEC}), encoding="utf-8")
    return {"backup_arn": backup["Arn"], "operator_arn": operator_arn, "manifest": str(manifest)}


def gateway(enforced: EnforcedMoto, network: str, session: boto3.session.Session) -> AwsGateway:
    return AwsGateway(AwsSettings(endpoint_url=enforced.endpoint(network), max_attempts=1), session=session)


def policy(enforced: EnforcedMoto) -> PolicyDocument:
    return PolicyDocument.parse(enforced.client("s3").get_bucket_policy(Bucket=BUCKET)["Policy"])


def test_bootstrap_from_the_office_lets_the_locked_out_operator_in(
    enforced: EnforcedMoto, world: dict[str, Any]
) -> None:
    operator = gateway(enforced, "nat", enforced.role_session(world["operator_arn"], "botocore-session-1"))
    spec = ProtectedBucketSpec.model_validate(SPEC)
    locked = Reconciler(operator).reconcile(spec)
    ready = locked.condition("Ready")
    assert ready is not None and ready.reason == "AccessDenied"
    assert f"bucketwarden bootstrap -f <manifest of bucket {BUCKET}> --operator-role {world['operator_arn']}" in (
        ready.message
    )
    assert not run_backup_job(enforced, BUCKET, world["backup_arn"]).completed

    lines: list[str] = []
    admin = gateway(enforced, "office", enforced.user_session("admin"))
    assert run_bootstrap(world["manifest"], world["operator_arn"], aws=admin, out=lines.append) == 0
    role_id = enforced.client("iam").get_role(RoleName="bucketwarden-operator")["Role"]["RoleId"]
    assert any(f"operator {role_id}:*" in line and "OK" in line for line in lines), lines
    assert "admin" not in json.dumps(policy(enforced).to_json())  # the runner is not the one exempted

    admitted = Reconciler(operator).reconcile(spec)
    assert admitted.ready, admitted.conditions
    assert run_backup_job(enforced, BUCKET, world["backup_arn"]).completed


def test_bootstrap_as_the_account_root_from_outside_works(enforced: EnforcedMoto, world: dict[str, Any]) -> None:
    root = gateway(enforced, "nat", enforced.root_session())
    assert run_bootstrap(world["manifest"], world["operator_arn"], aws=root, out=lambda _: None) == 0
    assert policy(enforced).find("BucketWardenIpRestriction")


def test_bootstrap_says_so_when_the_policy_denies_the_runner_too(enforced: EnforcedMoto, world: dict[str, Any]) -> None:
    lines: list[str] = []
    outsider = gateway(enforced, "nat", enforced.user_session("admin"))
    assert run_bootstrap(world["manifest"], world["operator_arn"], aws=outsider, out=lines.append) == 1
    assert any("the current bucket policy denies you too" in line for line in lines), lines
    assert policy(enforced).find("Seed")  # nothing was written


def test_cli_bootstrap_runs_with_the_callers_environment(enforced: EnforcedMoto, world: dict[str, Any]) -> None:
    creds = enforced.user_session("admin").get_credentials()
    assert creds is not None
    env = {
        "AWS_ENDPOINT_URL": enforced.endpoint("office"),
        "AWS_ACCESS_KEY_ID": creds.access_key,
        "AWS_SECRET_ACCESS_KEY": creds.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    argv = [sys.executable, "-m", "bucketwarden", "bootstrap", "-f", world["manifest"]]
    result = subprocess.run(
        [*argv, "--operator-role", world["operator_arn"]],
        env=scrubbed_environ(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "running as arn:aws:iam::123456789012:user/admin" in result.stdout
    assert "VERIFIED" in result.stdout


@pytest.mark.parametrize(
    ("options", "exempted"),
    [
        ({}, "caller"),
        ({"exempt_operator_role": "operator"}, "operator"),
        ({"exempt_caller": False}, None),
    ],
    ids=["default-exempts-the-caller", "operator-role-instead", "no-exempt-caller"],
)
def test_file_mode_apply_exempts_the_principal_the_runner_chose(
    enforced: EnforcedMoto,
    world: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    options: dict[str, Any],
    exempted: str | None,
) -> None:
    session = enforced.user_session("admin")
    admin = gateway(enforced, "office", session)
    if options.get("exempt_operator_role"):
        options = {**options, "exempt_operator_role": world["operator_arn"]}
    assert run_file_mode(world["manifest"], plan_only=False, aws=admin, **options) == 0
    iam = enforced.client("iam")
    caller_id = iam.get_user(UserName="admin")["User"]["UserId"]
    operator_id = iam.get_role(RoleName="bucketwarden-operator")["Role"]["RoleId"]
    text = json.dumps(policy(enforced).to_json())
    table = capsys.readouterr().out
    assert "EXEMPT" in table.splitlines()[0]
    assert (caller_id in text) == (exempted == "caller") == (f"operator {caller_id}" in table)
    assert (operator_id in text) == (exempted == "operator") == (f"operator {operator_id}:*" in table)


def test_cli_apply_takes_the_exemption_flags(
    enforced: EnforcedMoto, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    creds = enforced.user_session("admin").get_credentials()
    assert creds is not None
    monkeypatch.setenv("AWS_ENDPOINT_URL", enforced.endpoint("office"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    argv = ["apply", "-f", world["manifest"], "--exempt-operator-role", world["operator_arn"]]
    assert main(argv) == 0
    operator_id = enforced.client("iam").get_role(RoleName="bucketwarden-operator")["Role"]["RoleId"]
    assert f"operator {operator_id}:*" in capsys.readouterr().out
    assert f"{operator_id}:*" in json.dumps(policy(enforced).to_json())
