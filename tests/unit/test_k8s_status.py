"""Status, events, settings and metrics of the operator, without Kubernetes: pure functions of a result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import generate_latest

from bucketwarden.errors import AccessDeniedError
from bucketwarden.k8s import Metrics, OperatorSettings
from bucketwarden.k8s._events import events_for
from bucketwarden.k8s._status import blocked_result, build_status, read_status
from bucketwarden.reconciler import ReconcileResult, RoleIdChange
from bucketwarden.spec import Condition, ConditionStatus, ExemptPrincipal, ProtectedBucketStatus

T0 = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def ok_result(**overrides: object) -> ReconcileResult:
    result = ReconcileResult(
        "b",
        "InSync",
        [
            Condition(type="Ready", status="True", reason="Protected", message="ok"),
            Condition(type="Synced", status="True", reason="InSync"),
            Condition(type="Verified", status="True", reason="Verified"),
        ],
        exempt_principals=[
            ExemptPrincipal(kind="Role", name="R", arn="arn:aws:iam::1:role/R", role_id="AROA1", pattern="AROA1:*")
        ],
        policy_hash="sha256:1",
        statement_hash="sha256:s",
    )
    for key, value in overrides.items():
        setattr(result, key, value)
    return result


def status_after(result: ReconcileResult, previous: ProtectedBucketStatus, now: datetime) -> ProtectedBucketStatus:
    update = build_status(result, previous, generation=3, now=now, refresh_seconds=600)
    return read_status(update.status)


def test_build_status_first_write_has_everything() -> None:
    update = build_status(ok_result(), ProtectedBucketStatus(), generation=3, now=T0, refresh_seconds=600)
    assert update.due and update.changed
    s = update.status
    assert s["observedGeneration"] == 3
    assert [c["type"] for c in s["conditions"]] == ["Ready", "Synced", "Verified"]
    assert all(
        c["lastTransitionTime"] == "2026-11-29T12:00:00Z" and c["observedGeneration"] == 3 for c in s["conditions"]
    )
    assert s["exemptCount"] == 1
    assert s["policyHash"] == "sha256:1"
    assert s["lastSyncTime"] == "2026-11-29T12:00:00Z"


def test_build_status_unchanged_result_is_not_written_again() -> None:
    first = status_after(ok_result(), ProtectedBucketStatus(), T0)
    update = build_status(ok_result(), first, generation=3, now=T0 + timedelta(seconds=60), refresh_seconds=600)
    assert not update.changed
    assert not update.due  # no churn: Argo CD would re-reconcile the Application on every status write


def test_build_status_last_sync_time_refreshes_at_a_bounded_rate() -> None:
    first = status_after(ok_result(), ProtectedBucketStatus(), T0)
    later = build_status(ok_result(), first, generation=3, now=T0 + timedelta(seconds=601), refresh_seconds=600)
    assert later.due and not later.changed
    assert later.status["lastSyncTime"] == "2026-11-29T12:10:01Z"


def test_build_status_keeps_transition_time_while_status_stays() -> None:
    first = status_after(ok_result(), ProtectedBucketStatus(), T0)
    failing = ok_result(conditions=[Condition(type="Ready", status="False", reason="AwsUnavailable")])
    second = status_after(failing, first, T0 + timedelta(seconds=60))
    ready = next(c for c in second.conditions if c.type == "Ready")
    assert ready.last_transition_time == "2026-11-29T12:01:00Z"
    third = status_after(failing, second, T0 + timedelta(seconds=120))
    assert next(c for c in third.conditions if c.type == "Ready").last_transition_time == "2026-11-29T12:01:00Z"


def test_build_status_counts_drift_corrections() -> None:
    first = status_after(ok_result(), ProtectedBucketStatus(), T0)
    second = status_after(ok_result(drift_corrected=True, applied=True, action="put"), first, T0)
    assert second.drift_corrections == 1


def test_build_status_failure_keeps_last_known_exemptions_and_hash() -> None:
    first = status_after(ok_result(), ProtectedBucketStatus(), T0)
    failed = blocked_result("b", "Conflict", "taken")
    second = status_after(failed, first, T0)
    assert second.policy_hash == "sha256:1"
    assert second.exempt_principals == first.exempt_principals


@pytest.mark.parametrize(
    ("result", "previous_reason", "expected"),
    [
        pytest.param(ok_result(applied=True, action="put"), "Protected", [("Normal", "PolicyUpdated")], id="updated"),
        pytest.param(
            ok_result(applied=True, action="put", drift_corrected=True),
            "Protected",
            [("Normal", "DriftCorrected")],
            id="drift",
        ),
        pytest.param(
            ok_result(role_id_changes=[RoleIdChange("R", "AROA1", "AROA2")], applied=True, action="put"),
            "Protected",
            [("Normal", "RoleIdChanged"), ("Normal", "PolicyUpdated")],
            id="role-id-changed",
        ),
        pytest.param(blocked_result("b", "Conflict", "taken"), "Protected", [("Warning", "Conflict")], id="conflict"),
        pytest.param(blocked_result("b", "Conflict", "taken"), "Conflict", [], id="conflict-not-repeated"),
        pytest.param(
            ok_result(
                conditions=[
                    Condition(type="Ready", status="False", reason="VerificationFailed", message="m"),
                    Condition(type="Verified", status="False", reason="VerificationFailed", message="m"),
                ]
            ),
            "Protected",
            [("Warning", "VerificationFailed")],
            id="verification-failed",
        ),
        pytest.param(
            ok_result(
                conditions=[Condition(type="Ready", status="False", reason="AccessDenied", message="m")],
                error=AccessDeniedError("denied"),
            ),
            "Protected",
            [("Warning", "AccessDenied")],
            id="access-denied",
        ),
        pytest.param(ok_result(), "Protected", [], id="steady-state-is-silent"),
    ],
)
def test_events_for_transitions(result: ReconcileResult, previous_reason: str, expected: list[tuple[str, str]]) -> None:
    previous = ProtectedBucketStatus(
        conditions=[
            Condition(
                type="Ready", status="True" if previous_reason == "Protected" else "False", reason=previous_reason
            )
        ]
    )
    assert [(e.type, e.reason) for e in events_for(result, previous)] == expected


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUCKETWARDEN_NAMESPACES", "team-a, team-b")
    monkeypatch.setenv("BUCKETWARDEN_RESYNC_INTERVAL_SECONDS", "30")
    s = OperatorSettings()
    assert s.namespaces == ["team-a", "team-b"]
    assert s.resync_interval_seconds == 30
    assert s.jitter_seconds == 3


def test_settings_have_no_bucket_claims_any_more(monkeypatch: pytest.MonkeyPatch) -> None:
    # Replaced by TenantPolicy: an old environment variable must not silently grant or restrict anything.
    monkeypatch.setenv("BUCKETWARDEN_BUCKET_CLAIMS", '{"team-a": ["*"]}')
    assert "bucket_claims" not in OperatorSettings.model_fields
    assert not hasattr(OperatorSettings(), "may_claim")


def test_metrics_count_results_and_buckets_by_condition() -> None:
    metrics = Metrics()
    metrics.observe("ns/a", ok_result(drift_corrected=True))
    metrics.observe("ns/b", blocked_result("b2", "Conflict", "taken"))
    metrics.count_aws_call("GetBucketPolicy", "ok")
    text = generate_latest(metrics.registry).decode()
    assert 'bucketwarden_reconciles_total{result="InSync"} 1.0' in text
    assert "bucketwarden_drift_corrections_total 1.0" in text
    assert 'bucketwarden_managed_buckets{condition="Ready",status="True"} 1.0' in text
    assert 'bucketwarden_managed_buckets{condition="Ready",status="False"} 1.0' in text
    assert 'bucketwarden_aws_calls_total{api="GetBucketPolicy",outcome="ok"} 1.0' in text
    metrics.forget("ns/b")
    assert (
        'bucketwarden_managed_buckets{condition="Ready",status="False"} 0.0'
        in generate_latest(metrics.registry).decode()
    )


def test_operator_kwargs_standalone_unless_peering() -> None:
    from bucketwarden.k8s import operator_kwargs

    alone = operator_kwargs(OperatorSettings(health_port=0))
    assert alone == {"standalone": True, "clusterwide": True}  # a peering name would make kopf's peering mandatory

    namespaced = operator_kwargs(OperatorSettings(namespaces=["a", "b"], health_port=8081))
    assert namespaced["namespaces"] == ["a", "b"]
    assert namespaced["liveness_endpoint"] == "http://0.0.0.0:8081/healthz"

    peered = [operator_kwargs(OperatorSettings(peering=True)) for _ in range(20)]
    assert all(k["standalone"] is False and k["peering_name"] == "bucketwarden" for k in peered)
    # Replicas of one Deployment share their env; kopf pauses operators that see a peer of equal priority.
    assert len({k["priority"] for k in peered}) > 1
    assert operator_kwargs(OperatorSettings(peering=True, priority=7))["priority"] == 7


def _inconclusive() -> ReconcileResult:
    return ok_result(
        conditions=[
            Condition(type="Ready", status="True", reason="Protected", message="m"),
            Condition(
                type="Verified", status="Unknown", reason="Inconclusive", message="depends on aws:principalorgid"
            ),
        ]
    )


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        pytest.param(("True", "Verified"), [("Warning", "Inconclusive")], id="verified-to-inconclusive"),
        pytest.param(("Unknown", "NotChecked"), [("Warning", "Inconclusive")], id="not-checked-to-inconclusive"),
        pytest.param(("Unknown", "Inconclusive"), [], id="inconclusive-not-repeated"),
    ],
)
def test_events_for_inconclusive_verification_is_posted_once(
    before: tuple[ConditionStatus, str], expected: list[tuple[str, str]]
) -> None:
    previous = ProtectedBucketStatus(
        conditions=[
            Condition(type="Ready", status="True", reason="Protected"),
            Condition(type="Verified", status=before[0], reason=before[1]),
        ]
    )
    events = events_for(_inconclusive(), previous)
    assert [(e.type, e.reason) for e in events] == expected
    assert all("aws:principalorgid" in e.message for e in events)
