"""Multi-tenant safety of file mode, through the real CLI against moto: adoptSids cannot delete a safeguard it
does not supersede, and two manifests for one bucket are both refused (Conflict) instead of the last one winning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from bucketwarden.aws import AwsGateway
from bucketwarden.manifests import parse_manifest
from bucketwarden.policy import PolicyDocument
from bucketwarden.reconciler import Reconciler
from bucketwarden_testkit import MotoServer
from tests.aws._cli import backup_world, manifest, run_cli
from tests.aws._harness import AdminClients, moto_settings
from tests.aws._world import MotoWorld

SECURITY_SIDS = ["SecurityTeamDenyDelete", "DenyInsecureTransport"]


@pytest.fixture
def world(moto: MotoServer, boto_session: boto3.session.Session, admin: AdminClients) -> MotoWorld:
    return backup_world(moto, boto_session, admin)


def safeguards(bucket: str) -> list[dict[str, Any]]:
    """The issue's policy: two statements of a security team, and an old IP restriction that may be adopted."""
    arns = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    return [
        {
            "Sid": "SecurityTeamDenyDelete",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["s3:DeleteBucket", "s3:DeleteBucketPolicy"],
            "Resource": arns[0],
            "Condition": {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/security"}},
        },
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": arns,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "SourceIPRestriction001",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": arns,
            "Condition": {"NotIpAddress": {"aws:SourceIp": "198.51.100.0/24"}},
        },
    ]


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def sids_of(world: MotoWorld, bucket: str) -> list[str]:
    text = world.policy_of(bucket)
    return PolicyDocument.parse(text).sids if text else []


@pytest.mark.parametrize("command", ["apply", "plan"])
def test_cli_adopt_sids_refuses_a_statement_ours_does_not_supersede(
    world: MotoWorld, moto: MotoServer, tmp_path: Path, command: str
) -> None:
    bucket = "team-b-shared"
    world.create_bucket(bucket, policy=policy(*safeguards(bucket)))
    before = world.policy_of(bucket)
    (tmp_path / "pb.yaml").write_text(yaml.safe_dump(manifest("grab", bucket, adoptSids=SECURITY_SIDS)))

    result = run_cli(moto, command, "-f", str(tmp_path), "--output", "json")

    assert result.returncode == 1, result.stdout + result.stderr
    [row] = json.loads(result.stdout)
    ready = next(c for c in row["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "AdoptionRefused")
    refused = {f["sid"] for f in row["findings"] if f["code"] == "AdoptionRefused" and f["severity"] == "Error"}
    assert refused == set(SECURITY_SIDS)
    assert all(sid in ready["message"] for sid in SECURITY_SIDS)
    assert world.policy_of(bucket) == before  # nothing written, byte for byte


def test_cli_adopts_an_ip_restriction_and_cleanup_keeps_the_safeguards(
    world: MotoWorld, moto: MotoServer, boto_session: boto3.session.Session, tmp_path: Path
) -> None:
    bucket = "team-b-adopt"
    world.create_bucket(bucket, policy=policy(*safeguards(bucket)))
    doc = manifest("adopt", bucket, adoptSids=["SourceIPRestriction001"])
    (tmp_path / "pb.yaml").write_text(yaml.safe_dump(doc))

    result = run_cli(moto, "apply", "-f", str(tmp_path), "--output", "json")

    assert result.returncode == 0, result.stdout + result.stderr
    [row] = json.loads(result.stdout)
    assert [a["sid"] for a in row["adoptedStatements"]] == ["SourceIPRestriction001"]
    assert sids_of(world, bucket) == [*SECURITY_SIDS, "BucketWardenIpRestriction"]
    # A later spec names the safeguards too: the resource is then deleted. They must survive the cleanup.
    grabbing = parse_manifest(manifest("adopt", bucket, adoptSids=["SourceIPRestriction001", *SECURITY_SIDS]), "x")
    gateway = AwsGateway(moto_settings(moto), session=boto_session)
    cleanup = Reconciler(gateway).cleanup(grabbing.spec)
    assert cleanup.outcome == "Deleted"
    assert sids_of(world, bucket) == SECURITY_SIDS


@pytest.mark.parametrize(("command", "exit_code"), [("apply", 1), ("plan", 1)])
def test_cli_two_manifests_for_one_bucket_are_both_conflicts_and_nothing_is_written(
    world: MotoWorld, moto: MotoServer, tmp_path: Path, command: str, exit_code: int
) -> None:
    contested, alone = "contested-bucket", "uncontested-bucket"
    world.create_bucket(contested, policy=policy(*safeguards(contested)[:2]))
    world.create_bucket(alone)
    before = world.policy_of(contested)
    with_backup = manifest("with-backup", contested)
    without_backup = manifest("without-backup", contested, exemptRoles=[])
    (tmp_path / "a.yaml").write_text(yaml.safe_dump_all([with_backup, manifest("alone", alone)]))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(without_backup))

    result = run_cli(moto, command, "-f", str(tmp_path), "--output", "json")

    assert result.returncode == exit_code, result.stdout + result.stderr
    rows = {r["resource"]: r for r in json.loads(result.stdout)}
    for name in ("team-a/with-backup", "team-a/without-backup"):
        ready = next(c for c in rows[name]["conditions"] if c["type"] == "Ready")
        assert (ready["reason"], rows[name]["outcome"]) == ("Conflict", "Blocked")
        assert "team-a/with-backup" in ready["message"] and "team-a/without-backup" in ready["message"]
        assert rows[name]["awsCalls"] == {}
    assert world.policy_of(contested) == before
    alone_row = rows["team-a/alone"]
    assert alone_row["outcome"] == ("Updated" if command == "apply" else "WouldUpdate")


def test_cli_plan_table_names_the_conflict(world: MotoWorld, moto: MotoServer, tmp_path: Path) -> None:
    world.create_bucket("contested-table")
    docs = [manifest("one", "contested-table"), manifest("two", "contested-table")]
    (tmp_path / "m.yaml").write_text(yaml.safe_dump_all(docs))

    result = run_cli(moto, "plan", "-f", str(tmp_path))

    assert result.returncode == 1
    assert result.stdout.count("Conflict") >= 2
    assert "a bucket has at most one owner" in result.stdout
    assert world.policy_of("contested-table") is None
