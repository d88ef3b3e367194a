"""A change of the allowed sources that does not fit in S3's 20 KB fails closed: the sources both the statement in
force and the new spec allow are written (every removal takes effect), and the additions wait, named in status.

Pure (narrow_to_live), then through the reconciler on the in-memory AWS, then through reconcile_effective with a
SourceAllowList edit, which is how an operator meets it.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bucketwarden.aws import InMemoryAws
from bucketwarden.k8s._effective import reconcile_effective
from bucketwarden.policy import MAX_POLICY_BYTES, SOURCES_PENDING, PolicyDocument, Statement, narrow_to_live
from bucketwarden.policy._cidr import contains
from bucketwarden.reconciler import PreviousState, Reconciler, ReconcileResult
from bucketwarden.spec import ProtectedBucketSpec, ProtectedBucketStatus, SourceAllowListSpec

BUCKET = "awsbackup-test-001"
SID = "BucketWardenIpRestriction"
KEEP, DROP = "192.0.2.0/24", "198.51.100.0/24"
IPV6 = "2001:db8::/32"
# 90 additions, none adjacent to another (they would collapse): about 1.6 KB more than the statement in force.
ADDED = [f"203.0.{i // 8}.{(i % 8) * 32}/28" for i in range(90)]


def spec(**fields: Any) -> ProtectedBucketSpec:
    return ProtectedBucketSpec.model_validate({"bucketName": BUCKET, **fields})


def live(cidrs: list[str], vpces: list[str] | None = None, key: str = "aws:SourceIp") -> Statement:
    condition: dict[str, Any] = {"NotIpAddress": {key: cidrs}}
    if vpces:
        condition["StringNotEquals"] = {"aws:SourceVpce": vpces}
    return Statement.build(
        sid=SID, effect="Deny", principal="*", action="s3:*", resource=f"arn:aws:s3:::{BUCKET}", condition=condition
    )


# --- pure: narrow_to_live ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_force", "wanted", "written", "removed", "pending"),
    [
        pytest.param([KEEP, DROP], [KEEP, "203.0.113.0/24"], [KEEP], (DROP,), ("203.0.113.0/24",), id="swap-one"),
        pytest.param([KEEP, DROP], [KEEP], [KEEP], (DROP,), (), id="removal-only"),
        pytest.param([KEEP], [KEEP, DROP], [KEEP], (), (DROP,), id="addition-only"),
        pytest.param(
            [KEEP], ["192.0.2.0/25", DROP], ["192.0.2.0/25"], (KEEP,), (DROP,), id="narrowed-inside-a-range-in-force"
        ),
        pytest.param(["192.0.2.0/25"], [KEEP], ["192.0.2.0/25"], (), (KEEP,), id="widened-waits"),
        pytest.param([KEEP, IPV6], [KEEP, "2001:db8::/48"], [KEEP, "2001:db8::/48"], (IPV6,), (), id="ipv6"),
        pytest.param([KEEP], [DROP], [], (KEEP,), (DROP,), id="nothing-in-common"),
    ],
)
def test_narrow_to_live_keeps_what_both_allow(
    in_force: list[str],
    wanted: list[str],
    written: list[str],
    removed: tuple[str, ...],
    pending: tuple[str, ...],
) -> None:
    narrowing = narrow_to_live(spec(allowedSourceIps=wanted), live(in_force))
    assert narrowing.spec.allowed_source_ips == written
    assert (narrowing.removed, narrowing.pending) == (removed, pending)
    assert narrowing.empty is (written == [])


def test_narrow_to_live_vpc_endpoints_and_case_insensitive_keys() -> None:
    old, new = "vpce-0123456789abcdef0", "vpce-0fedcba9876543210"
    narrowing = narrow_to_live(
        spec(allowedSourceIps=[KEEP], allowedVpcEndpoints=[new]), live([KEEP], [old], key="AWS:SOURCEIP")
    )
    assert narrowing.spec.allowed_source_ips == [KEEP]
    assert narrowing.spec.allowed_vpc_endpoints == []
    assert (narrowing.removed, narrowing.pending) == ((old,), (new,))


_NETWORK = st.builds(
    lambda a, b, p: str(ipaddress.ip_network(f"10.{a}.{b}.0/{p}", strict=False)),
    st.integers(0, 3),
    st.integers(0, 255),
    st.integers(14, 26),
)


@given(st.lists(_NETWORK, min_size=1, max_size=6), st.lists(_NETWORK, min_size=1, max_size=6), st.integers(0, 2**18))
def test_narrow_to_live_allows_an_address_exactly_when_both_allow_it(
    in_force: list[str], wanted: list[str], offset: int
) -> None:
    narrowing = narrow_to_live(spec(allowedSourceIps=wanted), live(in_force))
    address = str(ipaddress.IPv4Address("10.0.0.0") + offset)
    both = [ipaddress.ip_network(n) for n in narrowing.spec.allowed_source_ips]
    old = [ipaddress.ip_network(n) for n in in_force]
    new = [ipaddress.ip_network(n) for n in wanted]
    assert contains(both, address) == (contains(old, address) and contains(new, address))


# --- through the reconciler, on the in-memory AWS ----------------------------------------------------------------


def filled_bucket(aws: InMemoryAws, first: ProtectedBucketSpec) -> str:
    """A bucket whose policy, with ``first``'s statement, is about 1 KB under S3's limit; returns it as written."""
    arns = ["arn:aws:iam::444455556666:role/reader"]

    def document() -> dict[str, Any]:
        reader = {"Sid": "Readers", "Effect": "Allow", "Principal": {"AWS": arns}, "Action": "s3:GetObject"}
        return {"Version": "2012-10-17", "Statement": [{**reader, "Resource": f"arn:aws:s3:::{BUCKET}/*"}]}

    while len(json.dumps(document(), separators=(",", ":"))) < MAX_POLICY_BYTES - 1600:
        arns.append(f"arn:aws:iam::4444555566{len(arns) % 100:02d}:role/reader-{len(arns)}")
    aws.create_bucket(BUCKET, policy=json.dumps(document()))
    assert Reconciler(aws).reconcile(first).applied
    text = aws.policy_of(BUCKET)
    assert text is not None and len(text.encode()) < MAX_POLICY_BYTES
    return text


def ours_in_force(aws: InMemoryAws) -> set[str]:
    (statement,) = PolicyDocument.parse(aws.policy_of(BUCKET) or "").find(SID)
    return set(statement.conditions["NotIpAddress"]["aws:sourceip"])


def ready(result: ReconcileResult) -> tuple[str, str, str]:
    condition = result.condition("Ready")
    assert condition is not None
    return condition.status, condition.reason, condition.message


def test_reconciler_too_large_change_writes_the_removals_and_names_the_pending_additions() -> None:
    aws = InMemoryAws()
    filled_bucket(aws, spec(allowedSourceIps=[KEEP, DROP, IPV6]))
    shrunk = spec(allowedSourceIps=[KEEP, IPV6, *ADDED])

    result = Reconciler(aws).reconcile(shrunk)

    assert result.applied and result.action == "put"
    assert ours_in_force(aws) == {KEEP, IPV6}  # DROP is denied now; none of the additions is allowed yet
    status, reason, message = ready(result)
    assert (status, reason) == ("False", "PolicyTooLarge")
    assert f"the removals took effect ({DROP})" in message and ADDED[0] in message
    (pending,) = [f for f in result.findings if f.code == SOURCES_PENDING]
    assert pending.severity == "Warning" and all(cidr in pending.message for cidr in ADDED)
    synced = result.condition("Synced")
    assert synced is not None and synced.status == "False"
    assert len((aws.policy_of(BUCKET) or "").encode()) <= MAX_POLICY_BYTES

    again = Reconciler(aws).reconcile(shrunk, PreviousState(result.statement_hash))  # already in force: no write

    assert not again.applied and ours_in_force(aws) == {KEEP, IPV6}
    assert ready(again)[:2] == ("False", "PolicyTooLarge") and "every removal is in effect" in ready(again)[2]


@pytest.mark.parametrize(
    ("first", "then", "error"),
    [
        pytest.param([KEEP, IPV6], [KEEP, IPV6, *ADDED], False, id="additions-only"),
        pytest.param([KEEP], [DROP, *ADDED], True, id="nothing-in-common"),
    ],
)
def test_reconciler_too_large_change_without_a_removal_to_apply_writes_nothing(
    first: list[str], then: list[str], error: bool
) -> None:
    aws = InMemoryAws()
    before = filled_bucket(aws, spec(allowedSourceIps=first))

    result = Reconciler(aws).reconcile(spec(allowedSourceIps=then))

    assert not result.applied and aws.policy_of(BUCKET) == before
    assert ready(result)[:2] == ("False", "PolicyTooLarge")
    assert {f.severity for f in result.findings if f.code == SOURCES_PENDING} == (
        {"Warning", "Error"} if error else {"Warning"}
    )


def test_reconciler_too_large_change_in_observe_mode_writes_nothing() -> None:
    aws = InMemoryAws()
    before = filled_bucket(aws, spec(allowedSourceIps=[KEEP, DROP, IPV6]))

    result = Reconciler(aws).reconcile(spec(allowedSourceIps=[KEEP, IPV6, *ADDED], managementPolicy="Observe"))

    assert not result.applied and aws.policy_of(BUCKET) == before


def test_reconciler_too_large_first_write_writes_nothing() -> None:
    """No statement of ours in force: nothing to narrow (P07 of docs/bad-inputs.md)."""
    aws = InMemoryAws()
    before = filled_bucket(aws, spec(allowedSourceIps=[KEEP, IPV6]))
    aws.put_foreign(BUCKET, json.dumps({**json.loads(before), "Statement": json.loads(before)["Statement"][:1]}))
    foreign_only = aws.policy_of(BUCKET)

    result = Reconciler(aws).reconcile(spec(allowedSourceIps=[KEEP, IPV6, *ADDED]))

    assert aws.policy_of(BUCKET) == foreign_only and not result.applied


# --- a SourceAllowList edit, as the operator reconciles it ----------------------------------------------------


def test_reconcile_effective_allow_list_shrink_past_20kb_applies_the_removal() -> None:
    aws = InMemoryAws()
    pb = spec(allowedSourceIps=[IPV6], allowedSourcesFrom=[{"name": "corp"}])
    filled_bucket(aws, spec(allowedSourceIps=[IPV6, KEEP, DROP]))
    corp_before = SourceAllowListSpec(cidrs=[KEEP, DROP])
    result, _ = reconcile_effective(
        Reconciler(aws), pb, PreviousState(), ProtectedBucketStatus(), {"corp": corp_before}
    )
    assert result.ready and ours_in_force(aws) == {IPV6, KEEP, DROP}

    corp_after = SourceAllowListSpec(cidrs=[KEEP, *ADDED])  # the network team drops DROP and adds 100 ranges
    result, extra = reconcile_effective(
        Reconciler(aws), pb, PreviousState(), ProtectedBucketStatus(), {"corp": corp_after}
    )

    assert result.applied and ours_in_force(aws) == {IPV6, KEEP}
    assert ready(result)[:2] == ("False", "PolicyTooLarge")
    assert any(f.code == SOURCES_PENDING and ADDED[-1] in f.message for f in result.findings)
    assert extra["resolvedSourcesHash"]  # the list's users count it as not in sync: Synced is False
    synced = result.condition("Synced")
    assert synced is not None and synced.status == "False"
