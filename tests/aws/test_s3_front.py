"""The enforcing S3 front on live moto: networks, principals, the root exception, the backup job, and agreement
with `bucketwarden evaluate` for the same request."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bucketwarden.cli import main
from bucketwarden_testkit import DENIED_SID_HEADER, EnforcedMoto, run_backup_job

BUCKET = "front-test-bucket"
ROLE = "AWSBackupDefaultServiceRole"
RESOURCES = [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]
SEED_DENY: dict[str, Any] = {
    "Sid": "SourceIPRestriction001",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": RESOURCES,
    "Condition": {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]}},
}


@pytest.fixture
def world(enforced: EnforcedMoto) -> dict[str, Any]:
    enforced.reset()
    s3, iam = enforced.client("s3"), enforced.client("iam")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET, Key="data/object-1", Body=b"payload")
    role = iam.create_role(RoleName=ROLE, Path="/service-role/", AssumeRolePolicyDocument="{}")["Role"]
    return {"s3": s3, "role_arn": role["Arn"], "role_id": role["RoleId"]}


def put_policy(world: dict[str, Any], *statements: dict[str, Any]) -> None:
    world["s3"].put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}))


def denied(call: Any, **kwargs: Any) -> ClientError | None:
    try:
        call(**kwargs)
    except ClientError as exc:
        return exc
    return None


@pytest.mark.parametrize(
    ("network", "is_denied"),
    [("office", False), ("aws", True), ("nat", True), ("vpce", True), ("harness", False)],
    ids=["office-inside-cidrs", "aws-address-space", "cluster-nat", "vpc-endpoint-no-source-ip", "harness-unenforced"],
)
def test_s3_front_decides_the_seed_policy_per_network(
    enforced: EnforcedMoto, world: dict[str, Any], network: str, is_denied: bool
) -> None:
    put_policy(world, SEED_DENY)
    error = denied(enforced.client_on(network, "s3").get_object, Bucket=BUCKET, Key="data/object-1")
    assert (error is not None) == is_denied
    if error is not None:
        assert error.response["Error"]["Code"] == "AccessDenied"
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert "with an explicit deny in a resource-based policy" in error.response["Error"]["Message"]
        assert error.response["ResponseMetadata"]["HTTPHeaders"][DENIED_SID_HEADER] == "SourceIPRestriction001"


def test_s3_front_vpc_endpoint_exemption_admits_only_the_vpc_endpoint(
    enforced: EnforcedMoto, world: dict[str, Any]
) -> None:
    put_policy(
        world,
        {
            **SEED_DENY,
            "Condition": {**SEED_DENY["Condition"], "StringNotEquals": {"aws:SourceVpce": "vpce-0a1b2c3d4e5f60789"}},
        },
    )
    assert denied(enforced.client_on("vpce", "s3").list_objects_v2, Bucket=BUCKET) is None
    assert denied(enforced.client_on("nat", "s3").list_objects_v2, Bucket=BUCKET) is not None


@pytest.mark.parametrize(
    "call",
    ["get_bucket_policy", "put_bucket_policy", "delete_bucket_policy"],
    ids=["get", "put", "delete"],
)
def test_s3_front_root_may_always_manage_the_bucket_policy(
    enforced: EnforcedMoto, world: dict[str, Any], call: str
) -> None:
    put_policy(world, {**SEED_DENY, "Action": "s3:*"})
    root = enforced.client_on("nat", "s3", enforced.root_session())
    kwargs: dict[str, Any] = {"Bucket": BUCKET}
    if call == "put_bucket_policy":
        kwargs["Policy"] = json.dumps({"Version": "2012-10-17", "Statement": [SEED_DENY]})
    assert denied(getattr(root, call), **kwargs) is None
    put_policy(world, SEED_DENY)
    someone = enforced.client_on("nat", "s3")
    assert denied(getattr(someone, call), **kwargs) is not None  # the exception is the root's alone


def test_s3_front_root_is_denied_everything_else(enforced: EnforcedMoto, world: dict[str, Any]) -> None:
    put_policy(world, SEED_DENY)
    root = enforced.client_on("nat", "s3", enforced.root_session())
    assert denied(root.get_object, Bucket=BUCKET, Key="data/object-1") is not None
    assert enforced.front is not None
    last = enforced.front.denials()[-1]
    assert (last.user_id, last.principal_arn) == ("123456789012", "arn:aws:iam::123456789012:root")


def test_s3_front_knows_role_sessions_by_roleid_and_role_arn_with_path(
    enforced: EnforcedMoto, world: dict[str, Any]
) -> None:
    put_policy(
        world,
        {**SEED_DENY, "Condition": {**SEED_DENY["Condition"], "ArnNotLike": {"aws:PrincipalArn": world["role_arn"]}}},
    )
    session = enforced.role_session(world["role_arn"], "AWSBackup-" + ROLE)
    assert denied(enforced.client_on("aws", "s3", session).list_objects_v2, Bucket=BUCKET) is None
    assert enforced.front is not None
    decision = enforced.front.decisions()[-1]
    assert decision.user_id == f"{world['role_id']}:AWSBackup-{ROLE}"
    assert decision.principal_arn == f"arn:aws:iam::123456789012:role/service-role/{ROLE}"
    assert decision.context["aws:PrincipalType"] == "AssumedRole"


def test_s3_front_presigned_url_is_judged_with_query_auth(enforced: EnforcedMoto, world: dict[str, Any]) -> None:
    put_policy(world, SEED_DENY)
    for network, status in (("office", 200), ("nat", 403)):
        url = enforced.client_on(network, "s3").generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": "data/object-1"}
        )
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                got = response.status
        except urllib.error.HTTPError as exc:
            got = exc.code
        assert got == status
    assert enforced.front is not None
    assert enforced.front.decisions()[-1].context["s3:authType"] == "REST-QUERY-STRING"


def test_backup_job_fails_with_the_first_access_denied_then_completes_once_exempted(
    enforced: EnforcedMoto, world: dict[str, Any]
) -> None:
    put_policy(world, SEED_DENY)
    failed = run_backup_job(enforced, BUCKET, world["role_arn"])
    assert (failed.state, failed.action, failed.sid) == ("FAILED", "s3:GetBucketVersioning", "SourceIPRestriction001")
    exempted = {
        **SEED_DENY,
        "Condition": {**SEED_DENY["Condition"], "StringNotLike": {"aws:userId": f"{world['role_id']}:*"}},
    }
    put_policy(world, exempted)
    done = run_backup_job(enforced, BUCKET, world["role_arn"])
    assert (done.state, done.versions_read) == ("COMPLETED", 1)


def test_s3_front_decision_agrees_with_bucketwarden_evaluate(
    enforced: EnforcedMoto, world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exempt = {"StringNotLike": {"aws:userId": f"{world['role_id']}:*"}}
    policy: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [{**SEED_DENY, "Condition": {**SEED_DENY["Condition"], **exempt}}],
    }
    put_policy(world, *policy["Statement"])
    (tmp_path / "policy.json").write_text(json.dumps(policy), encoding="utf-8")
    assert enforced.front is not None
    enforced.front.clear_decisions()
    session = enforced.role_session(world["role_arn"], "AWSBackup-" + ROLE)
    for network in ("office", "aws", "nat", "vpce"):
        for creds in (None, session, enforced.root_session()):
            s3 = enforced.client_on(network, "s3", creds)
            denied(s3.get_object, Bucket=BUCKET, Key="data/object-1")
            denied(s3.get_bucket_versioning, Bucket=BUCKET)
    decisions = [d for d in enforced.front.decisions() if d.context]
    assert len(decisions) == 24 and {d.decision for d in decisions} == {"ExplicitDeny", "NoMatch"}
    capsys.readouterr()
    for d in decisions:
        context = [f"--context={k}={v}" for k, v in d.context.items()]
        argv = ["evaluate", "--policy", str(tmp_path / "policy.json"), "--action", d.action, "--resource", d.resource]
        assert main([*argv, *context, "--output", "json"]) == 0
        answer = json.loads(capsys.readouterr().out)
        assert (answer["decision"], answer["sid"]) == (d.decision, d.sid), d
