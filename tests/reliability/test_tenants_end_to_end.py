"""Issue 20's "Done when", end to end: three tenants, their TenantPolicies, and the attacks of a hostile namespace,
against the operator running under the chart's own rendered RBAC, enforced by the emulated API (403 otherwise).

team-a is granted `team-a-*` and `shared-*`, team-b `team-b-*`, team-c `shared-*`. The operator resyncs every
60 s, so anything that happens faster than that (a handover) is event-driven.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bucketwarden.k8s import OperatorSettings
from bucketwarden.policy import PolicyDocument
from bucketwarden_testkit import (
    PROTECTED_BUCKETS,
    TENANT_POLICIES,
    KubeClient,
    KubeEmulator,
    grant_namespaces,
    load_crds,
    wait_until,
)
from tests.reliability._kit import RecordingAws, condition, create_pb, policy_text, wait_for_reason
from tests.reliability.conftest import CRD_FILES
from tests.reliability.test_rbac_enforced import enforced, helm, operator_as_service_account, render_chart
from tests.shared import unique

__all__ = ["helm"]  # the module-scoped fixture, re-used

pytestmark = pytest.mark.timeout(240)

CIDRS = ["192.0.2.0/24", "2001:db8::/32"]
HANDOVER_LIMIT_S = 20.0


def deny_insecure(bucket: str) -> dict[str, Any]:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def statements(aws: RecordingAws, bucket: str) -> list[dict[str, Any]]:
    text = aws.policy_of(bucket)
    return [dict(s.to_json()) for s in PolicyDocument.parse(text).statements] if text else []


def bucketwarden_sids(aws: RecordingAws, bucket: str) -> list[str]:
    return [s["Sid"] for s in statements(aws, bucket) if str(s.get("Sid", "")).startswith("BucketWarden")]


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeEmulator]:
    """An API of our own: no grant-all policy here, so the default is deny."""
    with KubeEmulator(resources=()) as emulator, emulator.client() as client:
        for crd in load_crds(CRD_FILES):
            client.apply_crd(crd)
        yield emulator


def ready_reason(client: KubeClient, namespace: str, name: str) -> tuple[str | None, str | None]:
    ready = condition(client.get_object(PROTECTED_BUCKETS, name, namespace=namespace), "Ready")
    return ready.get("status"), ready.get("reason")


def test_tenancy_done_when_under_the_charts_rbac(
    kube: KubeEmulator, helm: Path, tmp_path: Path, figures: dict[str, Any]
) -> None:
    suffix = unique("t")[-6:]
    team_a, team_b, team_c = (f"team-{t}-{suffix}" for t in "abc")
    own, theirs, shared = f"team-a-{suffix}", f"team-b-{suffix}", f"shared-logs-{suffix}"
    aws = RecordingAws()
    for bucket in (own, theirs, shared):
        aws.create_bucket(bucket, policy=policy_text(deny_insecure(bucket)))
    role = aws.create_role("bucketwarden-tenant", account="222233334444")
    docs = render_chart(helm, {}, tmp_path)
    assert not [d for d in docs if d["kind"] == "TenantPolicy"], "the chart grants nothing by default"
    settings = OperatorSettings(resync_interval_seconds=60.0, resync_jitter_seconds=0.5, metrics_port=0, health_port=0)

    with kube.client() as client:
        for namespace in (team_a, team_b, team_c):
            client.create_namespace(namespace)
        with enforced(kube, docs), operator_as_service_account(kube, aws, [], settings):
            # Default deny: nothing is granted yet, so no AWS call is made and the message names the fix.
            create_pb(client, team_a, "own", {"bucketName": own, "allowedSourceIps": CIDRS})
            refused = wait_for_reason(client, team_a, "own", "NotAuthorized", status="False")
            assert f"bucketwarden grant --namespace {team_a} --bucket {own}" in condition(refused, "Ready")["message"]
            assert aws.calls(bucket=own) == 0

            grant_namespaces(client, f"a-{suffix}", [team_a], ["team-a-*", "shared-logs-*"])
            grant_namespaces(client, f"b-{suffix}", [team_b], ["team-b-*"])
            grant_namespaces(client, f"c-{suffix}", [team_c], ["shared-logs-*"])

            # A grant takes effect at once (the covered resources are nudged), not at the 60 s resync.
            # team-a's own bucket becomes Ready and keeps the security team's DenyInsecureTransport.
            wait_for_reason(client, team_a, "own", "Protected", status="True", timeout=HANDOVER_LIMIT_S)
            assert deny_insecure(own) in statements(aws, own)
            # The grant's status says whom it matches and how many ProtectedBuckets it authorizes (written through
            # /status: the operator may not write the grant itself).
            client.wait_for_status(
                TENANT_POLICIES,
                f"a-{suffix}",
                lambda s: s.get("protectedBuckets", 0) >= 1 and team_a in s.get("matchedNamespaces", []),
                timeout=HANDOVER_LIMIT_S,
            )

            # Hijack by Sid, at creation and at deletion: the statement never changes.
            before = aws.policy_of(own)
            create_pb(
                client,
                team_a,
                "hijack",
                {"bucketName": own, "allowedSourceIps": CIDRS, "statementSid": "DenyInsecureTransport"},
            )
            wait_for_reason(client, team_a, "hijack", "InvalidSpec", status="False")
            client.delete_object(PROTECTED_BUCKETS, "hijack", namespace=team_a)
            client.wait_until_gone(PROTECTED_BUCKETS, "hijack", namespace=team_a)
            assert aws.policy_of(own) == before

            # A squat on team-b's bucket is refused and writes nothing; team-b's own (younger) claim wins anyway.
            create_pb(client, team_a, "squat", {"bucketName": theirs, "allowedSourceIps": ["198.51.100.0/24"]})
            wait_for_reason(client, team_a, "squat", "NotAuthorized", status="False")
            assert aws.calls(bucket=theirs) == 0
            create_pb(client, team_b, "data", {"bucketName": theirs, "allowedSourceIps": CIDRS})
            wait_for_reason(client, team_b, "data", "Protected", status="True")
            assert bucketwarden_sids(aws, theirs) == ["BucketWardenIpRestriction"]

            # A deputy role without a grant: NotAuthorized, and no STS call.
            deputy = {"bucketName": f"team-a-deputy-{suffix}", "allowedSourceIps": CIDRS, "assumeRoleArn": role.arn}
            create_pb(client, team_a, "deputy", deputy)
            wait_for_reason(client, team_a, "deputy", "NotAuthorized", status="False")
            assert aws.assume_role_requests == []

            # Allow-everything is refused.
            create_pb(client, team_a, "everyone", {"bucketName": own, "allowedSourceIps": ["0.0.0.0/0", "::/0"]})
            wait_for_reason(client, team_a, "everyone", "InvalidSpec", status="False")

            # team-a and team-c claim shared-logs in the same second: one statement, one Ready owner.
            create_pb(client, team_a, "shared", {"bucketName": shared, "allowedSourceIps": CIDRS})
            create_pb(
                client,
                team_c,
                "shared",
                {"bucketName": shared, "allowedSourceIps": ["198.51.100.0/24"], "statementSid": "BucketWardenTeamC"},
            )

            def settled() -> bool:
                reasons = {ready_reason(client, ns, "shared") for ns in (team_a, team_c)}
                return (
                    reasons == {("True", "Protected"), ("False", "Conflict")}
                    and len(bucketwarden_sids(aws, shared)) == 1
                )

            wait_until(settled, timeout=90, what="one owner of shared-logs")
            owner = next(ns for ns in (team_a, team_c) if ready_reason(client, ns, "shared")[0] == "True")
            other = team_c if owner == team_a else team_a

            # Deleting the owner hands the bucket to the other within 20 s, at a 60 s resync: a resync could not
            # do it in time, only the event-driven handover can.
            client.delete_object(PROTECTED_BUCKETS, "shared", namespace=owner)
            started = time.monotonic()
            wait_for_reason(client, other, "shared", "Protected", status="True", timeout=HANDOVER_LIMIT_S)
            figures["tenancy handover after the owner's deletion (s)"] = round(time.monotonic() - started, 2)
            assert len(bucketwarden_sids(aws, shared)) == 1
            assert deny_insecure(shared) in statements(aws, shared)
            state = kube.rbac_state()

    assert state["denied"] == [], "\n".join(d["message"] for d in state["denied"])
