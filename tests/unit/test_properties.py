"""Properties of the document model and merge that must hold for every policy, not just the examples.

100 examples each keeps the unit suite fast; BUCKETWARDEN_HYPOTHESIS_EXAMPLES=2000 searches harder.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bucketwarden.policy import PolicyDocument, Statement, merge_policy, plan_change, remove_policy
from tests.strategies import (
    BUCKET,
    OWNED_SIDS,
    PROPERTY_SETTINGS,
    documents,
    equivalent_variants,
    foreign_statements,
    owned_statements,
    statements,
)

OUR_SID, *ADOPTED = OWNED_SIDS

OURS = Statement.build(
    sid=OUR_SID,
    effect="Deny",
    principal="*",
    action="s3:*",
    resource=[f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
    condition={
        "StringNotLike": {"aws:userId": "AROASAMPLESAMPLESAMPL:*"},
        "NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]},
    },
)

# Existing policies mixing foreign statements with owned ones, duplicated owned Sids included (fact 20).
mixed_documents = documents(
    max_statements=8, statement=st.one_of(foreign_statements(), foreign_statements(), owned_statements())
)
existing_documents = st.one_of(st.none(), mixed_documents.map(PolicyDocument.from_obj))


def _foreign(doc: PolicyDocument | None) -> list[dict[str, Any]]:
    if doc is None:
        return []
    return [s.to_json() for s in doc.statements if s.sid not in OWNED_SIDS]


@PROPERTY_SETTINGS
@given(existing=existing_documents)
def test_merge_is_idempotent(existing: PolicyDocument | None) -> None:
    once = merge_policy(existing, OURS, ADOPTED)
    twice = merge_policy(once, OURS, ADOPTED)
    assert twice.to_json() == once.to_json()
    assert plan_change(once, twice).action == "none"


@PROPERTY_SETTINGS
@given(existing=existing_documents)
def test_merge_keeps_foreign_statements_exactly_and_in_order(existing: PolicyDocument | None) -> None:
    merged = merge_policy(existing, OURS, ADOPTED)
    assert _foreign(merged) == _foreign(existing)
    assert [s.to_json() for s in merged.statements if s.sid in OWNED_SIDS] == [OURS.to_json()]


@PROPERTY_SETTINGS
@given(existing=existing_documents)
def test_merge_never_yields_duplicate_sids(existing: PolicyDocument | None) -> None:
    merged = merge_policy(existing, OURS, ADOPTED)
    foreign_sids = Counter(s.sid for s in (existing.statements if existing else ()) if s.sid not in OWNED_SIDS)
    assert merged.sids.count(OUR_SID) == 1
    assert not set(merged.sids) & set(ADOPTED)
    # The only duplicates left are foreign ones that were there before; we never add one.
    assert merged.duplicate_sids() == sorted(sid for sid, n in foreign_sids.items() if sid and n > 1)


@PROPERTY_SETTINGS
@given(existing=existing_documents)
def test_remove_policy_keeps_only_foreign_statements(existing: PolicyDocument | None) -> None:
    merged = merge_policy(existing, OURS, ADOPTED)
    removed = remove_policy(merged, OWNED_SIDS)
    if not _foreign(existing):
        assert removed is None  # delete the policy, never PUT an empty document (fact 17)
    else:
        assert removed is not None
        assert [s.to_json() for s in removed.statements] == _foreign(existing)


@PROPERTY_SETTINGS
@given(obj=documents())
def test_document_canonical_form_round_trips(obj: dict[str, Any]) -> None:
    doc = PolicyDocument.from_obj(obj)
    again = PolicyDocument.parse(doc.to_json())
    assert again.same_meaning(doc)
    assert again.to_json() == doc.to_json()  # to_json is a fixed point
    assert PolicyDocument.parse(doc.to_json(pretty=True)).to_json() == doc.to_json()
    assert again.policy_hash == doc.policy_hash


@PROPERTY_SETTINGS
@given(obj=documents())
def test_document_to_json_writes_foreign_statements_as_parsed(obj: dict[str, Any]) -> None:
    doc = PolicyDocument.from_obj(json.loads(json.dumps(obj)))
    assert doc.to_obj()["Statement"] == obj["Statement"]


@st.composite
def _equivalence_cases(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    base = draw(documents())
    return base, draw(equivalent_variants(base)), draw(equivalent_variants(base)), draw(documents())


@PROPERTY_SETTINGS
@given(case=_equivalence_cases())
def test_document_same_meaning_is_an_equivalence_relation(
    case: tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]],
) -> None:
    base, variant1, variant2, other = (PolicyDocument.from_obj(o) for o in case)
    # Reflexive.
    assert base.same_meaning(base)
    # Shuffled, reshaped and re-cased variants mean the same as the original...
    assert base.same_meaning(variant1)
    assert base.same_meaning(variant2)
    # ...symmetric, and transitive through the original.
    assert variant1.same_meaning(base)
    assert variant1.same_meaning(variant2)
    assert variant2.same_meaning(variant1)
    # An unrelated document relates to all of them alike.
    assert len({other.same_meaning(d) for d in (base, variant1, variant2)}) == 1
    assert other.same_meaning(base) == base.same_meaning(other)
    # Equality, hashing and the status hash agree with meaning.
    assert base == variant1
    assert hash(base) == hash(variant1)
    assert base.policy_hash == variant1.policy_hash == variant2.policy_hash
    assert (other.policy_hash == base.policy_hash) == other.same_meaning(base)
    # A same-meaning document never causes a write: the ACK/Crossplane endless-update loop (fact 19).
    assert plan_change(variant1, base).action == "none"


@PROPERTY_SETTINGS
@given(stmt=statements())
def test_statement_parse_accepts_generated_statements(stmt: dict[str, Any]) -> None:
    parsed = Statement.parse(stmt)
    assert parsed.to_json() == stmt
    assert parsed.same_meaning(Statement.parse(parsed.to_json()))
