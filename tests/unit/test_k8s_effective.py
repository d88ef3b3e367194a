"""The glue between a ProtectedBucket and the reconciler: allow-lists, writer fights, ACK; and a list's status."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bucketwarden.aws import InMemoryAws
from bucketwarden.k8s._ack import AckBucket, ack_owner, ack_policy_patch
from bucketwarden.k8s._allowlists import Usage, allow_list_status, describe_users, status_patch, users_per_namespace
from bucketwarden.k8s._effective import Surroundings, allow_lists_from_index, reconcile_effective
from bucketwarden.policy import PolicyDocument
from bucketwarden.reconciler import PreviousState, Reconciler
from bucketwarden.sources import resolve_sources
from bucketwarden.spec import ProtectedBucketSpec, ProtectedBucketStatus, SourceAllowListSpec

BUCKET = "awsbackup-test-001"
CORP = SourceAllowListSpec(cidrs=["192.0.2.0/24"])
FOREIGN = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "PartnerList",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{BUCKET}",
        }
    ],
}


def spec(**fields: Any) -> ProtectedBucketSpec:
    return ProtectedBucketSpec.model_validate({"bucketName": BUCKET, **fields})


@pytest.fixture
def aws() -> InMemoryAws:
    fake = InMemoryAws()
    fake.create_bucket(BUCKET, policy=json.dumps(FOREIGN))
    return fake


def test_allow_lists_from_index_skips_an_invalid_list() -> None:
    index = {"good": [{"cidrs": ["192.0.2.0/24"]}], "bad": [{"cidrs": ["192.0.2.0/33"]}]}
    assert set(allow_lists_from_index(index)) == {"good"}


def test_reconcile_effective_writes_the_union_and_reports_its_hash(aws: InMemoryAws) -> None:
    pb = spec(allowedSourcesFrom=[{"name": "corp"}])
    result, extra = reconcile_effective(Reconciler(aws), pb, PreviousState(), ProtectedBucketStatus(), {"corp": CORP})
    assert result.ready and result.applied
    assert extra["resolvedSourcesHash"] == resolve_sources(pb, {"corp": CORP}).sources_hash
    text = aws.policy_of(BUCKET)
    assert text is not None
    (ours,) = PolicyDocument.parse(text).find("BucketWardenIpRestriction")
    assert set(ours.conditions["NotIpAddress"]["aws:sourceip"]) == {"192.0.2.0/24"}


def test_reconcile_effective_keeps_the_last_resolved_hash_while_a_list_is_missing(aws: InMemoryAws) -> None:
    previous = ProtectedBucketStatus(resolved_sources_hash="sha256:0123456789abcdef")
    pb = spec(allowedSourcesFrom=[{"name": "gone"}])
    result, extra = reconcile_effective(Reconciler(aws), pb, PreviousState(), previous, {})
    assert result.condition("Ready") is not None and result.condition("Ready").reason == "SourceListNotFound"  # type: ignore[union-attr]
    assert extra == {"resolvedSourcesHash": "sha256:0123456789abcdef"}
    assert aws.policy_of(BUCKET) == json.dumps(FOREIGN)


@pytest.mark.parametrize("in_force", [False, True], ids=["ours-missing", "ours-in-force"])
def test_reconcile_effective_beside_an_ack_bucket_writes_nothing(aws: InMemoryAws, in_force: bool) -> None:
    pb = spec(allowedSourceIps=["192.0.2.0/24"])
    if in_force:  # written earlier, before the ACK Bucket appeared
        assert Reconciler(aws).reconcile(pb).applied
    before = aws.policy_of(BUCKET)
    owner = AckBucket("team", "data", BUCKET, before)
    around = Surroundings(namespace="team", ack_index={("bucket", BUCKET): [owner]})
    result, extra = reconcile_effective(Reconciler(aws), pb, PreviousState(), ProtectedBucketStatus(), around)
    assert aws.policy_of(BUCKET) == before
    synced, ready = result.condition("Synced"), result.condition("Ready")
    assert synced is not None and synced.reason == "ManagedByACK" and "team/data" in synced.message
    assert ready is not None and (ready.status, ready.reason) == (
        ("True", "Protected") if in_force else ("False", "ManagedByACK")
    )
    assert extra["contention"] is None


def test_reconcile_effective_through_ack_patches_spec_policy_once(aws: InMemoryAws) -> None:
    pb = spec(allowedSourceIps=["192.0.2.0/24"], policyWriter="ACK", bucketRef={"name": "data"})
    entry = AckBucket("team", "data", BUCKET, json.dumps(FOREIGN))
    patches: list[str] = []
    around = Surroundings(
        namespace="team", ack_index={("ref", "team", "data"): [entry]}, patch_ack=lambda _e, t: patches.append(t)
    )
    result, _ = reconcile_effective(Reconciler(aws), pb, PreviousState(), ProtectedBucketStatus(), around)
    (text,) = patches
    merged = PolicyDocument.parse(text)
    assert [s.sid for s in merged.statements] == ["PartnerList", "BucketWardenIpRestriction"]
    assert aws.policy_of(BUCKET) == json.dumps(FOREIGN)  # ACK writes S3, not us
    ready = result.condition("Ready")
    assert ready is not None and ready.reason == "ACKPending"
    # Once ACK has the statement (and has written it), nothing more is patched and the bucket is Protected.
    aws.put_foreign(BUCKET, text)
    around = Surroundings(
        namespace="team",
        ack_index={("ref", "team", "data"): [entry._replace(policy=text)]},
        patch_ack=lambda _e, t: patches.append(t),
    )
    result, _ = reconcile_effective(Reconciler(aws), pb, PreviousState(), ProtectedBucketStatus(), around)
    assert len(patches) == 1
    ready = result.condition("Ready")
    assert ready is not None and (ready.status, ready.reason) == ("True", "Protected")


def test_ack_owner_picks_one_and_patch_touches_only_spec_policy() -> None:
    a, b = AckBucket("b-ns", "x", BUCKET, None), AckBucket("a-ns", "y", BUCKET, None)
    assert ack_owner({("bucket", BUCKET): [a, b]}, BUCKET) == b
    assert ack_owner({}, BUCKET) is None
    assert ack_policy_patch("{}") == {"spec": {"policy": "{}"}}


def test_allow_list_status_counts_users_and_those_in_sync() -> None:
    lists = {"corp": CORP}
    ref = {"bucketName": BUCKET, "allowedSourcesFrom": [{"name": "corp"}]}
    current = resolve_sources(ProtectedBucketSpec.model_validate(ref), lists).sources_hash
    users = [
        Usage("a", "synced", ref, current, True),
        Usage("b", "stale", ref, "sha256:old", True),
        Usage("c", "failing", ref, current, False),
    ]
    status = allow_list_status("corp", CORP, users, lists, 3)
    assert (status["usedBy"], status["inSync"], status["observedGeneration"]) == (3, 1, 3)
    assert status["users"] == {"a": 1, "b": 1, "c": 1}


@pytest.mark.parametrize(
    ("namespaces", "limit", "expected"),
    [
        pytest.param(["a", "b", "b", "c", "c", "c"], 50, {"c": 3, "b": 2, "a": 1}, id="busiest-first"),
        pytest.param(["b", "a"], 50, {"a": 1, "b": 1}, id="ties-by-name"),
        pytest.param(["a", "b", "b", "c", "c", "c"], 2, {"c": 3, "b": 2}, id="capped"),
        pytest.param([], 50, {}, id="unused"),
    ],
)
def test_allow_list_users_per_namespace_counts_and_names_no_resource(
    namespaces: list[str], limit: int, expected: dict[str, int]
) -> None:
    users = [Usage(ns, f"secret-name-{i}", {}, None, True) for i, ns in enumerate(namespaces)]
    counted = users_per_namespace(users, limit)
    assert counted == expected and list(counted) == list(expected)
    status = allow_list_status("corp", CORP, users, {"corp": CORP}, 1)
    assert "secret-name" not in json.dumps(status)
    assert "secret-name" not in describe_users(users)


@pytest.mark.parametrize(
    ("current", "users", "patch_users"),
    [
        pytest.param({"users": {"a": 2, "b": 1}}, {"a": 1}, {"a": 1, "b": None}, id="a-namespace-left"),
        pytest.param({"users": {"a": 2}}, {"a": 2, "b": 1}, {"a": 2, "b": 1}, id="a-namespace-joined"),
        pytest.param({"users": ["a/x", "b/y"]}, {"a": 1}, {"a": 1}, id="old-list-form-replaced"),
        pytest.param({}, {"a": 1}, {"a": 1}, id="first-status"),
    ],
)
def test_allow_list_status_patch_removes_namespaces_gone(
    current: dict[str, Any], users: dict[str, int], patch_users: dict[str, int | None]
) -> None:
    """status is merge-patched: a namespace no longer using the list must be sent as null, or its count stays."""
    assert status_patch(current, {"usedBy": 1, "users": users})["users"] == patch_users


def test_reconcile_effective_a_spec_change_ends_the_back_off(aws: InMemoryAws) -> None:
    from bucketwarden.spec import Contention

    pb = spec(allowedSourceIps=["192.0.2.0/24"])
    backing_off = ProtectedBucketStatus(observed_generation=1, contention=Contention(repairs=5, skipped=4, backoff=4))
    same = Surroundings(generation=1)
    result, extra = reconcile_effective(Reconciler(aws), pb, PreviousState(), backing_off, same)
    assert not result.applied and extra["contention"]["skipped"] == 3  # still backing off: observed only
    changed = Surroundings(generation=2)
    result, extra = reconcile_effective(Reconciler(aws), pb, PreviousState(), backing_off, changed)
    assert result.applied and extra["contention"] is None
