"""Kubernetes API faults: status patches that fail (500) or time out, and watch streams cut mid-way.

The emulated API server injects them (KubeEmulator.script_faults). The operator must recover, with status
eventually correct, and must not write to AWS more often than needed: a lost status patch is no reason for
another PutBucketPolicy when the bucket is already in sync.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bucketwarden.policy import PolicyDocument
from bucketwarden_testkit import PROTECTED_BUCKETS, KubeClient, KubeEmulator, OperatorHandle
from tests.reliability._kit import (
    ROLE,
    RecordingAws,
    condition,
    create_pb,
    delete_all,
    fast_kopf_settings,
    foreign_statements,
    operator_on,
    policy_text,
    wait_for_reason,
)
from tests.shared import unique

pytestmark = pytest.mark.timeout(120)

REQUEST_TIMEOUT = 1.0  # kopf's per-request timeout here; a hung status patch outlasts it
ERROR_BACKOFFS = (0.1, 0.2, 0.3)  # kopf retries a failed API request 3 times, then gives up on that patch


@dataclass
class Env:
    kube: KubeEmulator
    client: KubeClient
    namespace: str
    aws: RecordingAws
    operator: OperatorHandle


@pytest.fixture(scope="module")
def env(kube: KubeEmulator) -> Iterator[Env]:
    aws = RecordingAws()
    aws.create_role(ROLE, path="/service-role/")
    namespace = unique("bw-kfaults")
    settings = fast_kopf_settings(request_timeout=REQUEST_TIMEOUT, error_backoffs=ERROR_BACKOFFS)
    with kube.client() as client:
        client.create_namespace(namespace)
        with operator_on(kube, aws, [namespace], kopf_settings=settings) as handle:
            yield Env(kube, client, namespace, aws, handle)
            delete_all(client, namespace)
        kube.script_faults(status_patch_errors=0, status_patch_timeouts=0, watch_cuts=0, plural=None)


def new_bucket(env: Env) -> tuple[str, str]:
    bucket = unique("bw-kf")
    env.aws.create_bucket(bucket, policy=policy_text(*foreign_statements(bucket)))
    return bucket, unique("pb")


def spec_for(bucket: str, cidrs: list[str] | None = None) -> dict[str, Any]:
    return {
        "bucketName": bucket,
        "allowedSourceIps": cidrs or ["192.0.2.0/24", "2001:db8::/32"],
        "exemptRoles": [{"name": ROLE}],
    }


def assert_status_matches_bucket(env: Env, name: str, bucket: str) -> dict[str, Any]:
    """Ready, for the current generation, and the policyHash is the hash of the policy actually in force."""
    obj = wait_for_reason(env.client, env.namespace, name, "Protected", status="True")
    text = env.aws.policy_of(bucket)
    assert text is not None
    assert obj["status"]["policyHash"] == PolicyDocument.parse(text).policy_hash
    assert env.operator.running
    return obj


def test_status_patch_errors_are_retried_and_cost_no_extra_put(env: Env) -> None:
    bucket, name = new_bucket(env)
    env.kube.script_faults(status_patch_errors=2, plural=PROTECTED_BUCKETS.plural)

    create_pb(env.client, env.namespace, name, spec_for(bucket))

    assert_status_matches_bucket(env, name, bucket)
    assert env.kube.fault_state()["injected"].get("status_patch_error", 0) >= 2
    assert env.aws.calls("PutBucketPolicy", bucket) == 1


def test_status_patch_failing_beyond_kopf_retries_is_healed_by_the_next_resync(env: Env) -> None:
    """kopf gives up on the patch (4 attempts); the next resync finds the bucket in sync, and writes status only."""
    bucket, name = new_bucket(env)
    env.kube.script_faults(status_patch_errors=len(ERROR_BACKOFFS) + 3, plural=PROTECTED_BUCKETS.plural)

    create_pb(env.client, env.namespace, name, spec_for(bucket))

    assert_status_matches_bucket(env, name, bucket)
    assert env.kube.fault_state()["status_patch_errors"] == 0
    assert env.aws.calls("GetBucketPolicy", bucket) >= 2  # reconciled again after the lost patch
    assert env.aws.calls("PutBucketPolicy", bucket) == 1


def test_status_patch_timeouts_are_retried_and_cost_no_extra_put(env: Env) -> None:
    bucket, name = new_bucket(env)
    env.kube.script_faults(status_patch_timeouts=2, hang_seconds=REQUEST_TIMEOUT + 0.5, plural=PROTECTED_BUCKETS.plural)

    create_pb(env.client, env.namespace, name, spec_for(bucket))

    assert_status_matches_bucket(env, name, bucket)
    assert env.kube.fault_state()["injected"].get("status_patch_timeout", 0) >= 2
    assert env.aws.calls("PutBucketPolicy", bucket) == 1


def test_watch_streams_cut_mid_way_miss_no_change(env: Env) -> None:
    """Every watch stream is cut after one event for a while: kopf re-watches from the last resourceVersion,
    so a spec change made meanwhile is still applied, exactly once."""
    bucket, name = new_bucket(env)
    create_pb(env.client, env.namespace, name, spec_for(bucket))
    assert_status_matches_bucket(env, name, bucket)

    env.kube.script_faults(watch_cuts=5, watch_cut_after=1, plural=PROTECTED_BUCKETS.plural)
    cidrs = ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"]
    env.client.patch_object(PROTECTED_BUCKETS, name, {"spec": spec_for(bucket, cidrs)}, namespace=env.namespace)

    obj = assert_status_matches_bucket(env, name, bucket)
    assert obj["metadata"]["generation"] == 2
    assert "198.51.100.0/24" in (env.aws.policy_of(bucket) or "")
    assert env.kube.fault_state()["injected"].get("watch_cut", 0) >= 1
    assert env.aws.calls("PutBucketPolicy", bucket) == 2  # one per generation

    # Still watching after the cuts: a second change arrives too.
    env.client.patch_object(PROTECTED_BUCKETS, name, {"spec": spec_for(bucket)}, namespace=env.namespace)
    obj = assert_status_matches_bucket(env, name, bucket)
    assert obj["metadata"]["generation"] == 3
    assert "198.51.100.0/24" not in (env.aws.policy_of(bucket) or "")
    assert condition(obj, "Synced")["status"] == "True"
