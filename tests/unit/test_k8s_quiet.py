"""The quiet resync tick: one GetBucketPolicy and a digest compare when nothing changed; anything else falls through
to the full reconcile. Also the managed-buckets gauge, now kept incrementally."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bucketwarden.aws import InMemoryAws
from bucketwarden.errors import AwsUnavailableError
from bucketwarden.k8s import Metrics
from bucketwarden.k8s._fleet_index import CLAIMS, IndexView
from bucketwarden.k8s._quiet import Origin, SteadyState, quiet_tick, spec_digest, steady_state_of
from bucketwarden.reconciler import PreviousState, Reconciler, ReconcileResult
from bucketwarden.spec import ProtectedBucketSpec
from tests.shared import LookupOnly

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RAW_SPEC: dict[str, Any] = {
    "bucketName": "quiet-bucket",
    "allowedSourceIps": ["192.0.2.0/24"],
    "exemptRoles": [{"name": "backup"}],
}


def converged() -> tuple[InMemoryAws, Reconciler, SteadyState]:
    """A bucket reconciled twice (write, then InSync), and the steady state the second reconcile leaves."""
    aws = InMemoryAws()
    aws.create_role("backup", path="/service-role/")
    aws.create_bucket("quiet-bucket")
    reconciler = Reconciler(aws)
    spec = ProtectedBucketSpec.model_validate(RAW_SPEC)
    first = reconciler.reconcile(spec)
    second = reconciler.reconcile(spec, previous_of(first))
    state = steady_state_of(second, spec, Origin("u1", spec_digest(RAW_SPEC), NOW + timedelta(seconds=600)))
    assert state is not None
    return aws, reconciler, state


def previous_of(result: ReconcileResult) -> PreviousState:
    role_ids = {e.name or "": e.role_id for e in result.exempt_principals if e.kind == "Role"}
    return PreviousState(result.statement_hash, role_ids, policy_hash=result.policy_hash, verified=True)


def test_quiet_tick_is_one_get_when_nothing_changed() -> None:
    aws, _, state = converged()
    tick = quiet_tick(aws, state, uid="u1", digest=spec_digest(RAW_SPEC), now=NOW)
    assert tick is not None
    assert tick.aws_calls == {"GetBucketPolicy": 1}


Change = Callable[[InMemoryAws], dict[str, Any]]


@pytest.mark.parametrize(
    "change",
    [
        lambda aws: aws.put_foreign("quiet-bucket", aws.policy_of("quiet-bucket").replace("192.0.2.0", "10.0.0.0")),
        lambda aws: aws.put_foreign("quiet-bucket", None),
        lambda aws: {"digest": spec_digest({**RAW_SPEC, "allowedSourceIps": ["198.51.100.0/24"]})},
        lambda aws: {"uid": "recreated-object"},
        lambda aws: {"now": NOW + timedelta(seconds=600)},
        lambda aws: (aws.recreate_role("backup"), aws.advance(301), {})[2],
        lambda aws: aws.fail_next("GetBucketPolicy", AwsUnavailableError("SlowDown", api="GetBucketPolicy")),
    ],
    ids=[
        "policy-edited",
        "policy-deleted",
        "spec-changed",
        "object-recreated",
        "status-refresh-due",
        "role-recreated",
        "aws-error",
    ],
)
def test_quiet_tick_falls_through_on_any_change(change: Change) -> None:
    aws, _, state = converged()
    overrides = change(aws) or {}
    kwargs: dict[str, Any] = {"uid": "u1", "digest": spec_digest(RAW_SPEC), "now": NOW, **overrides}
    assert quiet_tick(aws, state, **kwargs) is None


def test_after_a_write_the_policy_is_known_by_meaning_and_the_first_quiet_tick_learns_its_text() -> None:
    aws = InMemoryAws()
    aws.create_role("backup", path="/service-role/")
    aws.create_bucket("quiet-bucket")
    spec = ProtectedBucketSpec.model_validate(RAW_SPEC)
    wrote = Reconciler(aws).reconcile(spec)
    assert wrote.outcome == "Updated"
    state = steady_state_of(wrote, spec, Origin("u", "d", NOW + timedelta(seconds=600)))
    assert state is not None and state.policy_digest is None and state.policy_hash == wrote.policy_hash
    # AWS returns the text in its own form: the same meaning, other bytes.
    text = aws.policy_of("quiet-bucket") or ""
    aws.put_foreign("quiet-bucket", json.dumps(json.loads(text), indent=2))
    first = quiet_tick(aws, state, uid="u", digest="d", now=NOW)
    assert first is not None and first.learned_digest is not None
    assert first.aws_calls.get("GetBucketPolicy") == 1
    learned = dataclasses.replace(state, policy_digest=first.learned_digest)
    assert quiet_tick(aws, learned, uid="u", digest="d", now=NOW) is not None
    aws.put_foreign("quiet-bucket", text.replace("192.0.2.0", "10.0.0.0"))
    assert quiet_tick(aws, state, uid="u", digest="d", now=NOW) is None  # by meaning: changed
    assert quiet_tick(aws, learned, uid="u", digest="d", now=NOW) is None  # by text: changed


def test_no_steady_state_from_a_failed_or_blocked_reconcile() -> None:
    aws = InMemoryAws()
    aws.create_bucket("quiet-bucket")  # the exempt role does not exist
    spec = ProtectedBucketSpec.model_validate(RAW_SPEC)
    failed = Reconciler(aws).reconcile(spec)
    assert failed.outcome in ("Failed", "Blocked")
    assert steady_state_of(failed, spec, Origin("u", "d", NOW)) is None


def test_spec_digest_ignores_key_order() -> None:
    reordered = dict(reversed(list(RAW_SPEC.items())))
    assert spec_digest(reordered) == spec_digest(RAW_SPEC)
    assert spec_digest({**RAW_SPEC, "bucketName": "other"}) != spec_digest(RAW_SPEC)


STATES = st.fixed_dictionaries(
    {kind: st.sampled_from(["True", "False", "Unknown"]) for kind in ("Ready", "Synced", "Verified")}
)


@given(st.lists(st.tuples(st.integers(0, 5), st.one_of(st.none(), STATES)), max_size=40))
def test_metrics_managed_buckets_gauge_equals_a_recount(steps: list[tuple[int, dict[str, str] | None]]) -> None:
    metrics = Metrics()
    truth: dict[str, dict[str, str]] = {}
    for key, conditions in steps:
        if conditions is None:
            metrics.forget(f"o{key}")
            truth.pop(f"o{key}", None)
        else:
            metrics.set_state(f"o{key}", conditions)
            truth[f"o{key}"] = conditions
    expected = Counter((k, s) for c in truth.values() for k, s in c.items())
    for kind in ("Ready", "Synced", "Verified"):
        for status in ("True", "False", "Unknown"):
            value = metrics.registry.get_sample_value(
                "bucketwarden_managed_buckets", {"condition": kind, "status": status}
            )
            assert value == expected[(kind, status)]


def test_quiet_tick_with_the_status_remembered_answers_a_due_refresh_with_one_get() -> None:
    aws, _, state = converged()
    remembered = dataclasses.replace(state, status={"lastSyncTime": "2026-12-01T11:50:00Z"})
    tick = quiet_tick(aws, remembered, uid="u1", digest=spec_digest(RAW_SPEC), now=NOW + timedelta(seconds=600))
    assert tick is not None and tick.refresh
    assert tick.aws_calls == {"GetBucketPolicy": 1}
    early = quiet_tick(aws, remembered, uid="u1", digest=spec_digest(RAW_SPEC), now=NOW)
    assert early is not None and not early.refresh


class _Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class _Process:
    """One operator process's handler state (metrics, steady states) over a shared bucket and API object."""

    def __init__(self, aws: InMemoryAws, clock: _Clock, status: dict[str, Any], spec: dict[str, Any]) -> None:
        from bucketwarden.k8s import OperatorSettings, Runtime
        from bucketwarden.k8s._claims import claim_entry
        from bucketwarden.spec import TenantPolicySpec
        from bucketwarden.tenancy import Tenancy

        self.aws, self.status, self.spec = aws, status, spec
        self.metrics = Metrics()
        self.runtime = Runtime(OperatorSettings(metrics_port=0, health_port=0), Reconciler(aws), self.metrics, clock)
        self.meta = {"generation": 1, "uid": "u1", "creationTimestamp": "2026-12-01T00:00:00Z"}
        # The claims as the operator reads them: a view of kopf's fleet index, which must never be walked per tick.
        entries = {(CLAIMS, b): [e] for b, e in (claim_entry("ns", "pb", self.meta, spec) or {}).items()}
        self.claims = IndexView(LookupOnly(entries), CLAIMS)
        self.tenancy = Tenancy({"all": TenantPolicySpec(namespaces=["*"], buckets=["*"])})

    def tick(self) -> dict[str, Any]:
        """One resync tick through the handler code; the status it wrote (applied to the shared status)."""
        import kopf

        from bucketwarden.k8s._handlers import resync_object

        patch = kopf.Patch()
        resync_object(
            self.runtime,
            index=self.claims,
            tenancy=self.tenancy,
            body=kopf.Body({}),
            spec=self.spec,
            meta=self.meta,
            status=dict(self.status),
            namespace="ns",
            name="pb",
            patch=patch,
        )
        written = dict(patch.get("status") or {})
        self.status.update(written)
        return written

    def paths(self) -> dict[str, float]:
        text = self.metrics.registry.get_sample_value
        return {p: text("bucketwarden_resync_ticks_total", {"path": p}) or 0.0 for p in ("quiet", "full")}


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> InMemoryAws:
    import kopf

    monkeypatch.setattr(kopf, "event", lambda *a, **k: None)
    aws = InMemoryAws()
    aws.create_role("backup", path="/service-role/")
    aws.create_bucket("quiet-bucket")
    return aws


def test_resync_rewrites_the_remembered_status_when_only_last_sync_time_is_due(bucket: InMemoryAws) -> None:
    """Through the handler code: write, then quiet ticks that write nothing, then a due refresh that writes the
    same status with a new lastSyncTime and no reconcile; an edit afterwards still takes the full path."""
    clock, status = _Clock(), dict[str, Any]()
    process = _Process(bucket, clock, status, RAW_SPEC)
    assert process.tick()  # the write: remembers the steady state, the policy known by meaning
    settled = dict(status)
    for _ in range(3):
        clock.now += timedelta(seconds=60)
        assert process.tick() == {}
    assert process.paths() == {"quiet": 3.0, "full": 1.0}
    clock.now += timedelta(seconds=600)
    refreshed = process.tick()
    assert process.paths() == {"quiet": 4.0, "full": 1.0}
    assert refreshed["lastSyncTime"] != settled["lastSyncTime"]
    assert {k: v for k, v in refreshed.items() if k != "lastSyncTime"} == {
        k: v for k, v in settled.items() if k != "lastSyncTime"
    }
    clock.now += timedelta(seconds=60)
    assert process.tick() == {}  # the refresh moved the next due time
    bucket.put_foreign("quiet-bucket", None)
    clock.now += timedelta(seconds=60)
    process.tick()
    assert process.paths()["full"] == 2.0
    assert "BucketWardenIpRestriction" in (bucket.policy_of("quiet-bucket") or "")


def test_a_restarted_process_answers_from_the_status_with_one_get_and_writes_nothing(bucket: InMemoryAws) -> None:
    clock, status = _Clock(), dict[str, Any]()
    _Process(bucket, clock, status, RAW_SPEC).tick()  # the old process wrote and recorded it
    clock.now += timedelta(seconds=120)
    restarted = _Process(bucket, clock, status, RAW_SPEC)
    with bucket.count_calls() as calls:
        assert restarted.tick() == {}
    assert restarted.paths() == {"quiet": 1.0, "full": 0.0}
    assert calls.get("GetBucketPolicy") == 1 and calls.get("PutBucketPolicy", 0) == 0
    assert len(restarted.runtime.warmup) == 0
    with bucket.count_calls() as calls:
        assert restarted.tick() == {}  # learned the text: compared by digest now
    assert calls == {"GetBucketPolicy": 1}


def _drop_role_ids(status: dict[str, Any]) -> None:
    status["exemptPrincipals"] = [{**p, "roleId": None} for p in status["exemptPrincipals"]]


def _not_ready(status: dict[str, Any]) -> None:
    status["conditions"] = [{**c, "status": "False"} if c["type"] == "Ready" else c for c in status["conditions"]]


@pytest.mark.parametrize(
    "edit",
    [
        lambda status, aws, spec: status.update(observedGeneration=0),
        lambda status, aws, spec: _not_ready(status),
        lambda status, aws, spec: _drop_role_ids(status),
        lambda status, aws, spec: status.pop("policyHash"),
        lambda status, aws, spec: aws.put_foreign(
            "quiet-bucket", (aws.policy_of("quiet-bucket") or "").replace("192.0.2.0", "10.0.0.0")
        ),
        lambda status, aws, spec: spec.update(allowedSourcesFrom=[{"name": "office"}]),
        lambda status, aws, spec: spec.update(managementPolicy="Observe"),
    ],
    ids=[
        "other-generation",
        "not-ready",
        "role-id-unknown",
        "no-policy-hash",
        "policy-edited-while-down",
        "allow-list-refs",
        "observe-mode",
    ],
)
def test_a_restarted_process_reconciles_fully_what_the_status_cannot_vouch_for(
    bucket: InMemoryAws, edit: Callable[[dict[str, Any], InMemoryAws, dict[str, Any]], Any]
) -> None:
    clock, status = _Clock(), dict[str, Any]()
    spec = dict(RAW_SPEC)
    _Process(bucket, clock, status, spec).tick()
    edit(status, bucket, spec)
    restarted = _Process(bucket, clock, status, spec)
    restarted.tick()
    assert restarted.paths() == {"quiet": 0.0, "full": 1.0}


def test_a_status_patch_that_never_landed_is_written_again_by_the_next_tick(bucket: InMemoryAws) -> None:
    clock, status = _Clock(), dict[str, Any]()
    process = _Process(bucket, clock, status, RAW_SPEC)
    written = process.tick()
    status.clear()  # kopf gave up on the patch: the API shows no status
    clock.now += timedelta(seconds=60)
    again = process.tick()
    assert process.paths() == {"quiet": 0.0, "full": 2.0}
    assert again["observedGeneration"] == written["observedGeneration"] == 1
