"""Lockout guards: before every write, the policy is verified by evaluating concrete requests, independently of
the renderer. A policy that would deny the operator itself (exemptOperator on) or an exempt role by our own
statement, or that shuts out allowed VPC endpoint traffic, is never written, whatever produced it.

The renderer is correct; these tests break it on purpose (monkeypatching the reconciler's render_statement) to
show that the verifier, not the renderer, is the last line before PutBucketPolicy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import bucketwarden.reconciler as reconciler_module
from bucketwarden.errors import AccessDeniedError
from bucketwarden.policy import OPERATOR_NOT_EXEMPT, PolicyDocument, Statement, render_statement
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.reconciler import Reconciler
from bucketwarden.spec import ProtectedBucketSpec
from tests.reliability._kit import ROLE, RecordingAws, foreign_statements, make_spec, policy_text
from tests.shared import REPO_ROOT
from tests.unit.test_crd import admit, pydantic_errors

BUCKET = "bw-lockout"

Render = Callable[..., Statement]


def without_roles(spec: ProtectedBucketSpec, roles: Any, operator: Any, **kwargs: Any) -> Statement:
    return render_statement(spec, [], operator, **kwargs)


def without_operator(spec: ProtectedBucketSpec, roles: Any, operator: Any, **kwargs: Any) -> Statement:
    return render_statement(spec, roles, None, **kwargs)


def without_endpoints(spec: ProtectedBucketSpec, roles: Any, operator: Any, **kwargs: Any) -> Statement:
    broken = spec.model_copy(update={"allowed_vpc_endpoints": [], "allowed_vpcs": []})
    return render_statement(broken, roles, operator, **kwargs)


@pytest.fixture
def aws() -> RecordingAws:
    fake = RecordingAws()
    fake.create_role(ROLE, path="/service-role/")
    fake.create_bucket(BUCKET, policy=policy_text(*foreign_statements(BUCKET)))
    return fake


@pytest.mark.parametrize("exemption_key", ["userId", "principalArn"])
@pytest.mark.parametrize(
    ("broken_render", "denied"),
    [
        pytest.param(without_roles, "role-AWSBackupDefaultServiceRole-get-object", id="role-not-exempted"),
        pytest.param(without_operator, "operator-PutBucketPolicy", id="operator-not-exempted"),
    ],
)
def test_verifier_refuses_a_policy_that_denies_an_exempt_principal(
    aws: RecordingAws, monkeypatch: pytest.MonkeyPatch, broken_render: Render, denied: str, exemption_key: str
) -> None:
    monkeypatch.setattr(reconciler_module, "render_statement", broken_render)
    before = aws.policy_of(BUCKET)

    result = Reconciler(aws).reconcile(make_spec(BUCKET, exemptionKey=exemption_key))

    assert result.outcome == "Blocked"
    assert result.verification is not None
    assert denied in {r.scenario.name for r in result.verification.blocking_failures}
    ready, verified = result.condition("Ready"), result.condition("Verified")
    assert ready is not None and (ready.status, ready.reason) == ("False", "VerificationFailed")
    assert verified is not None and verified.status == "False"
    assert "refusing to write" in ready.message and denied in ready.message
    assert aws.policy_of(BUCKET) == before
    assert aws.calls("PutBucketPolicy") == 0


def test_spec_with_vpc_endpoints_only_is_verified(aws: RecordingAws) -> None:
    spec = make_spec(BUCKET, allowedSourceIps=[], allowedVpcEndpoints=["vpce-0a1b2c3d4e5f60718"])

    result = Reconciler(aws).reconcile(spec)

    assert result.ready and result.applied
    assert result.verification is not None
    verdicts = {r.scenario.name: (r.scenario.expect, r.passed) for r in result.verification.results}
    assert verdicts["vpce-vpce-0a1b2c3d4e5f60718"] == ("not denied", True)
    assert verdicts["vpce-unlisted"] == ("denied", True)
    assert verdicts["operator-PutBucketPolicy"] == ("not denied", True)
    assert verdicts["outside-ipv4-get-object"] == ("denied", True)  # from the internet, no endpoint: denied
    assert not any(name.startswith("inside-") for name in verdicts)  # no CIDR allowed, so no address gets in


def test_verifier_refuses_a_vpc_endpoints_only_policy_that_shuts_the_endpoint_out(
    aws: RecordingAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconciler_module, "render_statement", without_endpoints)
    spec = make_spec(BUCKET, allowedSourceIps=[], allowedVpcEndpoints=["vpce-0a1b2c3d4e5f60718"])

    result = Reconciler(aws).reconcile(spec)

    assert result.outcome == "Blocked"
    assert result.verification is not None
    assert "vpce-vpce-0a1b2c3d4e5f60718" in {r.scenario.name for r in result.verification.blocking_failures}
    assert aws.calls("PutBucketPolicy") == 0


def test_turning_the_operator_exemption_off_needs_acknowledgement() -> None:
    doc: dict[str, Any] = {
        "apiVersion": "bucketwarden.io/v1alpha1",
        "kind": "ProtectedBucket",
        "metadata": {"name": "x"},
        "spec": {"bucketName": BUCKET, "allowedSourceIps": ["192.0.2.0/24"], "exemptOperator": False},
    }
    assert any("acknowledgeLockoutRisk" in e for e in admit(doc).cel_errors)
    assert any("acknowledgeLockoutRisk" in e for e in pydantic_errors(doc))
    doc["spec"]["acknowledgeLockoutRisk"] = True
    assert admit(doc).errors == [] and pydantic_errors(doc) == []


def test_operator_exemption_off_is_written_without_it_and_warned_about(aws: RecordingAws) -> None:
    spec = make_spec(BUCKET, exemptOperator=False, acknowledgeLockoutRisk=True)

    result = Reconciler(aws).reconcile(spec)

    assert result.ready
    [finding] = [f for f in result.findings if f.code == OPERATOR_NOT_EXEMPT]
    assert finding.severity == "Warning" and "root user can delete the bucket policy" in finding.message
    ours = PolicyDocument.parse(aws.policy_of(BUCKET) or "").find(spec.statement_sid)[0]
    assert aws.caller.user_id not in str(ours.to_json())
    assert result.verification is not None
    assert not any(r.scenario.kind == "operator" for r in result.verification.results)


def test_the_recovery_path_is_named_wherever_a_lockout_shows() -> None:
    """AccessDenied on the policy (the operator locked out) says how to recover; so do the docs."""
    assert "root user can always delete a bucket policy" in AccessDeniedError.HINT
    doc = (REPO_ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert "s3api delete-bucket-policy" in doc and "root user" in doc


def test_our_rendered_statement_passes_its_own_verification_for_many_identities() -> None:
    """The other direction: the real renderer never trips the guard (roles with paths, an assumed-role operator)."""
    from bucketwarden.policy import verify_policy

    for path in ("/", "/service-role/", "/a/b/"):
        role = ResolvedRole(ref=ROLE, name=ROLE, arn=f"arn:aws:iam::123456789012:role{path}{ROLE}", role_id="AROAX1")
        operator = CallerIdentity(
            account="123456789012",
            arn="arn:aws:sts::123456789012:assumed-role/bucketwarden/bucketwarden",
            user_id="AROAOPERATOR1:bucketwarden",
        )
        for key in ("userId", "principalArn"):
            spec = make_spec(BUCKET, exemptionKey=key, adoptSids=[])
            policy = PolicyDocument((render_statement(spec, [role], operator),))
            assert verify_policy(spec, [role], operator, policy).blocking_failures == []
