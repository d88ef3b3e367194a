"""Only what it wrote: the reconciler replaces or deletes a statement only when it is ours by Sid, by shape and by
record; a claimant that does not own its bucket writes nothing and releases only what it wrote in a race.

Each test is one of issue 20's attacks, played against the in-memory AWS (and, for AssumeRole, moto on the wire).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from pydantic import ValidationError

from bucketwarden.aws import AwsGateway, InMemoryAws
from bucketwarden.policy import PolicyDocument
from bucketwarden.principals import RoleAssumption
from bucketwarden.reconciler import Claim, PreviousState, Reconciler
from bucketwarden.spec import AdoptedStatement, ProtectedBucketSpec
from tests.aws._harness import AdminClients, moto_settings

BUCKET = "team-a-data"
ROLE = "AWSBackupDefaultServiceRole"
ARNS = [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]
DENY_INSECURE = {
    "Sid": "DenyInsecureTransport",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": ARNS,
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def spec(**fields: Any) -> ProtectedBucketSpec:
    doc = {"bucketName": BUCKET, "allowedSourceIps": ["192.0.2.0/24", "2001:db8::/32"], "exemptRoles": [{"name": ROLE}]}
    return ProtectedBucketSpec.model_validate({**doc, **fields})


def sids(aws: InMemoryAws) -> list[str | None]:
    text = aws.policy_of(BUCKET)
    return [s.sid for s in PolicyDocument.parse(text).statements] if text else []


def statement(aws: InMemoryAws, sid: str) -> dict[str, Any]:
    text = aws.policy_of(BUCKET)
    assert text is not None
    return dict(PolicyDocument.parse(text).find(sid)[0].to_json())


@pytest.fixture
def aws() -> InMemoryAws:
    fake = InMemoryAws()
    fake.create_role(ROLE, path="/service-role/")
    fake.create_bucket(BUCKET, policy=policy(DENY_INSECURE))
    return fake


@pytest.mark.parametrize("sid", ["DenyInsecureTransport", "SecurityTeamDenyDelete", "Custom1"])
def test_spec_statement_sid_outside_the_reserved_prefix_is_refused(sid: str) -> None:
    with pytest.raises(ValidationError, match="statementSid must start with 'BucketWarden'"):
        spec(statementSid=sid)


def test_reconcile_our_sid_holding_a_foreign_statement_is_kept_and_nothing_written(aws: InMemoryAws) -> None:
    squatted = {**DENY_INSECURE, "Sid": "BucketWardenIpRestriction"}  # someone's safeguard under our Sid
    aws.put_foreign(BUCKET, policy(DENY_INSECURE, squatted))
    result = Reconciler(aws).reconcile(spec())
    assert result.outcome == "Blocked" and not result.applied
    assert result.condition("Ready") is not None and result.condition("Ready").reason == "Conflict"  # type: ignore[union-attr]
    assert [f.severity for f in result.findings if f.code == "OwnedSidForeignContent"] == ["Error"]
    assert statement(aws, "BucketWardenIpRestriction") == squatted
    assert result.owned is None


def test_cleanup_of_a_resource_that_never_wrote_removes_nothing(aws: InMemoryAws) -> None:
    # RoleNotFound: the resource never wrote; someone else's statement now carries our Sid by coincidence.
    ours_by_shape = Reconciler(aws).reconcile(spec()).desired
    assert ours_by_shape is not None
    before = aws.policy_of(BUCKET)
    result = Reconciler(aws).cleanup(spec(exemptRoles=[{"name": "Missing"}]), PreviousState(owned=None))
    assert aws.policy_of(BUCKET) == before
    assert not result.applied
    assert result.aws_calls == {}  # nothing recorded: not even a read


def test_cleanup_removes_only_our_recorded_statement_and_keeps_the_security_teams(aws: InMemoryAws) -> None:
    written = Reconciler(aws).reconcile(spec())
    assert written.applied and written.owned is not None
    result = Reconciler(aws).cleanup(spec(), PreviousState(owned=written.owned))
    assert result.applied and result.disowned
    assert sids(aws) == ["DenyInsecureTransport"]
    assert statement(aws, "DenyInsecureTransport") == DENY_INSECURE


def test_cleanup_keeps_a_foreign_statement_under_our_sid_and_reports_it(aws: InMemoryAws) -> None:
    written = Reconciler(aws).reconcile(spec())
    replaced = {**DENY_INSECURE, "Sid": "BucketWardenIpRestriction", "Action": "s3:DeleteBucket"}
    aws.put_foreign(BUCKET, policy(DENY_INSECURE, replaced))
    result = Reconciler(aws).cleanup(spec(), PreviousState(owned=written.owned))
    assert statement(aws, "BucketWardenIpRestriction") == replaced
    assert [(f.severity, f.code) for f in result.findings] == [("Error", "OwnedSidForeignContent")]


def test_reconcile_another_claimants_statement_in_force_blocks_and_names_it(aws: InMemoryAws) -> None:
    Reconciler(aws).reconcile(spec(statementSid="BucketWardenTeamC"))
    claim = Claim(rivals={"BucketWardenTeamC": "team-c/shared"})
    result = Reconciler(aws).reconcile(spec(), claim=claim)
    assert result.outcome == "Blocked" and not result.applied
    ready = result.condition("Ready")
    assert ready is not None and ready.reason == "Conflict" and "team-c/shared" in ready.message
    assert result.nudge == ["team-c/shared"]  # the loser is asked to release at once
    assert sids(aws) == ["DenyInsecureTransport", "BucketWardenTeamC"]


def test_reconcile_an_unclaimed_bucketwarden_statement_is_never_stacked_on(aws: InMemoryAws) -> None:
    Reconciler(aws).reconcile(spec(statementSid="BucketWardenRetained"))  # left by a Retain resource
    result = Reconciler(aws).reconcile(spec())
    ready = result.condition("Ready")
    assert ready is not None and ready.reason == "Conflict" and "adoptSids" in ready.message
    assert sids(aws) == ["DenyInsecureTransport", "BucketWardenRetained"]


def test_race_loser_removes_its_own_statement_and_the_owner_then_writes(aws: InMemoryAws) -> None:
    # Both wrote before either saw the other (index lag); arbitration then makes team-c the loser.
    loser = Reconciler(aws).reconcile(spec(statementSid="BucketWardenTeamC"))
    assert loser.owned is not None
    lost = Claim(may_write=False, owner="team-a/data", owner_sid="BucketWardenIpRestriction")
    released = Reconciler(aws).reconcile(spec(statementSid="BucketWardenTeamC"), PreviousState(owned=loser.owned), lost)
    assert released.disowned and released.applied
    assert released.nudge == ["team-a/data"]
    owner = Reconciler(aws).reconcile(spec(), claim=Claim(rivals={"BucketWardenTeamC": "team-c/shared"}))
    assert owner.applied
    assert sids(aws) == ["DenyInsecureTransport", "BucketWardenIpRestriction"]


def test_race_loser_with_the_owners_sid_leaves_the_statement_to_the_owner(aws: InMemoryAws) -> None:
    loser = Reconciler(aws).reconcile(spec())  # same default Sid as the owner's
    lost = Claim(may_write=False, owner="team-a/data", owner_sid="BucketWardenIpRestriction")
    result = Reconciler(aws).reconcile(spec(), PreviousState(owned=loser.owned), lost)
    assert not result.applied and result.aws_calls == {}
    assert sids(aws) == ["DenyInsecureTransport", "BucketWardenIpRestriction"]


def test_race_loser_whose_record_names_a_rivals_sid_removes_nothing(aws: InMemoryAws) -> None:
    # A status edited to claim another claimant's Sid must not turn the release into a deletion of that statement.
    Reconciler(aws).reconcile(spec(statementSid="BucketWardenTeamC"))
    forged = AdoptedStatement(sid="BucketWardenTeamC", hash="x")
    lost = Claim(may_write=False, owner="team-a/data", owner_sid="BucketWardenIpRestriction")
    result = Reconciler(aws).reconcile(spec(statementSid="BucketWardenTeamB"), PreviousState(owned=forged), lost)
    assert not result.applied and result.aws_calls == {}
    assert sids(aws) == ["DenyInsecureTransport", "BucketWardenTeamC"]


def test_non_owner_that_never_wrote_makes_no_aws_call(aws: InMemoryAws) -> None:
    lost = Claim(may_write=False, owner="team-a/data", owner_sid="BucketWardenIpRestriction")
    result = Reconciler(aws).reconcile(spec(statementSid="BucketWardenTeamC"), PreviousState(), lost)
    assert result.outcome == "Blocked" and result.aws_calls == {}
    ready = result.condition("Ready")
    assert ready is not None and "team-a/data" in ready.message


def test_reconcile_assumes_the_granted_role_with_external_id_and_session_name(aws: InMemoryAws) -> None:
    target = aws.create_role("bucketwarden-tenant", account="222233334444")
    aws.create_role(ROLE, account="222233334444", path="/service-role/")
    aws.create_bucket("team-b-data", owner="222233334444")
    assumption = RoleAssumption(target.arn, "team-b-ext-1", "bw-team-b-nightly")
    result = Reconciler(aws).reconcile(
        spec(bucketName="team-b-data", assumeRoleArn=target.arn), claim=Claim(assume_role=assumption)
    )
    assert result.applied
    assert aws.assume_role_requests == [assumption]
    assert result.operator_principal is not None and result.operator_principal.endswith("/bw-team-b-nightly")


def test_assume_role_over_the_wire_sends_external_id_and_session_name(
    moto: Any, moto_server: Any, boto_session: boto3.session.Session, admin: AdminClients
) -> None:
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
        }
    )
    arn = admin.iam.create_role(RoleName="bucketwarden-tenant", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    gateway = AwsGateway(settings=moto_settings(moto_server), session=boto_session)
    sent: list[bytes] = []
    gateway.factory.sts().meta.events.register(
        "before-send.sts.AssumeRole", lambda request, **_: sent.append(request.body)
    )
    identity = gateway.caller_identity(RoleAssumption(arn, "team-b-ext-1", "bw-team-b-nightly"))
    assert identity.arn.endswith(":assumed-role/bucketwarden-tenant/bw-team-b-nightly")
    assert len(sent) == 1
    body = sent[0].decode() if isinstance(sent[0], bytes) else str(sent[0])
    assert "ExternalId=team-b-ext-1" in body and "RoleSessionName=bw-team-b-nightly" in body


def test_cleanup_of_an_admin_from_the_cli_still_checks_the_shape(aws: InMemoryAws) -> None:
    # File mode: no status, the admin vouches; a statement under our Sid that is not ours is still kept.
    squatted = {**DENY_INSECURE, "Sid": "BucketWardenIpRestriction"}
    aws.put_foreign(BUCKET, policy(squatted))
    Reconciler(aws).cleanup(spec())
    assert statement(aws, "BucketWardenIpRestriction") == squatted
    owned = AdoptedStatement(sid="BucketWardenIpRestriction", hash="x")
    assert Reconciler(aws).cleanup(spec(), PreviousState(owned=owned)).findings[0].code == "OwnedSidForeignContent"
