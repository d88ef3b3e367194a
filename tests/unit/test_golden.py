"""The seed case end to end through the pure core, checked against golden files.

Regenerate the expected file after an intended change with:
    BUCKETWARDEN_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_golden.py
and review the diff of tests/golden/ before committing it.
"""

from __future__ import annotations

import json
import os

import pytest

from bucketwarden.manifests import load_manifests
from bucketwarden.policy import PolicyDocument, Statement, merge_policy, plan_change, remove_policy, render_statement
from bucketwarden.principals import ResolvedRole
from bucketwarden.spec import ProtectedBucketSpec
from tests.shared import GOLDEN

SPEC_FILE = GOLDEN / "seed-spec.yaml"
ORIGINAL_FILE = GOLDEN / "seed-original-policy.json"
EXPECTED_FILE = GOLDEN / "seed-expected-policy.json"
UPDATE = os.environ.get("BUCKETWARDEN_UPDATE_GOLDEN") == "1"

ROLE_ID = "AROASAMPLESAMPLESAMPL"
BACKUP_ROLE = ResolvedRole(
    ref="AWSBackupDefaultServiceRole",
    name="AWSBackupDefaultServiceRole",
    arn="arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole",
    role_id=ROLE_ID,
)
# The statement from the original issue, the one that made AWS Backup work again (Sid aside).
ISSUE_STATEMENT = {
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": ["arn:aws:s3:::awsbackup-test-001", "arn:aws:s3:::awsbackup-test-001/*"],
    "Condition": {
        "StringNotLike": {"aws:userId": "AROASAMPLESAMPLESAMPL:*"},
        "NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]},
    },
}


@pytest.fixture(scope="module")
def spec() -> ProtectedBucketSpec:
    (manifest,) = load_manifests(SPEC_FILE)
    return manifest.resource.spec


@pytest.fixture(scope="module")
def original() -> PolicyDocument:
    return PolicyDocument.parse(ORIGINAL_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def desired(spec: ProtectedBucketSpec, original: PolicyDocument) -> PolicyDocument:
    # No operator identity: the offline render, as `bucketwarden render` does without --operator-user-id.
    return merge_policy(original, render_statement(spec, [BACKUP_ROLE], None), spec.owned_sids)


@pytest.fixture(scope="module")
def golden_text(desired: PolicyDocument) -> str:
    """The golden file's text, rewritten first from ``desired`` when BUCKETWARDEN_UPDATE_GOLDEN=1."""
    if UPDATE:
        EXPECTED_FILE.write_text(desired.to_json(pretty=True) + "\n", encoding="utf-8")
    return EXPECTED_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def expected(golden_text: str) -> PolicyDocument:
    return PolicyDocument.parse(golden_text)


def test_golden_seed_matches_byte_for_byte(desired: PolicyDocument, golden_text: str) -> None:
    assert desired.to_json(pretty=True) + "\n" == golden_text, (
        "rendered policy differs from tests/golden/seed-expected-policy.json; "
        "if the change is intended, rerun with BUCKETWARDEN_UPDATE_GOLDEN=1 and review the diff"
    )


def test_golden_seed_matches_by_meaning(desired: PolicyDocument, expected: PolicyDocument) -> None:
    assert expected.same_meaning(desired)
    assert expected.policy_hash == desired.policy_hash


def test_golden_seed_has_exactly_one_deny_meaning_the_issue_statement(
    spec: ProtectedBucketSpec, expected: PolicyDocument
) -> None:
    denies = [s for s in expected.statements if s.effect == "Deny"]
    assert len(denies) == 1
    assert denies[0].sid == spec.statement_sid
    assert denies[0].same_meaning(Statement.parse({"Sid": spec.statement_sid, **ISSUE_STATEMENT}))


def test_golden_seed_keeps_foreign_statements_unchanged_and_in_order(
    original: PolicyDocument, expected: PolicyDocument
) -> None:
    foreign_before = [s.to_json() for s in original.statements if s.effect == "Allow"]
    foreign_after = [s.to_json() for s in expected.statements if s.effect == "Allow"]
    assert len(foreign_before) == 2
    assert foreign_after == foreign_before
    # Ours took the adopted statement's place, between the two foreign ones.
    assert [s.effect for s in expected.statements] == ["Allow", "Deny", "Allow"]


def test_golden_seed_document_header(original: PolicyDocument, golden_text: str) -> None:
    obj = json.loads(golden_text)
    assert list(obj) == ["Version", "Id", "Statement"]
    assert obj["Version"] == "2012-10-17"
    assert obj["Id"] == original.id
    assert "SourceIPRestriction001" not in {s.get("Sid") for s in obj["Statement"]}


def test_golden_seed_original_lacks_the_exemption(original: PolicyDocument) -> None:
    # The hand-written Deny that broke AWS Backup: an IP condition and nothing else.
    (adopted,) = original.find("SourceIPRestriction001")
    assert set(adopted.conditions) == {"NotIpAddress"}


def test_golden_seed_plans_a_put_then_converges(
    spec: ProtectedBucketSpec, original: PolicyDocument, expected: PolicyDocument
) -> None:
    assert plan_change(original, expected).action == "put"
    again = merge_policy(expected, render_statement(spec, [BACKUP_ROLE], None), spec.owned_sids)
    assert plan_change(expected, again).action == "none"


def test_golden_seed_removal_leaves_only_foreign_statements(
    spec: ProtectedBucketSpec, expected: PolicyDocument
) -> None:
    removed = remove_policy(expected, spec.owned_sids)
    assert removed is not None
    assert [s.effect for s in removed.statements] == ["Allow", "Allow"]
