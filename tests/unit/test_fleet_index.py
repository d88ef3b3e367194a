"""kopf's one index of the ProtectedBuckets: each reader's part under its own tag, and the views that read it."""

from __future__ import annotations

from typing import Any

import pytest

from bucketwarden.k8s import OperatorSettings, build_registry
from bucketwarden.k8s._allowlists import Usage, users_of
from bucketwarden.k8s._claims import ClaimEntry
from bucketwarden.k8s._fleet_index import CLAIMS, FLEET_INDEX, TARGETS, USERS, FleetIndex, IndexView, view
from bucketwarden.k8s._shards import shard_of
from bucketwarden.spec import GROUP, PLURAL
from tests.shared import LookupOnly, fleet_entries


def test_a_view_sees_its_own_tag_only_and_untagged() -> None:
    index = {(CLAIMS, "b-1"): ["claim"], (TARGETS, "ns/x"): ["body"], (USERS, "office"): ["usage"]}
    claims = IndexView(index, CLAIMS)
    assert claims["b-1"] == ["claim"] and claims.get("ns/x") is None and "b-1" in claims and "ns/x" not in claims
    assert list(claims) == ["b-1"] and len(claims) == 1 and dict(claims) == {"b-1": ["claim"]}
    with pytest.raises(KeyError):
        claims["office"]
    assert dict(IndexView(index, USERS)) == {"office": ["usage"]}


def test_a_view_reads_kopfs_live_index_even_when_it_starts_empty() -> None:
    # kopf's index is empty (falsy) at start-up; a view taken then must see what fills it later.
    live: dict[tuple[str, str], Any] = {}
    targets = view({FLEET_INDEX: live}, TARGETS)
    assert "ns/x" not in targets
    live[(TARGETS, "ns/x")] = ["body"]
    assert targets["ns/x"] == ["body"] and len(targets) == 1
    assert dict(view({}, CLAIMS)) == {}  # no fleet index at all (a handler of another operator's registry)


def test_entries_file_every_parts_result_under_its_tag_and_none_when_there_is_none() -> None:
    fleet = FleetIndex()
    fleet.add(CLAIMS, lambda kwargs: {kwargs["bucket"]: "claim"})
    fleet.add(USERS, lambda kwargs: None)
    fleet.add(TARGETS, lambda kwargs: {} if kwargs["bucket"] == "skip" else {"ns/x": "body"})
    assert fleet.entries({"bucket": "b-1"}) == {(CLAIMS, "b-1"): "claim", (TARGETS, "ns/x"): "body"}
    assert fleet.entries({"bucket": "skip"}) == {(CLAIMS, "skip"): "claim"}
    empty = FleetIndex()
    empty.add(USERS, lambda kwargs: None)
    assert empty.entries({}) is None  # kopf drops the object from the index
    with pytest.raises(ValueError, match="twice"):
        fleet.add(CLAIMS, lambda kwargs: None)


def test_the_operator_indexes_protectedbuckets_once_with_every_readers_part() -> None:
    registry = build_registry(OperatorSettings(metrics_port=0, health_port=0))
    handlers: Any = registry._indexing.get_all_handlers()
    on_buckets = [h for h in handlers if (h.selector.group, h.selector.any_name) == (GROUP, PLURAL)]
    assert [h.id for h in on_buckets] == [FLEET_INDEX]  # one kopf handler per watch event, not one per reader
    entries = fleet_entries(registry, "ns", "x", allowedSourcesFrom=[{"name": "office"}])
    assert set(entries) == {(CLAIMS, "b-x"), (TARGETS, "ns/x"), (USERS, "office")}
    [claim] = [entries[(CLAIMS, "b-x")]]
    assert isinstance(claim, ClaimEntry) and (claim.namespace, claim.name) == ("ns", "x")
    assert entries[(TARGETS, "ns/x")]["metadata"]["name"] == "x"  # type: ignore[index]


def test_a_shard_indexes_every_claim_but_only_its_own_targets() -> None:
    # Every shard must see every claim to arbitrate alike; it resyncs only the objects it owns.
    registries = [
        build_registry(OperatorSettings(metrics_port=0, health_port=0, shard_count=2, shard_index=i)) for i in (0, 1)
    ]
    for name in ("a", "b", "c", "d"):
        owner = shard_of("ns", name, 2)
        for i, registry in enumerate(registries):
            tags = {tag for tag, _ in fleet_entries(registry, "ns", name)}
            assert tags == ({CLAIMS, TARGETS} if i == owner else {CLAIMS}), (name, i)


def test_the_allow_list_users_are_looked_up_never_walked() -> None:
    usage = Usage("ns", "x", {}, None, True)
    index = IndexView(LookupOnly({(USERS, "office"): [usage], (CLAIMS, "b-x"): ["claim"]}), USERS)
    assert users_of(index, "office") == [usage] and users_of(index, "home") == [] and users_of(None, "office") == []


def test_a_part_that_fails_on_an_object_takes_only_itself_out(caplog: pytest.LogCaptureFixture) -> None:
    fleet = FleetIndex()
    fleet.add(CLAIMS, lambda kwargs: {"b-1": "claim"})

    def broken(kwargs: Any) -> Any:
        raise TypeError("not iterable")

    fleet.add(USERS, broken)
    fleet.add(TARGETS, lambda kwargs: {"ns/x": "body"})
    assert fleet.entries({"namespace": "ns", "name": "x"}) == {(CLAIMS, "b-1"): "claim", (TARGETS, "ns/x"): "body"}
    assert "the users part failed for ns/x" in caplog.text


def test_a_spec_no_schema_allows_still_leaves_the_object_claimed_and_resynced() -> None:
    # allowedSourcesFrom must be a list (the CRD's schema); on a test bed without a schema a number reaches the
    # index. The users' part fails on it; the claim and the resync target stay, as with three separate indices.
    registry = build_registry(OperatorSettings(metrics_port=0, health_port=0))
    entries = fleet_entries(registry, "ns", "x", allowedSourcesFrom=5)
    assert set(entries) == {(CLAIMS, "b-x"), (TARGETS, "ns/x")}
