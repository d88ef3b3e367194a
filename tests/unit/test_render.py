"""Rendering the one Deny statement bucketwarden owns from a spec and the resolved exemptions."""

from __future__ import annotations

from typing import Any

import pytest

from bucketwarden.policy import (
    PolicyDocument,
    Statement,
    bucket_arns,
    describe_exemptions,
    partition_for_region,
    render_statement,
    user_id_patterns,
)
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.spec import ProtectedBucketSpec

ACCOUNT = "123456789012"
BUCKET = "awsbackup-test-001"
ROLE_ID = "AROASAMPLESAMPLESAMPL"
BACKUP_ROLE = ResolvedRole(
    ref="AWSBackupDefaultServiceRole",
    name="AWSBackupDefaultServiceRole",
    arn=f"arn:aws:iam::{ACCOUNT}:role/service-role/AWSBackupDefaultServiceRole",
    role_id=ROLE_ID,
)
OTHER_ROLE = ResolvedRole(
    ref="ReportingRole",
    name="ReportingRole",
    arn=f"arn:aws:iam::{ACCOUNT}:role/ReportingRole",
    role_id="AROAOTHEROTHEROTHER01",
)
OPERATOR_ROLE = CallerIdentity(
    account=ACCOUNT,
    arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/bucketwarden-operator/botocore-session-1700000000",
    user_id="AROAOPERATOROPERATOR1:botocore-session-1700000000",
)
OPERATOR_USER = CallerIdentity(
    account=ACCOUNT, arn=f"arn:aws:iam::{ACCOUNT}:user/bucketwarden", user_id="AIDAOPERATORUSERID001"
)


def make_spec(**fields: Any) -> ProtectedBucketSpec:
    """A spec as a user writes it in YAML (camelCase), with the seed case's values as defaults."""
    base: dict[str, Any] = {
        "bucketName": BUCKET,
        "allowedSourceIps": ["192.0.2.0/24", "203.0.113.0/24"],
        "exemptRoles": [{"name": "AWSBackupDefaultServiceRole"}],
        "adoptSids": ["SourceIPRestriction001"],
    }
    base.update(fields)
    return ProtectedBucketSpec.model_validate({k: v for k, v in base.items() if v is not None})


def conditions(statement: Statement) -> dict[str, Any]:
    return dict(statement.to_json().get("Condition", {}))


# --- the seed case ----------------------------------------------------------------------------------------------


def test_render_statement_seed_case() -> None:
    statement = render_statement(make_spec(), [BACKUP_ROLE], None)
    assert statement.to_json() == {
        "Sid": "BucketWardenIpRestriction",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
        "Condition": {
            "StringNotLike": {"aws:userId": f"{ROLE_ID}:*"},
            "NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]},
        },
    }


def test_render_statement_seed_case_means_the_issue_statement() -> None:
    issue = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
        "Condition": {
            "StringNotLike": {"aws:userId": f"{ROLE_ID}:*"},
            "NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]},
        },
    }
    statement = render_statement(make_spec(), [BACKUP_ROLE], None)
    assert statement.same_meaning(Statement.parse({"Sid": "BucketWardenIpRestriction", **issue}))


def test_render_statement_is_always_a_deny_to_everyone() -> None:
    # Fact 22: the exemption lives inside a Deny; an Allow to "*" on a userid pattern is public and rejected.
    statement = render_statement(make_spec(), [BACKUP_ROLE, OTHER_ROLE], OPERATOR_ROLE)
    assert (statement.effect, statement.to_json()["Principal"], statement.actions) == ("Deny", "*", ("s3:*",))


def test_render_statement_parses_as_a_policy() -> None:
    statement = render_statement(make_spec(allowedVpcEndpoints=["vpce-1a2b3c4d"]), [BACKUP_ROLE], OPERATOR_ROLE)
    document = PolicyDocument(statements=(statement,))
    assert PolicyDocument.parse(document.to_json()).same_meaning(document)


@pytest.mark.parametrize("sid", ["BucketWardenIpRestriction", "BucketWardenCustom1"])
def test_render_statement_uses_statement_sid(sid: str) -> None:
    assert render_statement(make_spec(statementSid=sid), [BACKUP_ROLE], None).sid == sid


# --- partitions -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        pytest.param(None, "aws", id="unset"),
        pytest.param("eu-west-1", "aws", id="eu-west-1"),
        pytest.param("us-east-1", "aws", id="us-east-1"),
        pytest.param("ap-southeast-2", "aws", id="ap-southeast-2"),
        pytest.param("cn-north-1", "aws-cn", id="cn-north-1"),
        pytest.param("cn-northwest-1", "aws-cn", id="cn-northwest-1"),
        pytest.param("us-gov-west-1", "aws-us-gov", id="us-gov-west-1"),
        pytest.param("us-gov-east-1", "aws-us-gov", id="us-gov-east-1"),
        pytest.param("us-iso-east-1", "aws-iso", id="us-iso-east-1"),
        pytest.param("us-isob-east-1", "aws-iso-b", id="us-isob-east-1"),
        pytest.param("eu-isoe-west-1", "aws-iso-e", id="eu-isoe-west-1"),
        pytest.param("us-isof-south-1", "aws-iso-f", id="us-isof-south-1"),
    ],
)
def test_partition_for_region(region: str | None, partition: str) -> None:
    assert partition_for_region(region) == partition


@pytest.mark.parametrize(
    ("region", "resources"),
    [
        pytest.param(None, [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"], id="default"),
        pytest.param("cn-north-1", [f"arn:aws-cn:s3:::{BUCKET}", f"arn:aws-cn:s3:::{BUCKET}/*"], id="china"),
        pytest.param("us-gov-west-1", [f"arn:aws-us-gov:s3:::{BUCKET}", f"arn:aws-us-gov:s3:::{BUCKET}/*"], id="gov"),
    ],
)
def test_render_statement_resources_use_the_region_partition(region: str | None, resources: list[str]) -> None:
    assert render_statement(make_spec(region=region), [BACKUP_ROLE], None).to_json()["Resource"] == resources


def test_render_statement_partition_argument_wins_over_region() -> None:
    statement = render_statement(make_spec(region="eu-west-1"), [BACKUP_ROLE], None, partition="aws-cn")
    assert statement.resources == (f"arn:aws-cn:s3:::{BUCKET}", f"arn:aws-cn:s3:::{BUCKET}/*")


def test_bucket_arns_covers_bucket_and_objects() -> None:
    assert bucket_arns("b1") == ["arn:aws:s3:::b1", "arn:aws:s3:::b1/*"]
    assert bucket_arns("b1", "aws-us-gov") == ["arn:aws-us-gov:s3:::b1", "arn:aws-us-gov:s3:::b1/*"]


# --- network exemptions -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"allowedVpcEndpoints": ["vpce-1a2b3c4d"]},
            {"aws:SourceVpce": "vpce-1a2b3c4d"},
            id="one-endpoint",
        ),
        pytest.param(
            {"allowedVpcEndpoints": ["vpce-5e6f7a8b", "vpce-1a2b3c4d", "vpce-5e6f7a8b"]},
            {"aws:SourceVpce": ["vpce-1a2b3c4d", "vpce-5e6f7a8b"]},
            id="endpoints-sorted-deduplicated",
        ),
        pytest.param({"allowedVpcs": ["vpc-0abc1234"]}, {"aws:SourceVpc": "vpc-0abc1234"}, id="one-vpc"),
        pytest.param(
            {"allowedVpcEndpoints": ["vpce-1a2b3c4d"], "allowedVpcs": ["vpc-0abc1234", "vpc-0123abcd"]},
            {"aws:SourceVpce": "vpce-1a2b3c4d", "aws:SourceVpc": ["vpc-0123abcd", "vpc-0abc1234"]},
            id="endpoints-and-vpcs",
        ),
    ],
)
def test_render_statement_exempts_vpc_traffic_with_string_not_equals(
    fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    # Fact 12: VPC endpoint traffic has no aws:SourceIp, so NotIpAddress alone would deny it.
    statement = render_statement(make_spec(**fields), [BACKUP_ROLE], None)
    assert conditions(statement)["StringNotEquals"] == expected
    assert "NotIpAddress" in conditions(statement)


def test_render_statement_vpc_only_spec_has_no_source_ip_condition() -> None:
    spec = make_spec(allowedSourceIps=[], allowedVpcEndpoints=["vpce-1a2b3c4d"])
    assert set(conditions(render_statement(spec, [BACKUP_ROLE], None))) == {"StringNotLike", "StringNotEquals"}


def test_render_statement_without_vpcs_has_no_string_not_equals() -> None:
    assert "StringNotEquals" not in conditions(render_statement(make_spec(), [BACKUP_ROLE], None))


# --- principal exemptions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("roles", "operator", "exempt_operator", "patterns"),
    [
        pytest.param([BACKUP_ROLE], None, True, f"{ROLE_ID}:*", id="role-only"),
        pytest.param(
            [BACKUP_ROLE], OPERATOR_ROLE, True, [f"{ROLE_ID}:*", "AROAOPERATOROPERATOR1:*"], id="operator-assumed-role"
        ),
        pytest.param(
            [BACKUP_ROLE], OPERATOR_USER, True, [f"{ROLE_ID}:*", "AIDAOPERATORUSERID001"], id="operator-iam-user"
        ),
        pytest.param([BACKUP_ROLE], OPERATOR_ROLE, False, f"{ROLE_ID}:*", id="operator-not-exempted"),
        pytest.param(
            [BACKUP_ROLE, OTHER_ROLE], None, True, [f"{ROLE_ID}:*", "AROAOTHEROTHEROTHER01:*"], id="two-roles"
        ),
        pytest.param([], OPERATOR_ROLE, True, "AROAOPERATOROPERATOR1:*", id="operator-only"),
        pytest.param([], None, True, None, id="no-exemptions"),
        pytest.param([], OPERATOR_USER, False, None, id="nothing-exempt"),
    ],
)
def test_render_statement_exempts_principals_by_user_id(
    roles: list[ResolvedRole],
    operator: CallerIdentity | None,
    exempt_operator: bool,
    patterns: str | list[str] | None,
) -> None:
    spec = make_spec(
        exemptRoles=[{"name": r.name} for r in roles],
        exemptOperator=exempt_operator,
        acknowledgeLockoutRisk=None if exempt_operator else True,
    )
    found = conditions(render_statement(spec, roles, operator))
    if patterns is None:
        assert "StringNotLike" not in found
    else:
        assert found["StringNotLike"] == {"aws:userId": patterns}
    assert "ArnNotLike" not in found


def test_render_statement_assumed_role_operator_is_exempted_for_every_session() -> None:
    # Fact 1: sessions rotate, the role does not; "<RoleId>:*" covers them all. An IAM user has no sessions.
    assert OPERATOR_ROLE.exempt_pattern == "AROAOPERATOROPERATOR1:*"
    assert OPERATOR_USER.exempt_pattern == "AIDAOPERATORUSERID001"


def test_render_statement_deduplicates_patterns() -> None:
    operator_is_backup_role = CallerIdentity(
        account=ACCOUNT,
        arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSBackupDefaultServiceRole/s1",
        user_id=f"{ROLE_ID}:s1",
    )
    found = conditions(render_statement(make_spec(), [BACKUP_ROLE], operator_is_backup_role))
    assert found["StringNotLike"] == {"aws:userId": f"{ROLE_ID}:*"}


@pytest.mark.parametrize(
    ("operator", "user_id"),
    [
        pytest.param(None, None, id="no-operator"),
        pytest.param(OPERATOR_ROLE, "AROAOPERATOROPERATOR1:*", id="operator-by-user-id"),
    ],
)
def test_render_statement_principal_arn_mode(operator: CallerIdentity | None, user_id: str | None) -> None:
    spec = make_spec(exemptionKey="principalArn", exemptRoles=[{"arn": BACKUP_ROLE.arn}, {"name": "ReportingRole"}])
    unresolved = ResolvedRole(ref=OTHER_ROLE.ref, name=OTHER_ROLE.name, arn=OTHER_ROLE.arn, role_id=None)
    found = conditions(render_statement(spec, [BACKUP_ROLE, unresolved], operator))
    # Roles by ARN (fact 4), path included; the operator is still exempted by its userid.
    assert found["ArnNotLike"] == {"aws:PrincipalArn": [BACKUP_ROLE.arn, OTHER_ROLE.arn]}
    if user_id is None:
        assert "StringNotLike" not in found
    else:
        assert found["StringNotLike"] == {"aws:userId": user_id}


def test_render_statement_principal_arn_mode_one_role_is_a_string() -> None:
    spec = make_spec(exemptionKey="principalArn")
    found = conditions(render_statement(spec, [BACKUP_ROLE], None))
    assert found["ArnNotLike"] == {"aws:PrincipalArn": BACKUP_ROLE.arn}


def test_user_id_patterns_in_principal_arn_mode_has_only_the_operator() -> None:
    spec = make_spec(exemptionKey="principalArn")
    assert user_id_patterns(spec, [BACKUP_ROLE], OPERATOR_USER) == ["AIDAOPERATORUSERID001"]
    assert user_id_patterns(make_spec(), [BACKUP_ROLE], OPERATOR_USER) == [f"{ROLE_ID}:*", "AIDAOPERATORUSERID001"]


# --- CIDRs in the rendered statement ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidrs", "rendered"),
    [
        pytest.param(["192.0.2.0/24"], "192.0.2.0/24", id="one-is-a-string"),
        pytest.param(["192.0.2.7/24"], "192.0.2.0/24", id="host-bits-cleared"),
        pytest.param(["203.0.113.5"], "203.0.113.5/32", id="bare-address"),
        pytest.param(["192.0.2.0/24", "192.0.2.0/24"], "192.0.2.0/24", id="duplicates"),
        pytest.param(["192.0.2.0/25", "192.0.2.128/25"], "192.0.2.0/24", id="adjacent-collapsed"),
        pytest.param(["198.51.100.0/24", "198.51.100.64/26"], "198.51.100.0/24", id="contained-collapsed"),
        pytest.param(
            ["2001:DB8::/32", "203.0.113.0/24", "192.0.2.0/24"],
            ["192.0.2.0/24", "203.0.113.0/24", "2001:db8::/32"],
            id="sorted-ipv4-then-ipv6-lowercase",
        ),
        pytest.param(["2001:db8::1"], "2001:db8::1/128", id="bare-ipv6"),
    ],
)
def test_render_statement_normalises_cidrs(cidrs: list[str], rendered: str | list[str]) -> None:
    found = conditions(render_statement(make_spec(allowedSourceIps=cidrs), [BACKUP_ROLE], None))
    assert found["NotIpAddress"] == {"aws:SourceIp": rendered}


def test_render_statement_same_spec_renders_same_text() -> None:
    a = render_statement(make_spec(allowedSourceIps=["203.0.113.0/24", "192.0.2.0/24"]), [BACKUP_ROLE], OPERATOR_ROLE)
    b = render_statement(make_spec(allowedSourceIps=["192.0.2.0/24", "203.0.113.0/24"]), [BACKUP_ROLE], OPERATOR_ROLE)
    assert a.to_json() == b.to_json()


# --- describe_exemptions ----------------------------------------------------------------------------------------


def test_describe_exemptions_lists_roles_and_operator() -> None:
    described = describe_exemptions(make_spec(), [BACKUP_ROLE], OPERATOR_ROLE)
    assert [(e.kind, e.name, e.role_id, e.pattern) for e in described] == [
        ("Role", "AWSBackupDefaultServiceRole", ROLE_ID, f"{ROLE_ID}:*"),
        ("Operator", None, "AROAOPERATOROPERATOR1", "AROAOPERATOROPERATOR1:*"),
    ]


def test_describe_exemptions_principal_arn_mode_reports_the_arn() -> None:
    described = describe_exemptions(make_spec(exemptionKey="principalArn"), [BACKUP_ROLE], None)
    assert [e.pattern for e in described] == [BACKUP_ROLE.arn]


def test_describe_exemptions_without_operator_exemption() -> None:
    spec = make_spec(exemptOperator=False, acknowledgeLockoutRisk=True)
    assert [e.kind for e in describe_exemptions(spec, [BACKUP_ROLE], OPERATOR_USER)] == ["Role"]
