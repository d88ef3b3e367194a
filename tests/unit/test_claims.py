"""Arbitration between the claimants of one bucket: deterministic, and only among valid, authorized claims."""

from __future__ import annotations

from typing import Any

import pytest

from bucketwarden.k8s._claims import ClaimEntry, SpecParses, arbitrate, claim_entry
from bucketwarden.spec import TenantPolicySpec
from bucketwarden.tenancy import Request, Tenancy

BUCKET = "shared-logs"
TENANCY = Tenancy(
    {
        "a": TenantPolicySpec(namespaces=["team-a"], buckets=["shared-*"]),
        "c": TenantPolicySpec(namespaces=["team-c"], buckets=["shared-*"]),
    }
)


def entry(namespace: str, created: str, uid: str, *, sid: str = "BucketWardenIpRestriction", **kw: Any) -> ClaimEntry:
    request = None if kw.get("invalid") else Request(namespace, "pb", BUCKET)
    return ClaimEntry(created, uid, namespace, "pb", sid, request, kw.get("deleting", False))


A_OLD = entry("team-a", "2026-12-01T00:00:01Z", "ffff")
C_NEW = entry("team-c", "2026-12-01T00:00:02Z", "0000", sid="BucketWardenTeamC")
C_SAME_SECOND = entry("team-c", "2026-12-01T00:00:01Z", "0000", sid="BucketWardenTeamC")
SQUATTER = entry("team-x", "2026-11-01T00:00:00Z", "0000")  # older, but no grant covers team-x


@pytest.mark.parametrize(
    ("entries", "owner"),
    [
        pytest.param([C_NEW, A_OLD], "team-a", id="oldest-creation-wins"),
        pytest.param([A_OLD, C_SAME_SECOND], "team-c", id="same-second-lowest-uid-wins"),
        pytest.param([SQUATTER, C_NEW], "team-c", id="a-refused-claim-never-holds-the-bucket"),
        pytest.param([entry("team-a", "2026-01-01T00:00:00Z", "0", invalid=True), C_NEW], "team-c", id="invalid"),
        pytest.param([A_OLD._replace(deleting=True), C_NEW], "team-c", id="a-deleting-owner-hands-over"),
        pytest.param([SQUATTER], None, id="nobody-authorized"),
    ],
)
def test_arbitrate_picks_the_oldest_authorized_valid_claim(entries: list[ClaimEntry], owner: str | None) -> None:
    result = arbitrate(entries, TENANCY, "team-c", "pb")
    assert (result.owner.namespace if result.owner else None) == owner


def test_arbitrate_a_deleting_owner_still_owns_for_its_own_cleanup() -> None:
    leaving = A_OLD._replace(deleting=True)
    assert arbitrate([leaving, C_NEW], TENANCY, "team-a", "pb").owned_by("team-a", "pb")
    successor = arbitrate([leaving, C_NEW], TENANCY, "team-a", "pb", leaving=True).owner
    assert successor is not None and successor.namespace == "team-c"


def test_arbitrate_rivals_name_other_claimants_by_sid() -> None:
    result = arbitrate([A_OLD, C_NEW], TENANCY, "team-a", "pb")
    assert result.rivals == {"BucketWardenTeamC": "team-c/pb"}
    assert result.owned_by("team-a", "pb") and not result.owned_by("team-c", "pb")


def test_arbitrate_with_no_indexed_claim_lets_the_caller_write() -> None:
    assert arbitrate([], TENANCY, "team-a", "pb").owned_by("team-a", "pb")


def test_claim_entry_of_an_invalid_spec_is_never_a_request() -> None:
    meta = {"creationTimestamp": "2026-12-01T00:00:00Z", "uid": "u", "deletionTimestamp": "2026-12-02T00:00:00Z"}
    [(bucket, made)] = (claim_entry("team-a", "pb", meta, {"bucketName": BUCKET, "statementSid": "Nope"}) or {}).items()
    assert bucket == BUCKET and made.request is None and made.sid is None and made.deleting
    assert claim_entry("team-a", "pb", meta, {}) is None


def test_previous_owned_believes_only_a_record_of_the_resources_own_sid() -> None:
    from bucketwarden.k8s._object import _previous_owned
    from bucketwarden.spec import AdoptedStatement, ProtectedBucketSpec, ProtectedBucketStatus

    spec = ProtectedBucketSpec.model_validate({"bucketName": BUCKET, "allowedSourceIps": ["192.0.2.0/24"]})
    own = AdoptedStatement(sid="BucketWardenIpRestriction", hash="h")
    forged = AdoptedStatement(sid="BucketWardenTeamC", hash="h")
    assert _previous_owned(ProtectedBucketStatus(owned_statement=own), spec) == own
    assert _previous_owned(ProtectedBucketStatus(owned_statement=forged), spec) is None


def test_spec_parses_validate_once_per_generation_and_again_on_every_spec_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claims index runs on every watch event: a status or annotation event (same generation) is not
    validated again, a spec change (a new generation) always is, and a body without uid or generation never
    uses what was remembered."""
    from bucketwarden.k8s import _claims

    calls: list[str] = []
    real = _claims.parse_claim

    def counting(namespace: str, name: str, spec: Any) -> Any:
        calls.append(str(spec.get("statementSid")))
        return real(namespace, name, spec)

    monkeypatch.setattr(_claims, "parse_claim", counting)
    parses = SpecParses(size=2)
    valid = {"bucketName": BUCKET, "allowedSourceIps": ["192.0.2.0/24"], "statementSid": "BucketWardenOne"}
    invalid = {**valid, "statementSid": "Nope"}
    meta = {"creationTimestamp": "2026-12-01T00:00:00Z", "uid": "u1", "generation": 1}

    first = claim_entry("team-a", "pb", meta, valid, parses)
    again = claim_entry("team-a", "pb", {**meta, "resourceVersion": "9"}, valid, parses)
    assert first is not None and first[BUCKET].request is not None
    assert first == again and calls == ["BucketWardenOne"]

    # An edit bumps the generation: the new spec is judged, never the remembered one.
    [(_, edited)] = (claim_entry("team-a", "pb", {**meta, "generation": 2}, invalid, parses) or {}).items()
    assert edited.request is None and edited.sid is None and calls[-1] == "Nope"

    # No generation (or no uid): parsed every time.
    for _ in range(2):
        claim_entry("team-a", "pb", {"uid": "u1"}, valid, parses)
    assert calls[-2:] == ["BucketWardenOne", "BucketWardenOne"]

    # Bounded: the oldest is forgotten first.
    claim_entry("team-a", "pb", {**meta, "uid": "u2"}, valid, parses)
    assert len(parses) == 2
    claim_entry("team-a", "pb", meta, valid, parses)  # (u1, 1) was the oldest: parsed again
    assert calls[-1] == "BucketWardenOne" and len(calls) == 6


def test_tenant_policy_status_counts_each_claim_once_for_the_policy_that_grants_it() -> None:
    from bucketwarden.k8s._tenants import protected_per_policy, tenant_policy_status

    claims = {
        BUCKET: [A_OLD, C_NEW, SQUATTER, entry("team-a", "t", "1", invalid=True)],
        "shared-2": [entry("team-a", "t", "2")],
        "private": [ClaimEntry("t", "3", "team-a", "pb", None, Request("team-a", "pb", "private"))],
    }
    counts = protected_per_policy(TENANCY, claims)
    # What the status said when it authorized every claim once per policy: the same numbers.
    for name in TENANCY.policies:
        old = sum(
            1
            for entries in claims.values()
            for e in entries
            if e.request is not None and TENANCY.authorize(e.request).policy == name
        )
        assert counts.get(name, 0) == old
    assert counts == {"a": 2, "c": 1}  # neither the squatter, the invalid claim nor the ungranted bucket counts
    assert tenant_policy_status("a", TENANCY, counts, 3)["protectedBuckets"] == 2
    assert tenant_policy_status("c", TENANCY, {}, None)["protectedBuckets"] == 0
