"""Lint: findings about the spec's allow lists and about the documents we read and would write."""

from __future__ import annotations

from typing import Any

import pytest

from bucketwarden.policy import (
    ALLOWS_ALL_ADDRESSES,
    DUPLICATE_SIDS,
    HOST_BITS_NORMALISED,
    IPV4_ONLY,
    MAX_POLICY_BYTES,
    OPERATOR_NOT_EXEMPT,
    OWNED_SID_FOREIGN_CONTENT,
    POLICY_TOO_LARGE,
    PRIVATE_SOURCE_IP,
    RANGES_COLLAPSED,
    VERSION_KEPT,
    VERSION_UPGRADED,
    PolicyDocument,
    Request,
    evaluate,
    has_errors,
    lint_policy,
    lint_spec,
    merge_policy,
    render_statement,
)
from bucketwarden.principals import ResolvedRole
from bucketwarden.spec import Finding, ProtectedBucketSpec

BUCKET = "awsbackup-test-001"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
ROLE = ResolvedRole(
    ref="AWSBackupDefaultServiceRole",
    name="AWSBackupDefaultServiceRole",
    arn="arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole",
    role_id="AROASAMPLESAMPLESAMPL",
)
DUAL_STACK = ["192.0.2.0/24", "2001:db8::/32"]
OURS = "BucketWardenIpRestriction"
ADOPTED = "SourceIPRestriction001"


def spec(**fields: Any) -> ProtectedBucketSpec:
    base: dict[str, Any] = {"bucketName": BUCKET, "allowedSourceIps": DUAL_STACK}
    return ProtectedBucketSpec.model_validate({**base, **fields})


def codes(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.severity, f.code) for f in findings]


def statement(sid: str | None, **fields: Any) -> dict[str, Any]:
    stmt: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "s3:GetObject"}
    stmt["Resource"] = f"{BUCKET_ARN}/*"
    if sid is not None:
        stmt["Sid"] = sid
    return {**stmt, **fields}


def document(*statements: dict[str, Any], version: str | None = "2012-10-17") -> PolicyDocument:
    obj: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        obj["Version"] = version
    return PolicyDocument.from_obj(obj)


# --- lint_spec ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, [], id="clean-dual-stack"),
        pytest.param({"allowedSourceIps": [], "allowedVpcEndpoints": ["vpce-0123456789abcdef0"]}, [], id="vpc-only"),
        pytest.param(
            {"allowedSourceIps": ["10.0.0.0/8", "2001:db8::/32"]},
            [("Error", PRIVATE_SOURCE_IP)],
            id="fact13-private-10",
        ),
        pytest.param(
            {"allowedSourceIps": ["172.16.5.0/24", "192.168.1.0/24", "2001:db8::/32"]},
            [("Error", PRIVATE_SOURCE_IP), ("Error", PRIVATE_SOURCE_IP)],
            id="fact13-private-172-and-192",
        ),
        pytest.param(
            {"allowedSourceIps": ["fd00::/8", "192.0.2.0/24"]},
            [("Error", PRIVATE_SOURCE_IP)],
            id="fact13-ipv6-unique-local",
        ),
        pytest.param({"allowedSourceIps": ["192.0.2.0/24"]}, [("Warning", IPV4_ONLY)], id="fact14-ipv4-only"),
        pytest.param(
            {"allowedSourceIps": ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]},
            [("Error", ALLOWS_ALL_ADDRESSES), ("Error", ALLOWS_ALL_ADDRESSES), ("Info", RANGES_COLLAPSED)],
            id="allows-all-addresses",
        ),
        pytest.param(
            {"allowedSourceIps": [*(f"{32 * i}.0.0.0/3" for i in range(8)), "2001:db8::/32"]},
            [("Error", ALLOWS_ALL_ADDRESSES), ("Info", RANGES_COLLAPSED)],
            id="eight-slash-threes",
        ),
        pytest.param(
            {"allowedSourceIps": ["192.0.2.0/24", "2000::/4", "3000::/4"]},
            [("Error", ALLOWS_ALL_ADDRESSES), ("Info", RANGES_COLLAPSED)],
            id="all-of-2000-slash-3",
        ),
        pytest.param(
            {"allowedSourceIps": ["192.0.2.7/24", "2001:db8::/32"]},
            [("Info", HOST_BITS_NORMALISED)],
            id="host-bits",
        ),
        pytest.param(
            {"allowedSourceIps": ["192.0.2.0/24", "192.0.2.128/25", "2001:db8::/32"]},
            [("Info", RANGES_COLLAPSED)],
            id="overlap-collapsed",
        ),
        pytest.param(
            {"allowedSourceIps": ["192.0.2.0/24", "192.0.2.0/24", "2001:db8::/32"]},
            [("Info", RANGES_COLLAPSED)],
            id="duplicate-collapsed",
        ),
        pytest.param(
            {"exemptOperator": False, "acknowledgeLockoutRisk": True},
            [("Warning", OPERATOR_NOT_EXEMPT)],
            id="operator-not-exempt",
        ),
    ],
)
def test_lint_spec_reports_each_problem(fields: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert codes(lint_spec(spec(**fields))) == expected


@pytest.mark.parametrize(
    ("cidrs", "family", "shown"),
    [
        pytest.param(["0.0.0.0/1", "128.0.0.0/1", "2001:db8::/32"], "IPv4", "0.0.0.0/0", id="ipv4"),
        pytest.param(["192.0.2.0/24", "2000::/3"], "IPv6 address (2000::/3)", "2000::/3", id="ipv6"),
        pytest.param(
            [*(f"{32 * i}.0.0.0/3" for i in range(7)), "2001:db8::/32"],
            "IPv4",
            "0.0.0.0/1, 128.0.0.0/2, 192.0.0.0/3",
            id="union-named-collapsed",
        ),
    ],
)
def test_lint_spec_allow_all_public_is_an_error_that_names_the_union(cidrs: list[str], family: str, shown: str) -> None:
    [finding] = [f for f in lint_spec(spec(allowedSourceIps=cidrs)) if f.code == ALLOWS_ALL_ADDRESSES]
    assert finding.severity == "Error"
    assert f"every public {family}" in finding.message
    assert f"together: {shown})" in finding.message
    assert "allowedSourcesFrom" in finding.message and "restricts nothing" in finding.message


def test_lint_spec_fact13_private_range_message_points_to_vpc_endpoints() -> None:
    [finding] = lint_spec(spec(allowedSourceIps=["10.0.0.0/8", "2001:db8::/32"]))
    assert finding.message.startswith("10.0.0.0/8 is a private range: aws:SourceIp never carries private addresses")
    assert "aws:SourceVpce" in finding.message
    assert "allowedVpcEndpoints or allowedVpcs" in finding.message
    assert has_errors([finding])


def test_lint_spec_fact14_ipv4_only_warning_and_an_ipv6_client_is_denied() -> None:
    ipv4_only = spec(allowedSourceIps=["192.0.2.0/24"])
    [finding] = lint_spec(ipv4_only)
    assert finding.code == IPV4_ONLY
    assert "IPv6" in finding.message
    policy = PolicyDocument(statements=(render_statement(ipv4_only, [ROLE], None),))
    client = {"aws:userid": "AIDAEXAMPLEUSER000001", "aws:PrincipalAccount": "123456789012"}
    assert evaluate(
        policy, Request.of("s3:GetObject", f"{BUCKET_ARN}/k", client, **{"aws:SourceIp": "2001:db8::1"})
    ).denied


def test_lint_spec_host_bits_message_shows_both_forms() -> None:
    [finding] = lint_spec(spec(allowedSourceIps=["192.0.2.7/24", "2001:db8::/32"]))
    assert finding.message.startswith("192.0.2.7/24 normalised to 192.0.2.0/24")


def test_lint_spec_operator_not_exempt_names_the_recovery() -> None:
    [finding] = lint_spec(spec(exemptOperator=False, acknowledgeLockoutRisk=True))
    assert "root user can delete the bucket policy" in finding.message
    assert not has_errors([finding])


# --- lint_policy -------------------------------------------------------------------------------------------------


def test_lint_policy_duplicate_sids_says_whose_they_are() -> None:
    existing = document(statement(ADOPTED), statement(ADOPTED), statement("Other"), statement("Other"), statement(None))
    findings = lint_policy(existing, existing, [OURS, ADOPTED])
    duplicates = {f.sid: f for f in findings if f.code == DUPLICATE_SIDS}
    assert set(duplicates) == {ADOPTED, "Other"}
    assert all(f.severity == "Warning" for f in duplicates.values())
    assert "ours" in duplicates[ADOPTED].message
    assert "collapsed" in duplicates[ADOPTED].message
    assert "not ours" in duplicates["Other"].message


@pytest.mark.parametrize(
    ("version", "kept"),
    [
        pytest.param("2008-10-17", True, id="old-version"),
        pytest.param(None, True, id="missing-version"),
        pytest.param("2012-10-17", False, id="current-version"),
    ],
)
def test_lint_policy_legacy_version_is_kept_and_reported(version: str | None, kept: bool) -> None:
    # IAM User Guide, "Version": under 2008-10-17 ${...} is literal text; upgrading would change foreign statements.
    existing = document(statement("Other"), version=version)
    final = merge_policy(existing, render_statement(spec(), [ROLE], None), [OURS])
    found = [f for f in lint_policy(existing, final, [OURS]) if f.code == VERSION_KEPT]
    assert bool(found) is kept
    assert all(f.severity == "Info" and "not upgraded" in f.message for f in found)
    assert final.version == (version or "2008-10-17")
    assert not [f for f in lint_policy(existing, final, [OURS]) if f.code == VERSION_UPGRADED]


def test_lint_policy_version_not_reported_when_the_policy_is_deleted() -> None:
    assert lint_policy(document(statement(OURS), version="2008-10-17"), None, [OURS]) == []


def test_lint_policy_too_large_is_an_error_with_sizes() -> None:
    filler = [statement(f"Foreign{i}", Resource=f"{BUCKET_ARN}/{'x' * 200}/{i}/*") for i in range(100)]
    final = document(*filler)
    assert final.size_bytes > MAX_POLICY_BYTES
    [finding] = [f for f in lint_policy(None, final, [OURS]) if f.code == POLICY_TOO_LARGE]
    assert finding.severity == "Error"
    assert str(final.size_bytes) in finding.message
    assert str(MAX_POLICY_BYTES) in finding.message
    assert has_errors([finding])


def test_lint_policy_owned_sid_with_foreign_content_will_be_replaced() -> None:
    the_spec = spec(adoptSids=[ADOPTED])
    ours = render_statement(the_spec, [ROLE], None)
    existing = PolicyDocument(
        statements=(
            *document(statement(ADOPTED), statement("Other")).statements,
            ours,
        )
    )
    final = merge_policy(existing, ours, the_spec.owned_sids)
    findings = lint_policy(existing, final, the_spec.owned_sids)
    assert codes(findings) == [("Info", OWNED_SID_FOREIGN_CONTENT)]
    assert findings[0].sid == ADOPTED
    assert "replaced" in findings[0].message


def test_lint_policy_our_own_unchanged_statement_is_not_reported() -> None:
    ours = render_statement(spec(), [ROLE], None)
    existing = PolicyDocument(statements=(ours,))
    assert lint_policy(existing, merge_policy(existing, ours, [OURS]), [OURS]) == []


def test_lint_policy_nothing_to_say_about_no_policy() -> None:
    assert lint_policy(None, None, [OURS]) == []


@pytest.mark.parametrize(
    ("severities", "expected"),
    [
        pytest.param([], False, id="none"),
        pytest.param(["Info", "Warning"], False, id="warnings-only"),
        pytest.param(["Info", "Error"], True, id="an-error"),
    ],
)
def test_has_errors_only_for_an_error(severities: list[str], expected: bool) -> None:
    findings = [Finding.model_validate({"severity": s, "code": "X", "message": "m"}) for s in severities]
    assert has_errors(findings) is expected
