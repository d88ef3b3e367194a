"""Merging our statement into a bucket policy by Sid, and taking it out again."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bucketwarden.policy import PolicyDocument, Statement, merge_policy, remove_policy, remove_statements
from tests.shared import OUR_SID

ADOPTED = "SourceIPRestriction001"
OWNED = (OUR_SID, ADOPTED)
BUCKET_ARN = "arn:aws:s3:::awsbackup-test-001"

OURS = Statement.build(
    sid=OUR_SID,
    effect="Deny",
    principal="*",
    action="s3:*",
    resource=[BUCKET_ARN, f"{BUCKET_ARN}/*"],
    condition={
        "StringNotLike": {"aws:userId": "AROASAMPLESAMPLESAMPL:*"},
        "NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]},
    },
)


def statement(label: str, index: int) -> dict[str, Any]:
    """A statement for a layout label: "-" has no Sid; anything else is its Sid. Resources tell them apart."""
    obj: dict[str, Any] = {} if label == "-" else {"Sid": label}
    obj.update(
        Effect="Deny" if label in OWNED else "Allow",
        Principal={"AWS": "arn:aws:iam::444455556666:root"},
        Action="s3:GetObject",
        Resource=f"{BUCKET_ARN}/part{index}/*",
    )
    return obj


def policy(*labels: str, **top: Any) -> PolicyDocument:
    return PolicyDocument.from_obj(
        {"Version": "2012-10-17", **top, "Statement": [statement(s, i) for i, s in enumerate(labels)]}
    )


def layout(doc: PolicyDocument) -> list[str]:
    """The statements as labels: "ours" for our rendered statement, else the Sid (or "-") and original position."""
    out = []
    for s in doc.statements:
        if s.same_meaning(OURS):
            out.append("ours")
        else:
            out.append(f"{s.sid or '-'}@{str(s.raw['Resource']).rsplit('part', 1)[1].split('/')[0]}")
    return out


MERGES = [
    pytest.param(None, ["ours"], id="no-policy"),
    pytest.param(("A",), ["A@0", "ours"], id="foreign-only-appends"),
    pytest.param(("A", "-", "B"), ["A@0", "-@1", "B@2", "ours"], id="sidless-kept-append"),
    pytest.param(("A", OUR_SID, "B"), ["A@0", "ours", "B@2"], id="ours-replaced-in-place"),
    pytest.param((ADOPTED, "A"), ["ours", "A@1"], id="adopted-replaced-in-place"),
    pytest.param(("A", ADOPTED, "B", OUR_SID), ["A@0", "ours", "B@2"], id="first-owned-position-wins"),
    pytest.param(("A", OUR_SID, "B", OUR_SID, "-"), ["A@0", "ours", "B@2", "-@4"], id="duplicate-ours"),
    pytest.param(
        (ADOPTED, ADOPTED, "-", ADOPTED, OUR_SID), ["ours", "-@2"], id="duplicate-adopted-cloud-custodian-6145"
    ),
    pytest.param((OUR_SID,), ["ours"], id="only-ours"),
    pytest.param(("-", "-", OUR_SID, "-"), ["-@0", "-@1", "ours", "-@3"], id="sidless-around"),
    pytest.param(("A", "A", OUR_SID), ["A@0", "A@1", "ours"], id="foreign-duplicates-untouched"),
]


@pytest.mark.parametrize(("labels", "expected"), MERGES)
def test_merge_policy_places_ours_and_keeps_foreign(labels: tuple[str, ...] | None, expected: list[str]) -> None:
    existing = None if labels is None else policy(*labels)
    merged = merge_policy(existing, OURS, [ADOPTED])
    assert layout(merged) == expected
    assert merged.sids.count(OUR_SID) == 1
    assert ADOPTED not in merged.sids


@pytest.mark.parametrize(("labels", "expected"), MERGES)
def test_merge_policy_is_idempotent(labels: tuple[str, ...] | None, expected: list[str]) -> None:
    once = merge_policy(None if labels is None else policy(*labels), OURS, [ADOPTED])
    twice = merge_policy(once, OURS, [ADOPTED])
    assert twice.to_json() == once.to_json()
    assert layout(twice) == expected


@pytest.mark.parametrize(("labels", "expected"), MERGES)
def test_merge_policy_keeps_foreign_statements_exactly(labels: tuple[str, ...] | None, expected: list[str]) -> None:
    existing = None if labels is None else policy(*labels)
    merged = merge_policy(existing, OURS, [ADOPTED])
    before = [s.to_json() for s in (existing.statements if existing else ()) if s.sid not in OWNED]
    after = [s.to_json() for s in merged.statements if s.sid not in OWNED]
    assert after == before


def test_merge_policy_never_creates_a_duplicate_sid() -> None:
    existing = policy(OUR_SID, ADOPTED, OUR_SID, ADOPTED, "A")
    assert existing.duplicate_sids() == sorted(OWNED)
    merged = merge_policy(existing, OURS, [ADOPTED])
    assert merged.duplicate_sids() == []
    assert merged.sids == [OUR_SID, "A"]


def test_merge_policy_replaces_a_stale_statement_of_ours() -> None:
    stale = json.loads(json.dumps(OURS.to_json()))
    stale["Condition"]["StringNotLike"]["aws:userId"] = "AROAOLDROLEIDOLDROLE1:*"  # the role was recreated (fact 3)
    existing = PolicyDocument.from_obj({"Version": "2012-10-17", "Statement": [statement("A", 0), stale]})
    merged = merge_policy(existing, OURS, [])
    assert [s.to_json() for s in merged.statements] == [statement("A", 0), OURS.to_json()]


def test_merge_policy_counts_ours_sid_as_owned_even_if_not_listed() -> None:
    merged = merge_policy(policy("A", OUR_SID), OURS, [])
    assert layout(merged) == ["A@0", "ours"]


def test_merge_policy_keeps_version_2008_and_id() -> None:
    existing = PolicyDocument.from_obj({"Version": "2008-10-17", "Id": "Policy1", "Statement": [statement("A", 0)]})
    merged = merge_policy(existing, OURS, [ADOPTED])
    assert merged.version == "2008-10-17"
    assert merged.id == "Policy1"
    assert list(json.loads(merged.to_json())) == ["Version", "Id", "Statement"]


def test_merge_policy_with_no_existing_policy_has_no_id() -> None:
    merged = merge_policy(None, OURS, [ADOPTED])
    assert merged.id is None
    assert merged.version == "2012-10-17"


def test_merge_policy_does_not_change_its_input() -> None:
    existing = policy("A", OUR_SID, ADOPTED)
    text = existing.to_json()
    merge_policy(existing, OURS, [ADOPTED])
    assert existing.to_json() == text
    assert len(existing.statements) == 3


def test_merge_policy_keeps_foreign_statement_identical_to_ours_but_without_sid() -> None:
    # Only the Sid says a statement is ours; a look-alike without our Sid belongs to someone else.
    lookalike = {k: v for k, v in OURS.to_json().items() if k != "Sid"}
    existing = PolicyDocument.from_obj({"Version": "2012-10-17", "Statement": [lookalike]})
    merged = merge_policy(existing, OURS, [ADOPTED])
    assert [s.to_json() for s in merged.statements] == [lookalike, OURS.to_json()]


# --- remove_statements / remove_policy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "remaining", "found"),
    [
        pytest.param((), [], [], id="empty"),
        pytest.param(("A", "-"), ["A", "-"], [], id="nothing-owned"),
        pytest.param(("A", OUR_SID, "-"), ["A", "-"], [OUR_SID], id="ours"),
        pytest.param(
            (ADOPTED, "A", ADOPTED, OUR_SID, OUR_SID),
            ["A"],
            [ADOPTED, ADOPTED, OUR_SID, OUR_SID],
            id="duplicates-all-found",
        ),
    ],
)
def test_remove_statements_splits_remaining_and_found(
    labels: tuple[str, ...], remaining: list[str], found: list[str]
) -> None:
    statements = [Statement.parse(statement(s, i)) for i, s in enumerate(labels)]
    kept, removed = remove_statements(OWNED, statements)
    assert [s.sid or "-" for s in kept] == remaining
    assert [s.sid for s in removed] == found


def test_remove_statements_accepts_any_iterable_of_sids() -> None:
    statements = [Statement.parse(statement(s, i)) for i, s in enumerate(("A", OUR_SID))]
    kept, _ = remove_statements(iter([OUR_SID]), statements)
    assert [s.sid for s in kept] == ["A"]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param(None, None, id="no-policy"),
        pytest.param((OUR_SID,), None, id="only-ours-deletes"),
        pytest.param((OUR_SID, ADOPTED, OUR_SID), None, id="only-owned-duplicates-deletes"),
        pytest.param(("A", OUR_SID, "-"), ["A@0", "-@2"], id="foreign-kept"),
        pytest.param(("A",), ["A@0"], id="nothing-to-remove"),
    ],
)
def test_remove_policy_removes_every_owned_statement(
    labels: tuple[str, ...] | None, expected: list[str] | None
) -> None:
    result = remove_policy(None if labels is None else policy(*labels), OWNED)
    if expected is None:
        # Fact 17: when nothing remains the policy is deleted, never PUT as an empty document.
        assert result is None
    else:
        assert result is not None
        assert layout(result) == expected
        assert result.version == "2012-10-17"


def test_remove_policy_keeps_id() -> None:
    result = remove_policy(policy("A", OUR_SID, Id="Policy1"), OWNED)
    assert result is not None
    assert result.id == "Policy1"


def test_remove_policy_after_merge_restores_foreign_statements() -> None:
    existing = policy("-", "A", ADOPTED, "B")
    result = remove_policy(merge_policy(existing, OURS, [ADOPTED]), OWNED)
    assert result is not None
    assert [s.to_json() for s in result.statements] == [statement("-", 0), statement("A", 1), statement("B", 3)]
