"""`bucketwarden plan/apply` against moto as a user runs them: plan gives apply's verdicts and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from bucketwarden.exitcodes import ExitCode
from bucketwarden_testkit import MotoServer
from tests.aws._cli import backup_world, run_cli
from tests.aws._cli import manifest as cli_manifest
from tests.aws._harness import AdminClients
from tests.aws._world import MotoWorld

HAND_WRITTEN = "SourceIPRestriction001"


def manifest(name: str, bucket: str, **spec: Any) -> dict[str, Any]:
    return cli_manifest(name, bucket, **{"allowedSourceIps": ["192.0.2.0/24", "2001:db8::/32"], **spec})


def hand_written_deny(bucket: str) -> str:
    statement = {
        "Sid": HAND_WRITTEN,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24"]}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.fixture
def world(moto: MotoServer, boto_session: boto3.session.Session, admin: AdminClients) -> MotoWorld:
    return backup_world(moto, boto_session, admin)


def verdicts(stdout: str) -> dict[str, tuple[str, str, str]]:
    out = {}
    for row in json.loads(stdout):
        ready = next(c for c in row["conditions"] if c["type"] == "Ready")
        out[row["bucket"]] = (row["action"], ready["status"], ready["reason"])
    return out


def test_cli_live_plan_refuses_what_apply_refuses_and_writes_nothing(
    world: MotoWorld, moto: MotoServer, tmp_path: Path
) -> None:
    world.create_bucket("cli-good")
    world.create_bucket("cli-private")
    world.create_bucket("cli-hand-written", policy=hand_written_deny("cli-hand-written"))
    docs = [
        manifest("good", "cli-good"),
        manifest("private", "cli-private", allowedSourceIps=["10.0.0.0/8"]),
        manifest("hand-written", "cli-hand-written"),  # its Deny also denies AWS Backup and the operator
    ]
    (tmp_path / "buckets.yaml").write_text(yaml.safe_dump_all(docs))
    before = {b: world.policy_of(b) for b in ("cli-good", "cli-private", "cli-hand-written")}

    plan = run_cli(moto, "plan", "-f", str(tmp_path))
    assert plan.returncode == ExitCode.FAILED, plan.stdout + plan.stderr
    rows = {line.split()[0]: line for line in plan.stdout.splitlines() if line.startswith("team-a/")}
    assert rows["team-a/good"].split()[2:6] == ["WouldUpdate", "put", "True", "Protected"]
    assert rows["team-a/private"].split()[2:6] == ["Failed", "none", "False", "InvalidSpec"]
    assert "10.0.0.0/8 is a private range" in rows["team-a/private"]
    assert rows["team-a/hand-written"].split()[2:6] == ["Blocked", "put", "False", "VerificationFailed"]
    assert f"list '{HAND_WRITTEN}' in spec.adoptSids" in rows["team-a/hand-written"]
    summary = plan.stdout.rstrip().splitlines()[-1]
    assert summary.startswith("3 buckets: 1 Blocked, 1 Failed, 1 WouldUpdate; ") and " AWS calls; " in summary
    assert plan.stderr == ""  # not a terminal: no progress
    assert {b: world.policy_of(b) for b in before} == before  # plan writes nothing

    planned = run_cli(moto, "plan", "-f", str(tmp_path), "--output", "json")
    applied = run_cli(moto, "apply", "-f", str(tmp_path), "--output", "json")
    assert (planned.returncode, applied.returncode) == (ExitCode.FAILED, ExitCode.FAILED)
    assert verdicts(planned.stdout) == verdicts(applied.stdout)  # the same decision path
    assert world.policy_of("cli-good") is not None and world.policy_of("cli-private") is None
    assert world.policy_of("cli-hand-written") == before["cli-hand-written"]  # refused

    again = run_cli(moto, "apply", "-f", str(tmp_path))  # the table, as a person reads it
    assert again.returncode == ExitCode.FAILED
    rows = {line.split()[0]: line for line in again.stdout.splitlines() if line.startswith("team-a/")}
    assert rows["team-a/hand-written"].split()[2] == "Blocked"
    assert f"list '{HAND_WRITTEN}' in spec.adoptSids" in rows["team-a/hand-written"]
    assert "10.0.0.0/8 is a private range" in rows["team-a/private"]
    assert again.stdout.rstrip().splitlines()[-1].startswith("3 buckets: 1 Blocked, 1 Failed, 1 InSync; ")


def test_cli_apply_reads_a_kind_list_from_stdin_then_plan_hides_unchanged(world: MotoWorld, moto: MotoServer) -> None:
    world.create_bucket("cli-stdin-0")
    world.create_bucket("cli-stdin-1")
    listing = {"apiVersion": "v1", "kind": "List", "items": [manifest(f"s{i}", f"cli-stdin-{i}") for i in range(2)]}
    text = yaml.safe_dump(listing)

    applied = run_cli(moto, "apply", "-f", "-", stdin=text)
    assert applied.returncode == ExitCode.OK, applied.stdout + applied.stderr
    assert applied.stdout.rstrip().splitlines()[-1].startswith("2 buckets: 2 Updated; ")

    plan = run_cli(moto, "plan", "-f", "-", stdin=text)
    assert plan.returncode == ExitCode.OK, plan.stdout + plan.stderr
    assert "team-a/" not in plan.stdout
    assert "2 unchanged (in sync and Ready) not shown" in plan.stdout

    shown = run_cli(moto, "plan", "-f", "-", "--show-unchanged", stdin=text)
    assert [line.split()[2] for line in shown.stdout.splitlines() if line.startswith("team-a/")] == ["InSync"] * 2
