"""The pure half of the audit: which Denies bucketwarden may adopt, the verdict mapping, manifests, reports."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bucketwarden.audit import (
    AuditContext,
    BucketFacts,
    Verdict,
    classify,
    is_supersedable,
    manifest_for,
    verdict_for,
    write_html,
    write_json,
)
from bucketwarden.policy import Statement, verify_policy
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.spec import ProtectedBucket

BUCKET = "unit-bucket"
ARNS = [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]
ROLE = ResolvedRole(
    ref="AWSBackupDefaultServiceRole",
    name="AWSBackupDefaultServiceRole",
    arn="arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole",
    role_id="AROAEXAMPLEBACKUP0001",
)
OPERATOR = CallerIdentity("123456789012", "arn:aws:sts::123456789012:assumed-role/op/s", "AROAEXAMPLEOPERATOR01:s")
CTX = AuditContext(roles=(ROLE,), operator=OPERATOR)


def deny(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Sid": "Office",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": ARNS,
        "Condition": {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24"]}},
    }
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


@pytest.mark.parametrize(
    ("statement", "supersedable"),
    [
        (deny(), True),
        (deny(Action=["s3:GetObject", "s3:PutObject"]), True),
        (deny(Resource=ARNS[1]), True),
        (deny(Principal={"AWS": "*"}), True),
        (
            deny(
                Condition={
                    "NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24"]},
                    "StringNotEquals": {"aws:SourceVpce": "vpce-0123456789abcdef0"},
                    "StringNotLike": {"aws:userId": "AROAEXAMPLE:*"},
                    "ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/admin"},
                }
            ),
            True,
        ),
        (deny(Effect="Allow"), False),
        (deny(Principal={"AWS": "arn:aws:iam::123456789012:root"}), False),
        (deny(Action="*"), False),
        (deny(Action=None, NotAction="s3:GetObject"), False),
        (deny(Resource="*"), False),
        (deny(Resource="arn:aws:s3:::other-bucket/*"), False),
        (deny(Condition={"StringNotEquals": {"aws:SourceVpce": "vpce-0123456789abcdef0"}}), False),
        (
            deny(
                Condition={"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}, "Bool": {"aws:SecureTransport": "false"}}
            ),
            False,
        ),
        (
            deny(Condition={"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}, "StringEquals": {"aws:userId": "x"}}),
            False,
        ),
    ],
    ids=[
        "canonical",
        "action-subset",
        "objects-only",
        "principal-aws-star",
        "network-and-exemptions",
        "allow",
        "named-principal",
        "all-services",
        "not-action",
        "all-resources",
        "other-bucket",
        "no-source-ip",
        "extra-condition",
        "positive-userid",
    ],
)
def test_is_supersedable_only_for_pure_network_denies_on_this_bucket(
    statement: dict[str, Any], supersedable: bool
) -> None:
    assert is_supersedable(Statement.parse(statement), BUCKET) is supersedable


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.mark.parametrize(
    ("text", "backup", "operator"),
    [
        (None, Verdict.PASS, Verdict.PASS),
        (policy(deny()), Verdict.FAIL, Verdict.FAIL),
        (
            policy(deny(Condition={**deny()["Condition"], "StringNotLike": {"aws:userId": "AROAEXAMPLEBACKUP0001:*"}})),
            Verdict.PASS,
            Verdict.FAIL,
        ),
        (
            policy(
                deny(
                    Condition={
                        **deny()["Condition"],
                        "StringNotLike": {"aws:userId": ["AROAEXAMPLEBACKUP0001:*", "AROAEXAMPLEOPERATOR01:*"]},
                    }
                )
            ),
            Verdict.PASS,
            Verdict.PASS,
        ),
        (policy(deny(Condition={"StringMatchesRegex": {"aws:userId": "x"}})), Verdict.UNKNOWN, Verdict.UNKNOWN),
        (policy(deny(Condition={"NotIpAddress": {"aws:SourceIp": "not-an-ip"}})), Verdict.UNKNOWN, Verdict.UNKNOWN),
    ],
    ids=["no-policy", "ip-deny", "role-exempt", "both-exempt", "unjudgeable", "not-a-cidr"],
)
def test_classify_backup_and_operator_verdicts(text: str | None, backup: Verdict, operator: Verdict) -> None:
    result = classify(BucketFacts(BUCKET, "us-east-1", text, "Enabled"), CTX)
    assert (result.backup, result.operator) == (backup, operator)


def test_classify_unreadable_policy_is_unknown_and_needs_no_manifest() -> None:
    result = classify(BucketFacts(BUCKET, None, None, "Enabled", policy_error="GetBucketPolicy was denied"), CTX)
    assert result.backup is Verdict.UNKNOWN and result.has_policy is None
    assert result.codes == ("PolicyUnreadable",)
    assert manifest_for(result) is None


def test_verdict_for_fail_names_the_request_and_the_statement() -> None:
    from bucketwarden.audit import verification_spec

    verification = verify_policy(verification_spec(BUCKET, None, "X"), [ROLE], OPERATOR, None)
    assert verdict_for(verification, "backup") == (Verdict.PASS, None)
    assert verdict_for(verification, "restore") == (Verdict.PASS, None)
    assert verdict_for(None, "backup") == (Verdict.UNKNOWN, None)
    assert verdict_for(verification, "operator") == (Verdict.PASS, None)
    failing = classify(BucketFacts(BUCKET, None, policy(deny()), "Enabled"), CTX)
    assert failing.counterexample is not None
    assert failing.counterexample.endswith("is denied by Office")


def test_manifest_for_adopts_the_supersedable_deny_and_validates() -> None:
    result = classify(BucketFacts(BUCKET, "eu-west-1", policy(deny()), None), CTX)
    doc = manifest_for(result, namespace="team-a")
    assert doc is not None
    spec = ProtectedBucket.model_validate(doc).spec
    assert spec.adopt_sids == ["Office"]
    assert spec.allowed_source_ips == ["192.0.2.0/24"]
    assert spec.region == "eu-west-1"
    assert [r.name for r in spec.exempt_roles] == ["AWSBackupDefaultServiceRole"]
    assert spec.management_policy.value == "Observe"
    assert doc["metadata"] == {"name": BUCKET, "namespace": "team-a"}


def test_reports_stream_every_bucket_and_count_by_status() -> None:
    audits = [
        classify(BucketFacts(f"b-{i}", None, policy(deny(Resource="*")) if i % 2 else None, "Enabled"), CTX)
        for i in range(6)
    ]
    buf = io.StringIO()
    summary = write_json(iter(audits), buf)
    assert summary.blocking == 3
    assert json.loads(buf.getvalue())["summary"]["byStatus"]["BlocksBackup"] == 3
    page = io.StringIO()
    write_html(iter(audits), page)
    assert page.getvalue().count('<tr data-status="BlocksBackup">') == 3
    assert '<div class="count" style="background:#c62828" data-status="BlocksBackup"><b>3</b>' in page.getvalue()


def test_bounded_map_keeps_at_most_the_window_in_flight_and_keeps_order() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from bucketwarden.audit._scan import bounded_map

    pulled: list[int] = []

    def items() -> Any:
        for i in range(50):
            pulled.append(i)
            yield i

    with ThreadPoolExecutor(max_workers=4) as pool:
        stream = bounded_map(pool, lambda x: x * 2, items(), 8)
        first = next(stream)
        assert (first, len(pulled)) == (0, 8)  # nothing is read ahead of the window
        assert [first, *stream] == [2 * i for i in range(50)]


_OPERATORS = ["NotIpAddress", "IpAddress", "StringNotLike", "StringEquals", "ArnNotLike", "Bool", "StringMatchesRegex"]
_KEYS = ["aws:SourceIp", "aws:userId", "aws:PrincipalArn", "aws:SourceVpce", "aws:SecureTransport"]
_VALUES = ["192.0.2.0/24", "not-an-ip", "10.0.0.0/33", "::/0", "0.0.0.0/0", "AROAEXAMPLEBACKUP0001:*", "*", "true", ""]


@st.composite
def statements(draw: st.DrawFn) -> dict[str, Any]:
    condition = draw(
        st.dictionaries(
            st.sampled_from(_OPERATORS),
            st.dictionaries(
                st.sampled_from(_KEYS), st.lists(st.sampled_from(_VALUES), min_size=1, max_size=3), min_size=1
            ),
            max_size=3,
        )
    )
    statement: dict[str, Any] = {
        "Effect": draw(st.sampled_from(["Deny", "Allow"])),
        "Principal": draw(st.sampled_from(["*", {"AWS": "*"}, {"AWS": "arn:aws:iam::123456789012:root"}])),
        "Action": draw(st.sampled_from(["s3:*", "s3:GetObject", "*", ["s3:ListBucket", "s3:GetObject"]])),
        "Resource": draw(st.sampled_from([ARNS, ARNS[1], "*", "arn:aws:s3:::other/*"])),
    }
    if condition:
        statement["Condition"] = condition
    if draw(st.booleans()):
        statement["Sid"] = draw(st.sampled_from(["Office", "BucketWardenIpRestriction", "Other"]))
    return statement


@settings(max_examples=150, deadline=None)
@given(st.lists(statements(), min_size=1, max_size=4))
def test_classify_judges_any_policy_without_raising(policy_statements: list[dict[str, Any]]) -> None:
    result = classify(BucketFacts(BUCKET, None, policy(*policy_statements), "Enabled"), CTX)
    assert result.backup in set(Verdict)
    # A Fail always names the statement that denies, and Unknown always says why.
    if result.backup is Verdict.FAIL:
        assert "DeniesBackupRole" in result.codes and result.counterexample
    if result.backup is Verdict.UNKNOWN:
        assert {"PolicyUnreadable", "PolicyNotJudgeable", "BackupInconclusive"} & set(result.codes)


@pytest.mark.parametrize(
    ("statement", "backup", "restore", "prover"),
    [
        pytest.param(deny(), Verdict.FAIL, Verdict.FAIL, "prover backup: counterexample", id="ip-deny-blocks-both"),
        pytest.param(
            deny(Action="s3:PutObject", Condition=None),
            Verdict.PASS,
            Verdict.FAIL,
            "prover backup: proved",
            id="restore-only-deny",
        ),
    ],
)
def test_classify_reports_backup_and_restore_apart_and_proves_on_request(
    statement: dict[str, Any], backup: Verdict, restore: Verdict, prover: str
) -> None:
    pytest.importorskip("z3")
    statement = {k: v for k, v in statement.items() if v is not None}
    result = classify(BucketFacts(BUCKET, None, policy(statement), "Enabled"), replace(CTX, prove=True))
    assert (result.backup, result.restore) == (backup, restore)
    assert result.prover is not None and prover in result.prover
    assert ("DeniesRestore" in result.codes) is (restore is Verdict.FAIL)
    assert result.to_json()["restore"] == restore.value
