"""The reconcile loop, over moto (real HTTP) and over the in-memory port: outcomes, conditions, AWS calls.

Every test runs twice, once per implementation of the AWS port, so the in-memory double stays honest.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bucketwarden.aws import InMemoryAws
from bucketwarden.errors import AwsUnavailableError
from bucketwarden.policy import PolicyDocument
from bucketwarden.reconciler import PreviousState, Reconciler, ReconcileResult
from bucketwarden.spec import ProtectedBucketSpec
from tests.aws._world import MotoWorld

BUCKET = "awsbackup-test-001"
ROLE = "AWSBackupDefaultServiceRole"
CIDRS = ["192.0.2.0/24", "203.0.113.0/24"]

FOREIGN_ALLOW = {
    "Sid": "AllowCloudFrontRead",
    "Effect": "Allow",
    "Principal": {"Service": "cloudfront.amazonaws.com"},
    "Action": "s3:GetObject",
    "Resource": f"arn:aws:s3:::{BUCKET}/*",
}
NO_SID_FOREIGN = {
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:DeleteBucket",
    "Resource": f"arn:aws:s3:::{BUCKET}",
}


def hand_written_deny(sid: str = "SourceIPRestriction001") -> dict[str, Any]:
    """The statement that broke AWS Backup: the IP Deny without the exemption."""
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
        "Condition": {"NotIpAddress": {"aws:SourceIp": CIDRS}},
    }


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, separators=(",", ":"))


def make_spec(**overrides: Any) -> ProtectedBucketSpec:
    doc: dict[str, Any] = {
        "bucketName": BUCKET,
        "allowedSourceIps": CIDRS,
        "exemptRoles": [{"name": ROLE}],
        "adoptSids": ["SourceIPRestriction001"],
    }
    doc.update(overrides)
    return ProtectedBucketSpec.model_validate(doc)


@pytest.fixture(params=["moto", "memory"])
def aws(request: pytest.FixtureRequest) -> Any:
    world: Any
    if request.param == "moto":
        request.getfixturevalue("moto")  # an empty moto server
        world = MotoWorld(
            request.getfixturevalue("moto_server"),
            request.getfixturevalue("boto_session"),
            request.getfixturevalue("admin"),
        )
    else:
        world = InMemoryAws()
    world.create_role(ROLE, path="/service-role/")
    world.create_bucket(BUCKET, policy=policy(hand_written_deny(), FOREIGN_ALLOW))
    return world


def stored(aws: InMemoryAws) -> PolicyDocument | None:
    text = aws.policy_of(BUCKET)
    return None if text is None else PolicyDocument.parse(text)


def cond(result: ReconcileResult, kind: str) -> tuple[str, str]:
    c = result.condition(kind)
    assert c is not None, kind
    return c.status, c.reason


def test_reconcile_seed_adopts_hand_written_deny_and_keeps_foreign(aws: InMemoryAws) -> None:
    result = Reconciler(aws).reconcile(make_spec())

    doc = stored(aws)
    assert doc is not None
    assert result.outcome == "Updated"
    assert [s.sid for s in doc.statements] == ["BucketWardenIpRestriction", "AllowCloudFrontRead"]
    assert doc.find("AllowCloudFrontRead")[0].to_json() == FOREIGN_ALLOW
    role_id = aws.role(ROLE).role_id
    ours = doc.find("BucketWardenIpRestriction")[0]
    assert f"{role_id}:*" in ours.conditions["StringNotLike"]["aws:userid"]
    assert aws.caller.user_id in ours.conditions["StringNotLike"]["aws:userid"]
    assert cond(result, "Ready") == ("True", "Protected")
    assert cond(result, "Synced") == ("True", "InSync")
    assert cond(result, "Verified") == ("True", "Verified")
    assert result.policy_hash == doc.policy_hash


def test_reconcile_first_costs_one_get_one_put_and_iam_for_uncached_roles(aws: InMemoryAws) -> None:
    result = Reconciler(aws).reconcile(make_spec())
    assert result.aws_calls == {"GetCallerIdentity": 1, "GetRole": 1, "GetBucketPolicy": 1, "PutBucketPolicy": 1}


def test_reconcile_steady_state_is_one_get_and_nothing_else(aws: InMemoryAws) -> None:
    reconciler = Reconciler(aws)
    reconciler.reconcile(make_spec())
    second = reconciler.reconcile(make_spec())
    assert second.outcome == "InSync"
    assert second.aws_calls == {"GetBucketPolicy": 1}
    assert cond(second, "Synced") == ("True", "InSync")


def test_reconcile_same_meaning_different_bytes_does_not_write(aws: InMemoryAws) -> None:
    reconciler = Reconciler(aws)
    reconciler.reconcile(make_spec())
    doc = json.loads(aws.policy_of(BUCKET) or "")
    doc["Statement"].reverse()  # S3 re-serialises documents; order and layout carry no meaning
    aws.put_foreign(BUCKET, json.dumps(doc, indent=4))
    again = reconciler.reconcile(make_spec())
    assert again.action == "none"
    assert "PutBucketPolicy" not in again.aws_calls


def test_reconcile_bucket_without_policy_gets_ours(aws: InMemoryAws) -> None:
    aws.put_foreign(BUCKET, None)
    result = Reconciler(aws).reconcile(make_spec())
    doc = stored(aws)
    assert result.outcome == "Updated"
    assert doc is not None and [s.sid for s in doc.statements] == ["BucketWardenIpRestriction"]


def test_reconcile_observe_mode_never_writes_and_reports_the_outage(aws: InMemoryAws) -> None:
    before = aws.policy_of(BUCKET)
    result = Reconciler(aws).reconcile(make_spec(managementPolicy="Observe"))
    assert aws.policy_of(BUCKET) == before
    assert "PutBucketPolicy" not in result.aws_calls
    assert result.outcome == "Observed"
    assert result.action == "put"
    assert cond(result, "Ready") == ("True", "Observing")
    # The policy in force today denies AWS Backup: Verified says so.
    assert result.condition("Verified") is not None
    assert cond(result, "Verified")[0] == "False"
    assert any(f.code == "ChangesPending" for f in result.findings)


def test_reconcile_missing_role_keeps_last_good_policy(aws: InMemoryAws) -> None:
    reconciler = Reconciler(aws)
    reconciler.reconcile(make_spec())
    good = aws.policy_of(BUCKET)
    aws.delete_role(ROLE)
    aws.invalidate()
    result = reconciler.reconcile(make_spec())
    assert result.outcome == "Failed"
    assert cond(result, "Ready") == ("False", "RoleNotFound")
    assert aws.policy_of(BUCKET) == good
    assert "PutBucketPolicy" not in result.aws_calls
    assert "GetBucketPolicy" not in result.aws_calls  # nothing is read or written without every exemption


def test_reconcile_recreated_role_is_picked_up_after_the_cache_ttl(aws: InMemoryAws) -> None:
    reconciler = Reconciler(aws)
    first = reconciler.reconcile(make_spec())
    old_id = aws.role(ROLE).role_id
    new_id = aws.recreate_role(ROLE).role_id
    previous = PreviousState(first.statement_hash, {ROLE: old_id})

    within_ttl = reconciler.reconcile(make_spec(), previous)
    assert within_ttl.action == "none"  # the cache still holds the old RoleId

    aws.advance(301)
    after_ttl = reconciler.reconcile(make_spec(), previous)
    assert after_ttl.applied
    assert [(c.old, c.new) for c in after_ttl.role_id_changes] == [(old_id, new_id)]
    assert not after_ttl.drift_corrected  # a new RoleId is a change, not drift
    doc = stored(aws)
    assert doc is not None
    assert f"{new_id}:*" in doc.find("BucketWardenIpRestriction")[0].conditions["StringNotLike"]["aws:userid"]


def test_reconcile_foreign_write_dropping_ours_is_restored_and_theirs_kept(aws: InMemoryAws) -> None:
    reconciler = Reconciler(aws)
    first = reconciler.reconcile(make_spec())
    extra = {**FOREIGN_ALLOW, "Sid": "TerraformAddedThis"}
    aws.put_foreign(BUCKET, policy(FOREIGN_ALLOW, extra))  # another tool rewrote the whole document
    again = reconciler.reconcile(make_spec(), PreviousState(first.statement_hash))
    doc = stored(aws)
    assert doc is not None
    assert sorted(s.sid or "" for s in doc.statements) == [
        "AllowCloudFrontRead",
        "BucketWardenIpRestriction",
        "TerraformAddedThis",
    ]
    assert again.drift_corrected


def test_reconcile_missing_bucket_is_bucket_not_found(aws: InMemoryAws) -> None:
    result = Reconciler(aws).reconcile(make_spec(bucketName="no-such-bucket-here"))
    assert cond(result, "Ready") == ("False", "BucketNotFound")
    assert not result.retryable


def test_reconcile_unparseable_existing_policy_is_left_untouched(aws: InMemoryAws) -> None:
    aws.put_foreign(BUCKET, "{not json")
    result = Reconciler(aws).reconcile(make_spec())
    assert cond(result, "Ready") == ("False", "MalformedPolicy")
    assert aws.policy_of(BUCKET) == "{not json"
    assert "PutBucketPolicy" not in result.aws_calls


def test_reconcile_private_cidr_is_invalid_spec_before_any_call(aws: InMemoryAws) -> None:
    result = Reconciler(aws).reconcile(make_spec(allowedSourceIps=["10.0.0.0/8"]))
    assert cond(result, "Ready") == ("False", "InvalidSpec")
    assert result.aws_calls == {}


def test_reconcile_refuses_a_policy_over_20kb(aws: InMemoryAws) -> None:
    filler: list[dict[str, Any]] = []
    while len(policy(*filler)) < 20_150:  # a 19.7 KB policy (of 20 KiB): ours does not fit beside it
        i = len(filler)
        filler.append({**FOREIGN_ALLOW, "Sid": f"Filler{i:03d}", "Resource": f"arn:aws:s3:::{BUCKET}/{'x' * 60}/{i}/*"})
    text = policy(*filler)
    assert 20_150 <= len(text.encode()) < 20_480
    aws.put_foreign(BUCKET, text)
    result = Reconciler(aws).reconcile(make_spec())
    assert cond(result, "Ready") == ("False", "PolicyTooLarge")
    assert aws.policy_of(BUCKET) == text


def test_reconcile_unadopted_hand_written_deny_blocks_and_names_the_sid(aws: InMemoryAws) -> None:
    # A second IP Deny without the exemption keeps AWS Backup broken and would deny the operator from
    # outside the allowed ranges: refuse, and tell the user which Sid to adopt.
    before = aws.policy_of(BUCKET)
    result = Reconciler(aws).reconcile(make_spec(adoptSids=[]))
    assert result.outcome == "Blocked"
    assert aws.policy_of(BUCKET) == before
    assert cond(result, "Ready") == ("False", "VerificationFailed")
    ready = result.condition("Ready")
    assert ready is not None and "SourceIPRestriction001" in ready.message
    assert any(f.code == "ForeignDenyBlocksExemptRole" and f.sid == "SourceIPRestriction001" for f in result.findings)


def test_reconcile_refuses_to_write_a_policy_that_locks_the_operator_out(aws: InMemoryAws) -> None:
    lock = {
        "Sid": "OnlyAdminsEditPolicy",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutBucketPolicy",
        "Resource": f"arn:aws:s3:::{BUCKET}",
    }
    aws.put_foreign(BUCKET, policy(hand_written_deny(), lock))
    before = aws.policy_of(BUCKET)
    result = Reconciler(aws).reconcile(make_spec())
    assert result.outcome == "Blocked"
    assert cond(result, "Ready") == ("False", "VerificationFailed")
    assert aws.policy_of(BUCKET) == before


def test_reconcile_retryable_error_is_reported_as_aws_unavailable(aws: InMemoryAws) -> None:
    if not isinstance(aws, InMemoryAws):
        pytest.skip("scripted failures are in-memory only; tests/reliability injects real faults on the wire")
    aws.fail_next("PutBucketPolicy", AwsUnavailableError("SlowDown", api="PutBucketPolicy"))
    result = Reconciler(aws).reconcile(make_spec())
    assert result.retryable
    assert cond(result, "Synced") == ("False", "AwsUnavailable")


@pytest.mark.parametrize(
    ("existing", "expected_action", "expected_left"),
    [
        pytest.param([hand_written_deny("BucketWardenIpRestriction")], "delete", None, id="only-ours-deletes-policy"),
        pytest.param(
            [hand_written_deny("BucketWardenIpRestriction"), FOREIGN_ALLOW, NO_SID_FOREIGN],
            "put",
            [FOREIGN_ALLOW, NO_SID_FOREIGN],
            id="foreign-statements-remain",
        ),
        pytest.param(None, "none", None, id="no-policy-nothing-to-do"),
    ],
)
def test_cleanup_delete_policy_removes_only_ours(
    aws: InMemoryAws, existing: list[dict[str, Any]] | None, expected_action: str, expected_left: Any
) -> None:
    aws.put_foreign(BUCKET, None if existing is None else policy(*existing))
    result = Reconciler(aws).cleanup(make_spec())
    assert result.outcome == "Deleted"
    assert result.action == expected_action
    left = aws.policy_of(BUCKET)
    if expected_left is None:
        assert left is None
    else:
        assert json.loads(left or "")["Statement"] == expected_left


def test_cleanup_retain_makes_no_calls(aws: InMemoryAws) -> None:
    result = Reconciler(aws).cleanup(make_spec(deletionPolicy="Retain"))
    assert result.outcome == "Retained"
    assert result.aws_calls == {}


def test_cleanup_bucket_already_gone_does_not_hang(aws: InMemoryAws) -> None:
    aws.delete_bucket(BUCKET)
    result = Reconciler(aws).cleanup(make_spec())
    assert result.outcome == "Deleted"
    assert result.error is None


def test_reconcile_steady_state_reuses_the_last_verification_only_while_nothing_changed(aws: InMemoryAws) -> None:
    reconciler = Reconciler(aws)
    first = reconciler.reconcile(make_spec())
    assert first.verification is not None
    previous = PreviousState(first.statement_hash, policy_hash=first.policy_hash, verified=True)

    steady = reconciler.reconcile(make_spec(), previous)
    assert steady.verification is None  # same spec, exemptions and document by meaning: the verdict stands
    assert [(c.type, c.status) for c in steady.conditions] == [
        ("Ready", "True"),
        ("Synced", "True"),
        ("Verified", "True"),
    ]
    assert [c.message for c in steady.conditions] == [c.message for c in first.conditions]  # no status churn

    aws.put_foreign(
        BUCKET, policy(hand_written_deny("SomeoneElsesDeny"), *json.loads(aws.policy_of(BUCKET) or "")["Statement"])
    )
    changed = reconciler.reconcile(make_spec(), previous)
    assert changed.verification is not None  # a foreign change is verified again, and here it blocks
    assert changed.outcome == "Blocked"


ORG_ONLY = {
    "Sid": "OrgOnly",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
    "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}},
}


@pytest.mark.parametrize(
    ("facts", "verified", "ready", "written"),
    [
        pytest.param(None, ("Unknown", "Inconclusive"), ("True", "Protected"), True, id="unknown-org-inconclusive"),
        pytest.param(
            {"organizationId": "o-abcdefghij"}, ("True", "Verified"), ("True", "Protected"), True, id="stated-org"
        ),
        pytest.param(
            # It would deny the operator too: a lockout, so nothing is written (fact 15).
            {"organizationId": "o-zzzzzzzzzz"},
            ("False", "VerificationFailed"),
            ("False", "VerificationFailed"),
            False,
            id="another-org-fails-and-blocks",
        ),
    ],
)
def test_reconcile_org_deny_is_inconclusive_until_the_org_is_stated(
    aws: InMemoryAws,
    facts: dict[str, Any] | None,
    verified: tuple[str, str],
    ready: tuple[str, str],
    written: bool,
) -> None:
    aws.put_foreign(BUCKET, policy(hand_written_deny(), ORG_ONLY))
    overrides = {} if facts is None else {"verificationContext": facts}
    result = Reconciler(aws).reconcile(make_spec(**overrides))
    assert cond(result, "Verified") == verified
    assert cond(result, "Ready") == ready
    doc = stored(aws)
    assert doc is not None and bool(doc.find("BucketWardenIpRestriction")) is written
    if verified[1] == "Inconclusive":
        message = result.condition("Verified")
        assert message is not None and "aws:principalorgid" in message.message
        assert any(f.code == "VerificationInconclusive" and f.severity == "Warning" for f in result.findings)


def test_reconcile_invalid_cidr_in_a_foreign_statement_writes_nothing(aws: InMemoryAws) -> None:
    bad = {**hand_written_deny("OfficeOnly"), "Condition": {"NotIpAddress": {"aws:SourceIp": "300.1.1.1/8"}}}
    text = policy(hand_written_deny(), bad)
    aws.put_foreign(BUCKET, text)
    result = Reconciler(aws).reconcile(make_spec())
    assert result.outcome == "Blocked"
    assert cond(result, "Ready") == ("False", "MalformedPolicy")
    ready = result.condition("Ready")
    assert ready is not None and "OfficeOnly" in ready.message and "300.1.1.1/8" in ready.message
    assert aws.policy_of(BUCKET) == text
    assert "PutBucketPolicy" not in result.aws_calls


def test_reconcile_stated_facts_are_judged_again_even_when_the_policy_is_unchanged(aws: InMemoryAws) -> None:
    aws.put_foreign(BUCKET, policy(hand_written_deny(), ORG_ONLY))
    reconciler = Reconciler(aws)
    first = reconciler.reconcile(make_spec(verificationContext={"organizationId": "o-abcdefghij"}))
    assert cond(first, "Verified") == ("True", "Verified")
    previous = PreviousState(first.statement_hash, {}, first.policy_hash, verified=True)
    changed = reconciler.reconcile(make_spec(verificationContext={"organizationId": "o-zzzzzzzzzz"}), previous)
    assert cond(changed, "Verified") == ("False", "VerificationFailed")


def test_reconcile_foreign_deny_on_the_operator_is_reported_as_such(aws: InMemoryAws) -> None:
    lock = {
        "Sid": "OnlyAdminsEditPolicy",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutBucketPolicy",
        "Resource": f"arn:aws:s3:::{BUCKET}",
    }
    aws.put_foreign(BUCKET, policy(hand_written_deny(), lock))
    result = Reconciler(aws).reconcile(make_spec())
    assert cond(result, "Verified") == ("False", "ForeignDenyBlocksOperator")
    [finding] = [f for f in result.findings if f.code == "ForeignDenyBlocksOperator"]
    assert "the operator cannot read or fix" in finding.message and "AWS Backup" not in finding.message


def test_reconcile_restore_only_deny_says_restores_fail_not_backups(aws: InMemoryAws) -> None:
    protect = {
        "Sid": "NoOverwrites",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{BUCKET}/*",
    }
    aws.put_foreign(BUCKET, policy(hand_written_deny(), protect))
    result = Reconciler(aws).reconcile(make_spec())
    assert cond(result, "Verified") == ("False", "ForeignDenyBlocksExemptRole")
    verified = result.condition("Verified")
    assert verified is not None and "restores into this bucket" in verified.message
    # Each promise's own verdict, on the condition and on the verification (two managed policies, two promises).
    assert "backup Pass" in verified.message and "restore Fail" in verified.message
    assert result.verification is not None
    assert result.verification.verdict_for("backup") == "Pass"
    assert result.verification.verdict_for("restore") == "Fail"
    assert "backup jobs" not in verified.message
