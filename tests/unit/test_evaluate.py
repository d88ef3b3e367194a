"""The IAM evaluator: condition operators, principals, actions, resources, and the AWS facts it must encode."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bucketwarden.errors import InvalidConditionValueError, UnknownConditionOperatorError
from bucketwarden.policy import (
    PolicyDocument,
    Request,
    Statement,
    evaluate,
    render_statement,
    statement_applies,
)
from bucketwarden.policy._cidr import NON_PUBLIC_RANGES
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.spec import ProtectedBucketSpec
from tests.seed import ACCOUNT, BUCKET, BUCKET_ARN, OPERATOR, ROLE, ROLE_ARN, ROLE_ID, ROLE_NAME

OTHER_ACCOUNT = "111122223333"
OBJECT_ARN = f"{BUCKET_ARN}/data/file.txt"
NEW_ROLE_ID = "AROANEWNEWNEWNEWNEWNE"
BACKUP_SESSION = f"{ROLE_ID}:AWSBackup-{ROLE_NAME}"
USER_ID = "AIDAEXAMPLEUSER000001"
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
AWS_ADDRESS = "3.5.140.2"  # an AWS public address, outside the seed's ranges
SEED_CIDRS = ["192.0.2.0/24", "203.0.113.0/24"]


def doc(*statements: dict[str, Any], version: str | None = "2012-10-17") -> PolicyDocument:
    obj: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        obj["Version"] = version
    return PolicyDocument.from_obj(obj)


def deny(condition: dict[str, Any] | None = None, sid: str | None = "T", **fields: Any) -> dict[str, Any]:
    stmt: dict[str, Any] = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [BUCKET_ARN, f"{BUCKET_ARN}/*"],
    }
    if sid is not None:
        stmt["Sid"] = sid
    if condition is not None:
        stmt["Condition"] = condition
    stmt.update(fields)
    return stmt


def allow(condition: dict[str, Any] | None = None, sid: str | None = "A", **fields: Any) -> dict[str, Any]:
    return {**deny(condition, sid, **fields), "Effect": "Allow"}


def request(action: str = "s3:GetObject", resource: str = OBJECT_ARN, **context: Any) -> Request:
    return Request.of(action, resource, context)


def user(address: str | None = AWS_ADDRESS, **extra: Any) -> dict[str, Any]:
    ctx: dict[str, Any] = {"aws:userid": USER_ID, "aws:PrincipalArn": USER_ARN, "aws:PrincipalAccount": ACCOUNT}
    if address is not None:
        ctx["aws:SourceIp"] = address
    return {**ctx, **extra}


def backup_session(address: str = AWS_ADDRESS, role_id: str = ROLE_ID, role_arn: str = ROLE_ARN) -> dict[str, Any]:
    return {
        "aws:userid": f"{role_id}:AWSBackup-{ROLE_NAME}",
        "aws:PrincipalArn": role_arn,
        "aws:PrincipalAccount": ACCOUNT,
        "aws:SourceIp": address,
        "aws:ViaAWSService": "false",
        "aws:PrincipalIsAWSService": "false",
    }


def holds(condition: dict[str, Any], context: dict[str, Any], *, version: str | None = "2012-10-17") -> bool:
    """Whether the condition block is true for a request with this context."""
    policy = doc(allow(condition, Resource="*"), version=version)
    return evaluate(policy, Request.of("s3:GetObject", OBJECT_ARN, context)).decision == "Allow"


def spec(**fields: Any) -> ProtectedBucketSpec:
    base: dict[str, Any] = {"bucketName": BUCKET, "allowedSourceIps": SEED_CIDRS, "exemptRoles": [{"name": ROLE_NAME}]}
    return ProtectedBucketSpec.model_validate({**base, **fields})


def rendered(
    the_spec: ProtectedBucketSpec | None = None,
    roles: list[ResolvedRole] | None = None,
    operator: CallerIdentity | None = OPERATOR,
) -> PolicyDocument:
    statement = render_statement(the_spec or spec(), [ROLE] if roles is None else roles, operator)
    return PolicyDocument(statements=(statement,))


# --- Request and Evaluation ------------------------------------------------------------------------------------


def test_request_of_lowercases_keys_and_wraps_values() -> None:
    req = Request.of("s3:GetObject", OBJECT_ARN, {"aws:SourceIp": "192.0.2.1"}, **{"AWS:TagKeys": ["a", "b"]})
    assert req.context == {"aws:sourceip": ("192.0.2.1",), "aws:tagkeys": ("a", "b")}
    assert req.get("AWS:SOURCEIP") == ("192.0.2.1",)


def test_request_with_context_sets_and_removes_keys() -> None:
    req = request(**user()).with_context({"aws:SourceIp": None}, **{"aws:SourceVpce": "vpce-0123456789abcdef0"})
    assert req.get("aws:SourceIp") is None
    assert req.get("aws:sourcevpce") == ("vpce-0123456789abcdef0",)


@pytest.mark.parametrize(
    ("statements", "decision", "sid", "index"),
    [
        pytest.param([allow()], "Allow", "A", 0, id="allow-only"),
        pytest.param([allow(), deny(sid="D")], "ExplicitDeny", "D", 1, id="fact10-deny-beats-allow"),
        pytest.param([deny(sid="D1"), deny(sid="D2")], "ExplicitDeny", "D1", 0, id="first-deny-decides"),
        pytest.param([allow(sid="A1"), allow(sid="A2")], "Allow", "A1", 0, id="first-allow-decides"),
        pytest.param([deny(sid=None)], "ExplicitDeny", None, 0, id="deny-without-sid"),
        pytest.param([allow(Action="s3:PutObject")], "NoMatch", None, None, id="nothing-applies"),
    ],
)
def test_evaluate_decision_and_deciding_statement(
    statements: list[dict[str, Any]], decision: str, sid: str | None, index: int | None
) -> None:
    result = evaluate(doc(*statements), request(**user()))
    assert (result.decision, result.sid, result.index) == (decision, sid, index)


def test_evaluation_label_names_a_statement_without_sid_by_position() -> None:
    result = evaluate(doc(allow(Action="s3:PutObject"), deny(sid=None)), request(**user()))
    assert result.label == "Statement[1]"
    assert result.denied


# --- condition operators -----------------------------------------------------------------------------------------

CONDITION_CASES = [
    # fact 7: operators ANDed, keys ANDed, values ORed.
    pytest.param(
        {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}, "Bool": {"aws:SecureTransport": "true"}},
        {"aws:PrincipalAccount": ACCOUNT, "aws:SecureTransport": "false"},
        False,
        id="fact07-operators-anded",
    ),
    pytest.param(
        {"StringEquals": {"aws:PrincipalAccount": ACCOUNT, "aws:PrincipalType": "User"}},
        {"aws:PrincipalAccount": ACCOUNT, "aws:PrincipalType": "AssumedRole"},
        False,
        id="fact07-keys-anded",
    ),
    pytest.param(
        {"StringEquals": {"aws:PrincipalAccount": [OTHER_ACCOUNT, ACCOUNT]}},
        {"aws:PrincipalAccount": ACCOUNT},
        True,
        id="fact07-values-ored",
    ),
    # fact 8: a negated operator with several values is true only if the value matches none of them.
    pytest.param(
        {"NotIpAddress": {"aws:SourceIp": SEED_CIDRS}},
        {"aws:SourceIp": "203.0.113.9"},
        False,
        id="fact08-not-ip-address-matches-second-range",
    ),
    pytest.param(
        {"NotIpAddress": {"aws:SourceIp": SEED_CIDRS}}, {"aws:SourceIp": AWS_ADDRESS}, True, id="fact08-matches-none"
    ),
    pytest.param(
        {"StringNotLike": {"aws:userid": ["AROAOTHER:*", f"{ROLE_ID}:*"]}},
        {"aws:userid": BACKUP_SESSION},
        False,
        id="fact08-string-not-like-multivalue",
    ),
    pytest.param(
        {"StringNotEquals": {"aws:SourceVpce": ["vpce-1", "vpce-2"]}},
        {"aws:SourceVpce": "vpce-2"},
        False,
        id="fact08-string-not-equals-multivalue",
    ),
    pytest.param(
        {"ArnNotLike": {"aws:PrincipalArn": [USER_ARN, ROLE_ARN]}},
        {"aws:PrincipalArn": ROLE_ARN},
        False,
        id="fact08-arn-not-like-multivalue",
    ),
    # fact 9: a missing key makes a normal operator false, a negated one true, ...IfExists true.
    pytest.param({"StringEquals": {"aws:SourceVpce": "vpce-1"}}, {}, False, id="fact09-missing-key-normal-false"),
    pytest.param({"IpAddress": {"aws:SourceIp": SEED_CIDRS}}, {}, False, id="fact09-missing-key-ip-address-false"),
    pytest.param({"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}, {}, True, id="fact09-missing-key-negated-true"),
    pytest.param({"NotIpAddress": {"aws:SourceIp": SEED_CIDRS}}, {}, True, id="fact09-missing-key-not-ip-true"),
    pytest.param({"StringNotLike": {"aws:userid": "AROA*"}}, {}, True, id="fact09-missing-key-not-like-true"),
    pytest.param({"StringEqualsIfExists": {"aws:SourceVpce": "vpce-1"}}, {}, True, id="fact09-if-exists-missing"),
    pytest.param(
        {"StringEqualsIfExists": {"aws:SourceVpce": "vpce-1"}},
        {"aws:SourceVpce": "vpce-2"},
        False,
        id="if-exists-present-mismatch",
    ),
    pytest.param({"NotIpAddressIfExists": {"aws:SourceIp": SEED_CIDRS}}, {}, True, id="if-exists-negated-missing"),
    pytest.param({"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}}, {}, True, id="bool-if-exists-missing"),
    # fact 11: wildcards, IPv4 and IPv6, bare addresses.
    pytest.param({"StringLike": {"s3:prefix": "home/*"}}, {"s3:prefix": "home/a/b"}, True, id="fact11-star-any-run"),
    pytest.param({"StringLike": {"s3:prefix": "home/*"}}, {"s3:prefix": "home/"}, True, id="fact11-star-empty-run"),
    pytest.param({"StringLike": {"s3:prefix": "f-?.txt"}}, {"s3:prefix": "f-1.txt"}, True, id="fact11-question-one"),
    pytest.param({"StringLike": {"s3:prefix": "f-?.txt"}}, {"s3:prefix": "f-10.txt"}, False, id="fact11-question-two"),
    pytest.param({"StringLike": {"s3:prefix": "f-?.txt"}}, {"s3:prefix": "f-.txt"}, False, id="fact11-question-none"),
    pytest.param({"StringLike": {"s3:prefix": "a.b"}}, {"s3:prefix": "axb"}, False, id="fact11-dot-is-literal"),
    pytest.param({"StringLike": {"s3:prefix": "(a)+[b]"}}, {"s3:prefix": "(a)+[b]"}, True, id="fact11-regex-escaped"),
    pytest.param({"StringLike": {"s3:prefix": "a*"}}, {"s3:prefix": "A1"}, False, id="fact11-like-case-sensitive"),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}, {"aws:SourceIp": "2001:db8:1::5"}, True, id="fact11-ipv6"
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}},
        {"aws:SourceIp": "2001:db8::1"},
        False,
        id="fact11-ipv6-address-never-in-ipv4-range",
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "192.0.2.7"}}, {"aws:SourceIp": "192.0.2.7"}, True, id="fact11-bare-ipv4-is-32"
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "192.0.2.7"}}, {"aws:SourceIp": "192.0.2.8"}, False, id="fact11-bare-ipv4-only"
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "2001:db8::7"}}, {"aws:SourceIp": "2001:db8::8"}, False, id="fact11-bare-ipv6"
    ),
    pytest.param(
        {"IpAddress": {"aws:SourceIp": "192.0.2.7/24"}}, {"aws:SourceIp": "192.0.2.200"}, True, id="ip-host-bits"
    ),
    pytest.param({"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}, {"aws:SourceIp": "bogus"}, False, id="ip-bogus"),
    # String operators.
    pytest.param(
        {"StringEquals": {"aws:username": "Alice"}}, {"aws:username": "alice"}, False, id="fact02-values-case"
    ),
    pytest.param(
        {"StringEqualsIgnoreCase": {"aws:username": "Alice"}}, {"aws:username": "ALICE"}, True, id="equals-ignore-case"
    ),
    pytest.param(
        {"StringNotEqualsIgnoreCase": {"aws:username": ["Alice", "Bob"]}},
        {"aws:username": "bob"},
        False,
        id="not-equals-ignore-case",
    ),
    pytest.param({"StringEquals": {"s3:prefix": "a*"}}, {"s3:prefix": "ab"}, False, id="equals-star-is-literal"),
    # Numeric.
    pytest.param({"NumericLessThan": {"s3:max-keys": "10"}}, {"s3:max-keys": "5"}, True, id="numeric-less-than"),
    pytest.param({"NumericLessThan": {"s3:max-keys": "10"}}, {"s3:max-keys": "10"}, False, id="numeric-lt-equal"),
    pytest.param({"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "10"}, True, id="numeric-le"),
    pytest.param({"NumericGreaterThan": {"s3:max-keys": 10}}, {"s3:max-keys": "11"}, True, id="numeric-gt-json-number"),
    pytest.param({"NumericGreaterThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "9"}, False, id="numeric-ge"),
    pytest.param({"NumericEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "10.0"}, True, id="numeric-equals"),
    pytest.param({"NumericNotEquals": {"s3:max-keys": ["1", "2"]}}, {"s3:max-keys": "2"}, False, id="numeric-not-eq"),
    pytest.param({"NumericEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "ten"}, False, id="numeric-not-a-number"),
    # Date: ISO 8601 or epoch seconds.
    pytest.param(
        {"DateLessThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}},
        {"aws:CurrentTime": "2025-12-31T23:59:59Z"},
        True,
        id="date-less-than",
    ),
    pytest.param(
        {"DateEquals": {"aws:CurrentTime": "1767225600"}},
        {"aws:CurrentTime": "2026-01-01T00:00:00Z"},
        True,
        id="date-epoch-equals-iso",
    ),
    pytest.param(
        {"DateGreaterThanEquals": {"aws:TokenIssueTime": "2026-01-01T01:00:00+01:00"}},
        {"aws:TokenIssueTime": "2026-01-01T00:00:00Z"},
        True,
        id="date-time-zones",
    ),
    pytest.param(
        {"DateGreaterThan": {"aws:CurrentTime": "2026-01-01"}},
        {"aws:CurrentTime": "2025-06-01T00:00:00Z"},
        False,
        id="date-greater-than",
    ),
    pytest.param(
        {"DateLessThanEquals": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}},
        {"aws:CurrentTime": "2026-01-01T00:00:00Z"},
        True,
        id="date-less-than-equals",
    ),
    pytest.param(
        {"DateNotEquals": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}},
        {"aws:CurrentTime": "1767225600"},
        False,
        id="date-not-equals",
    ),
    # Bool and Binary.
    pytest.param({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": "true"}, True, id="bool-true"),
    pytest.param({"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": "false"}, False, id="bool-false"),
    pytest.param({"Bool": {"aws:SecureTransport": "true"}}, {}, False, id="bool-missing"),
    pytest.param({"BinaryEquals": {"s3:Key": "QmluYXJ5"}}, {"s3:Key": "QmluYXJ5"}, True, id="binary-equals"),
    pytest.param({"BinaryEquals": {"s3:Key": "QmluYXJ5"}}, {"s3:Key": "cXVhcms="}, False, id="binary-differs"),
    # ARN operators: both Equals and Like take wildcards; the six parts are matched one by one.
    pytest.param(
        {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/service-role/*"}},
        {"aws:PrincipalArn": ROLE_ARN},
        True,
        id="arn-like-wildcards",
    ),
    pytest.param(
        {"ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/*"}},
        {"aws:PrincipalArn": ROLE_ARN},
        True,
        id="arn-equals-takes-wildcards-like-arn-like",
    ),
    pytest.param(
        {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/x"}},
        {"aws:PrincipalArn": "arn:aws:iam::1:2:role/x"},
        False,
        id="arn-like-star-stays-in-its-part",
    ),
    pytest.param(
        {"ArnLike": {"aws:SourceArn": "arn:aws:logs:*:*:log-group:app:*"}},
        {"aws:SourceArn": "arn:aws:logs:eu-west-1:123456789012:log-group:app:log-stream:x"},
        True,
        id="arn-like-resource-part-keeps-colons",
    ),
    pytest.param(
        {"ArnLike": {"aws:PrincipalArn": "*"}}, {"aws:PrincipalArn": ROLE_ARN}, True, id="arn-like-non-arn-pattern-glob"
    ),
    pytest.param(
        {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}},
        {"aws:PrincipalArn": "not-an-arn"},
        False,
        id="arn-like-value-not-an-arn",
    ),
    pytest.param(
        {"ArnNotEquals": {"aws:PrincipalArn": ROLE_ARN}}, {"aws:PrincipalArn": USER_ARN}, True, id="arn-not-equals"
    ),
    pytest.param(
        {"ArnNotLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/*"}},
        {"aws:PrincipalArn": ROLE_ARN},
        False,
        id="arn-not-like",
    ),
    pytest.param(
        {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/service-role/awsbackup*"}},
        {"aws:PrincipalArn": ROLE_ARN},
        False,
        id="arn-like-case-sensitive",
    ),
    # Null: "true" means the key is absent.
    pytest.param({"Null": {"aws:TokenIssueTime": "true"}}, {}, True, id="null-true-absent"),
    pytest.param({"Null": {"aws:TokenIssueTime": "true"}}, {"aws:TokenIssueTime": "x"}, False, id="null-true-present"),
    pytest.param({"Null": {"aws:TokenIssueTime": "false"}}, {"aws:TokenIssueTime": "x"}, True, id="null-false-present"),
    pytest.param({"Null": {"aws:TokenIssueTime": False}}, {}, False, id="null-false-absent"),
    # Set qualifiers for multi-valued keys.
    pytest.param(
        {"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}, {"aws:TagKeys": ["b", "c"]}, True, id="for-any-hit"
    ),
    pytest.param(
        {"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}, {"aws:TagKeys": ["c"]}, False, id="for-any-miss"
    ),
    pytest.param({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}, {}, False, id="for-any-missing-key-false"),
    pytest.param({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}, {"aws:TagKeys": []}, False, id="for-any-empty"),
    pytest.param(
        {"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": ["a"]}}, {}, True, id="for-any-if-exists-missing-true"
    ),
    pytest.param(
        {"ForAnyValue:StringNotLike": {"aws:TagKeys": ["a*"]}}, {"aws:TagKeys": ["ab", "x"]}, True, id="for-any-negated"
    ),
    pytest.param(
        {"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}},
        {"aws:TagKeys": ["a", "b"]},
        True,
        id="for-all-subset",
    ),
    pytest.param(
        {"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}},
        {"aws:TagKeys": ["a", "c"]},
        False,
        id="for-all-one-outside",
    ),
    pytest.param({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}, {}, True, id="for-all-missing-key-true"),
    pytest.param(
        {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["x"]}},
        {"aws:TagKeys": ["a", "b"]},
        True,
        id="for-all-negated-none-match",
    ),
    pytest.param(
        {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["x"]}},
        {"aws:TagKeys": ["a", "x"]},
        False,
        id="for-all-negated-one-matches",
    ),
    pytest.param(
        {"forallvalues:stringlike": {"aws:TagKeys": ["a*"]}}, {"aws:TagKeys": ["ab"]}, True, id="operator-name-case"
    ),
    # Policy variables.
    pytest.param(
        {"StringLike": {"s3:prefix": "home/${aws:username}/*"}},
        {"aws:username": "alice", "s3:prefix": "home/alice/x"},
        True,
        id="variable-substituted",
    ),
    pytest.param(
        {"StringLike": {"s3:prefix": "home/${aws:username}/*"}},
        {"aws:username": "alice", "s3:prefix": "home/bob/x"},
        False,
        id="variable-other-value",
    ),
    pytest.param(
        {"StringLike": {"s3:prefix": "home/${aws:username}/*"}},
        {"s3:prefix": "home/${aws:username}/x"},
        False,
        id="variable-missing-matches-nothing",
    ),
    pytest.param(
        {"StringNotEquals": {"s3:prefix": "home/${aws:username}"}},
        {"s3:prefix": "home/alice"},
        True,
        id="variable-missing-negated-true",
    ),
    pytest.param(
        {"StringEquals": {"s3:prefix": "home/${aws:username, 'guest'}"}},
        {"s3:prefix": "home/guest"},
        True,
        id="variable-default-value",
    ),
    pytest.param(
        {"StringEquals": {"s3:prefix": "home/${AWS:UserName}"}},
        {"aws:username": "alice", "s3:prefix": "home/alice"},
        True,
        id="variable-key-case-insensitive",
    ),
    pytest.param(
        {"StringLike": {"s3:prefix": "home/${aws:username}"}},
        {"aws:username": "a*", "s3:prefix": "home/abc"},
        False,
        id="variable-value-is-literal-not-wildcard",
    ),
    pytest.param(
        {"StringLike": {"s3:prefix": "a${*}"}}, {"s3:prefix": "a*"}, True, id="escape-star-matches-literal-star"
    ),
    pytest.param({"StringLike": {"s3:prefix": "a${*}"}}, {"s3:prefix": "ab"}, False, id="escape-star-not-wildcard"),
    pytest.param({"StringLike": {"s3:prefix": "a${?}"}}, {"s3:prefix": "ab"}, False, id="escape-question"),
    pytest.param({"StringEquals": {"s3:prefix": "cost${$}"}}, {"s3:prefix": "cost$"}, True, id="escape-dollar"),
    pytest.param(
        {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::${aws:PrincipalAccount}:role/*"}},
        {"aws:PrincipalAccount": ACCOUNT, "aws:PrincipalArn": ROLE_ARN},
        True,
        id="variable-in-arn-like",
    ),
]


@pytest.mark.parametrize(("condition", "context", "expected"), CONDITION_CASES)
def test_condition_operator_semantics(condition: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    assert holds(condition, context) is expected


def test_condition_variables_are_literal_text_under_version_2008() -> None:
    condition = {"StringEquals": {"s3:prefix": "home/${aws:username}"}}
    context = {"aws:username": "alice", "s3:prefix": "home/${aws:username}"}
    assert holds(condition, context, version="2008-10-17")
    assert holds(condition, context, version=None)  # no Version means 2008-10-17
    assert not holds(condition, context)


@pytest.mark.parametrize(
    "operator",
    [
        pytest.param("StringEqualz", id="typo"),
        pytest.param("IpAddressIfExistz", id="bad-suffix"),
        pytest.param("ForSomeValues:StringEquals", id="bad-qualifier"),
        pytest.param("ForAnyValue:Frobnicate", id="qualified-unknown"),
        pytest.param("NullIfExists", id="null-if-exists"),
    ],
)
def test_evaluate_unknown_operator_raises_naming_it(operator: str) -> None:
    # The statement would not even apply (other action): the evaluator still refuses to judge the policy.
    policy = doc(allow({operator: {"aws:SourceIp": "192.0.2.1"}}, Action="s3:PutObject"))
    with pytest.raises(UnknownConditionOperatorError, match=operator):
        evaluate(policy, request(**user()))


# --- principals, actions, resources ------------------------------------------------------------------------------


def role_session(role_arn: str = ROLE_ARN, role_id: str = ROLE_ID) -> dict[str, Any]:
    return {"aws:userid": f"{role_id}:s1", "aws:PrincipalArn": role_arn, "aws:PrincipalAccount": ACCOUNT}


@pytest.mark.parametrize(
    ("principal", "context", "expected"),
    [
        pytest.param("*", {}, True, id="star-everyone"),
        pytest.param({"AWS": "*"}, user(), True, id="aws-star-everyone"),
        pytest.param({"AWS": ACCOUNT}, role_session(), True, id="account-id-any-principal-of-it"),
        pytest.param({"AWS": OTHER_ACCOUNT}, role_session(), False, id="account-id-other-account"),
        pytest.param({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, user(), True, id="root-arn-whole-account"),
        pytest.param({"AWS": ROLE_ARN}, role_session(), True, id="role-arn-any-session"),
        pytest.param({"AWS": ROLE_ARN}, role_session(role_id=NEW_ROLE_ID), True, id="role-arn-survives-recreation"),
        pytest.param(
            {"AWS": ROLE_ARN},
            role_session(f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"),
            False,
            id="role-arn-path-matters",
        ),
        pytest.param({"AWS": USER_ARN}, user(), True, id="user-arn"),
        pytest.param({"AWS": [USER_ARN, ROLE_ARN]}, role_session(), True, id="list-of-arns"),
        pytest.param({"AWS": ROLE_ID}, role_session(), True, id="fact21-bare-role-id-matches-sessions"),
        pytest.param({"AWS": ROLE_ID}, role_session(role_id=ROLE_ID + "X"), False, id="bare-id-needs-colon"),
        pytest.param({"AWS": USER_ID}, user(), True, id="bare-user-id-exact"),
        pytest.param(
            {"Service": "cloudtrail.amazonaws.com"},
            {"aws:PrincipalServiceName": "cloudtrail.amazonaws.com"},
            True,
            id="service",
        ),
        pytest.param({"Service": "cloudtrail.amazonaws.com"}, user(), False, id="service-not-a-user"),
        pytest.param(
            {"Federated": "cognito-identity.amazonaws.com"},
            {"aws:PrincipalArn": "cognito-identity.amazonaws.com"},
            True,
            id="federated",
        ),
        pytest.param({"CanonicalUser": "79a59df900b949e5"}, user(), False, id="canonical-user-other"),
    ],
)
def test_statement_applies_principal_matching(principal: Any, context: dict[str, Any], expected: bool) -> None:
    stmt = Statement.parse(allow(Principal=principal))
    assert statement_applies(stmt, request(**context)) is expected


SESSION_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/s1"
ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"


@pytest.mark.parametrize(
    ("not_principal", "context", "denied"),
    [
        # IAM User Guide, "NotPrincipal": for a role session, list the session ARN, the role ARN and the account.
        pytest.param(
            [SESSION_ARN, ROLE_ARN, ROOT_ARN], role_session(), False, id="iam-notprincipal-session-role-account-spared"
        ),
        pytest.param([ROLE_ARN, ROOT_ARN], role_session(), True, id="iam-notprincipal-role-and-root-not-enough"),
        pytest.param([ROLE_ARN], role_session(), True, id="iam-notprincipal-role-arn-alone-not-enough"),
        pytest.param([SESSION_ARN, ROLE_ARN], role_session(), True, id="iam-notprincipal-account-must-be-listed"),
        pytest.param([SESSION_ARN, ROLE_ARN, ACCOUNT], role_session(), False, id="iam-notprincipal-account-id-form"),
        # "arn:aws:iam::ACCT:root" in NotPrincipal spares the account principal itself, not its users or roles.
        pytest.param([ROOT_ARN], user(), True, id="iam-notprincipal-root-does-not-spare-users"),
        pytest.param(
            [ROOT_ARN],
            {"aws:PrincipalArn": ROOT_ARN, "aws:PrincipalAccount": ACCOUNT, "aws:userid": ACCOUNT},
            False,
            id="iam-notprincipal-root-spares-the-root",
        ),
        pytest.param([USER_ARN, ROOT_ARN], user(), False, id="iam-notprincipal-user-and-account-spared"),
        pytest.param([USER_ARN], user(), True, id="iam-notprincipal-user-without-account"),
        pytest.param([SESSION_ARN, ROLE_ARN, ROOT_ARN], user(), True, id="iam-notprincipal-everyone-else-denied"),
    ],
)
def test_evaluate_not_principal_spares_only_a_caller_listed_by_all_its_names(
    not_principal: list[str], context: dict[str, Any], denied: bool
) -> None:
    stmt = {k: v for k, v in deny().items() if k != "Principal"}
    policy = doc({**stmt, "NotPrincipal": {"AWS": not_principal}})
    assert evaluate(policy, request(**context)).denied is denied


@pytest.mark.parametrize(
    ("principal", "context", "expected"),
    [
        # IAM User Guide, "Principal": "role sessions": an assumed-role session ARN names that session.
        pytest.param({"AWS": SESSION_ARN}, role_session(), True, id="iam-principal-session-arn-matches-its-session"),
        pytest.param(
            {"AWS": SESSION_ARN},
            {**role_session(), "aws:userid": f"{ROLE_ID}:s2"},
            False,
            id="iam-principal-session-arn-not-other-sessions",
        ),
        pytest.param(
            {"AWS": SESSION_ARN},
            {"aws:PrincipalArn": ROLE_ARN, "bucketwarden:callerArn": SESSION_ARN},
            True,
            id="iam-principal-session-arn-given-explicitly",
        ),
        pytest.param({"AWS": SESSION_ARN}, user(), False, id="iam-principal-session-arn-not-a-user"),
    ],
)
def test_statement_applies_principal_session_arn(principal: Any, context: dict[str, Any], expected: bool) -> None:
    stmt = Statement.parse(allow(Principal=principal))
    assert statement_applies(stmt, request(**context)) is expected


@pytest.mark.parametrize(
    ("fields", "action", "resource", "applies"),
    [
        pytest.param({"Action": "s3:GetObject"}, "S3:getobject", OBJECT_ARN, True, id="action-case-insensitive"),
        pytest.param({"Action": "s3:Get*"}, "s3:GetBucketPolicy", BUCKET_ARN, True, id="action-star"),
        pytest.param({"Action": "s3:Get?bject"}, "s3:GetObject", OBJECT_ARN, True, id="action-question"),
        pytest.param({"Action": "s3:Get?bject"}, "s3:GetOObject", OBJECT_ARN, False, id="action-question-one-char"),
        pytest.param({"Action": ["s3:PutObject", "s3:List*"]}, "s3:ListBucket", BUCKET_ARN, True, id="action-list"),
        pytest.param({"Action": "s3:PutObject"}, "s3:GetObject", OBJECT_ARN, False, id="action-other"),
        pytest.param({"NotAction": "s3:GetObject"}, "s3:PutObject", OBJECT_ARN, True, id="not-action-others"),
        pytest.param({"NotAction": "s3:Get*"}, "s3:GetObject", OBJECT_ARN, False, id="not-action-listed"),
        pytest.param({"Resource": f"{BUCKET_ARN}/data/*"}, "s3:GetObject", OBJECT_ARN, True, id="resource-star"),
        pytest.param({"Resource": f"{BUCKET_ARN}/dat?/*"}, "s3:GetObject", OBJECT_ARN, True, id="resource-question"),
        pytest.param(
            {"Resource": f"{BUCKET_ARN}/DATA/*"}, "s3:GetObject", OBJECT_ARN, False, id="resource-case-sensitive"
        ),
        pytest.param({"Resource": f"{BUCKET_ARN}/*"}, "s3:ListBucket", BUCKET_ARN, False, id="objects-not-bucket"),
        pytest.param({"NotResource": f"{BUCKET_ARN}/public/*"}, "s3:GetObject", OBJECT_ARN, True, id="not-resource"),
        pytest.param(
            {"NotResource": f"{BUCKET_ARN}/data/*"}, "s3:GetObject", OBJECT_ARN, False, id="not-resource-listed"
        ),
        pytest.param(
            {"Resource": f"{BUCKET_ARN}/home/${{aws:username}}/*"},
            "s3:GetObject",
            f"{BUCKET_ARN}/home/alice/x",
            True,
            id="resource-variable",
        ),
    ],
)
def test_statement_applies_action_and_resource(
    fields: dict[str, Any], action: str, resource: str, applies: bool
) -> None:
    obj: dict[str, Any] = {"Sid": "A", "Effect": "Allow", "Principal": "*", **fields}
    if "NotAction" not in obj:
        obj.setdefault("Action", "s3:*")
    if "NotResource" not in obj:
        obj.setdefault("Resource", "*")
    stmt = Statement.parse(obj)
    assert statement_applies(stmt, Request.of(action, resource, {"aws:username": "alice"})) is applies


# --- the AWS facts, in terms of the policies bucketwarden writes ------------------------------------------------


def hand_written_seed() -> PolicyDocument:
    """The seed's hand-written Deny: the IP restriction without any exemption."""
    return doc(deny({"NotIpAddress": {"aws:SourceIp": SEED_CIDRS}}, sid="SourceIPRestriction001"))


@pytest.mark.parametrize(
    ("user_id", "denied"),
    [
        pytest.param(BACKUP_SESSION, False, id="fact01-backup-session-exempt"),
        pytest.param(f"{ROLE_ID}:any-other-session-name", False, id="fact01-every-session-of-the-role"),
        pytest.param(USER_ID, True, id="fact01-iam-user-unique-id-denied"),
        pytest.param(ACCOUNT, True, id="fact01-root-userid-is-account-denied"),
        pytest.param(f"{ACCOUNT}:federated-name", True, id="fact01-federation-token-session-denied"),
        pytest.param(f"{NEW_ROLE_ID}:AWSBackup-{ROLE_NAME}", True, id="fact01-other-role-denied"),
    ],
)
def test_evaluate_fact01_user_id_pattern_exempts_every_session_of_the_role(user_id: str, denied: bool) -> None:
    context = {**user(), "aws:userid": user_id}
    assert evaluate(rendered(), request(**context)).denied is denied


@pytest.mark.parametrize(
    ("policy_key", "request_key", "user_id", "denied"),
    [
        pytest.param("aws:userId", "aws:userid", BACKUP_SESSION, False, id="fact02-key-case-insensitive"),
        pytest.param("aws:userid", "AWS:USERID", BACKUP_SESSION, False, id="fact02-request-key-case-insensitive"),
        pytest.param("aws:userId", "aws:userid", BACKUP_SESSION.lower(), True, id="fact02-values-case-sensitive"),
    ],
)
def test_evaluate_fact02_key_names_fold_values_do_not(
    policy_key: str, request_key: str, user_id: str, denied: bool
) -> None:
    policy = doc(deny({"NotIpAddress": {"aws:SourceIp": SEED_CIDRS}, "StringNotLike": {policy_key: f"{ROLE_ID}:*"}}))
    context = {**backup_session(), request_key: user_id}
    if request_key != "aws:userid":
        del context["aws:userid"]
    assert evaluate(policy, request(**context)).denied is denied


def test_evaluate_fact03_old_role_id_does_not_exempt_the_recreated_role() -> None:
    stale = rendered()  # written while the role had ROLE_ID
    recreated = ResolvedRole(ref=ROLE_NAME, name=ROLE_NAME, arn=ROLE_ARN, role_id=NEW_ROLE_ID)
    session = request(**backup_session(role_id=NEW_ROLE_ID))
    assert evaluate(stale, session).denied  # backups fail again, silently
    assert not evaluate(rendered(roles=[recreated]), session).denied  # following the RoleId fixes it


@pytest.mark.parametrize(
    ("context", "denied"),
    [
        pytest.param(backup_session(), False, id="fact04-backup-session"),
        pytest.param(backup_session(role_id=NEW_ROLE_ID), False, id="fact04-survives-recreation"),
        pytest.param({**backup_session(), "aws:userid": f"{ROLE_ID}:someone-else"}, False, id="fact04-any-session"),
        pytest.param(
            backup_session(role_arn=f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"), True, id="fact04-path-is-part-of-arn"
        ),
        pytest.param(user(), True, id="fact04-others-denied"),
    ],
)
def test_evaluate_fact04_principal_arn_form_exempts_any_session_of_the_role_arn(
    context: dict[str, Any], denied: bool
) -> None:
    policy = rendered(spec(exemptionKey="principalArn"), operator=None)
    assert "ArnNotLike" in policy.statements[0].conditions
    assert evaluate(policy, request(**context)).denied is denied


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("aws:ViaAWSService", id="fact05-via-aws-service"),
        pytest.param("aws:PrincipalIsAWSService", id="fact05-principal-is-aws-service"),
    ],
)
def test_evaluate_fact05_service_keys_cannot_exempt_aws_backup(key: str) -> None:
    # The tempting exemption: deny only when the request did not come from an AWS service.
    policy = doc(deny({"NotIpAddress": {"aws:SourceIp": SEED_CIDRS}, "Bool": {key: "false"}}))
    # AWS Backup acts through its service role, so both keys are false for its requests: still denied.
    assert evaluate(policy, request(**backup_session())).denied


def test_evaluate_fact06_backup_session_shape_from_resolved_role_is_exempt() -> None:
    assert ROLE.session_user_id == BACKUP_SESSION
    assert "/service-role/" in ROLE.arn
    context = {**backup_session(), "aws:userid": ROLE.session_user_id}
    assert evaluate(hand_written_seed(), request(**context)).denied
    assert not evaluate(rendered(), request(**context)).denied


def test_evaluate_fact10_explicit_deny_beats_an_allow_for_the_same_principal() -> None:
    policy = doc(
        allow(Principal={"AWS": USER_ARN}, sid="AllowAlice"),
        deny({"NotIpAddress": {"aws:SourceIp": SEED_CIDRS}}, sid="IpDeny"),
    )
    assert evaluate(policy, request(**user())).sid == "IpDeny"
    inside = evaluate(policy, request(**user("192.0.2.10")))
    assert (inside.decision, inside.sid) == ("Allow", "AllowAlice")


@pytest.mark.parametrize(
    ("context", "denied"),
    [
        pytest.param(user(None, **{"aws:SourceVpce": "vpce-0123456789abcdef0"}), True, id="fact12-no-source-ip-denied"),
        pytest.param(user(None), True, id="fact12-no-network-keys-denied"),
    ],
)
def test_evaluate_fact12_vpc_endpoint_traffic_has_no_source_ip(context: dict[str, Any], denied: bool) -> None:
    assert evaluate(hand_written_seed(), request(**context)).denied is denied
    # Only an ANDed exemption on aws:SourceVpce (or aws:SourceVpc) lets it in.
    with_vpce = rendered(spec(allowedVpcEndpoints=["vpce-0123456789abcdef0"]))
    expected = context.get("aws:SourceVpce") is None
    assert evaluate(with_vpce, request(**context)).denied is expected


def test_evaluate_fact14_ipv4_only_list_denies_a_dual_stack_client_over_ipv6() -> None:
    assert not evaluate(rendered(), request(**user("192.0.2.10"))).denied
    assert evaluate(rendered(), request(**user("2001:db8::10"))).denied
    with_v6 = rendered(spec(allowedSourceIps=[*SEED_CIDRS, "2001:db8::/32"]))
    assert not evaluate(with_v6, request(**user("2001:db8::10"))).denied


@pytest.mark.parametrize("action", ["s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"])
def test_evaluate_fact15_s3_star_covers_the_policy_calls_so_the_operator_needs_its_exemption(action: str) -> None:
    operator = {
        "aws:userid": OPERATOR.user_id,
        "aws:PrincipalArn": OPERATOR.principal_arn,
        "aws:PrincipalAccount": ACCOUNT,
        "aws:SourceIp": AWS_ADDRESS,
    }
    policy_call = request(action, BUCKET_ARN, **operator)
    assert evaluate(rendered(operator=None), policy_call).denied  # locked out
    assert not evaluate(rendered(), policy_call).denied


# --- render -> evaluate agrees with the spec ---------------------------------------------------------------------


def _public(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return not any(net.overlaps(r) for r in NON_PUBLIC_RANGES)


_ipv4_cidrs = st.builds(
    lambda address, prefix: ipaddress.ip_network((address, prefix), strict=False),
    st.integers(min_value=1 << 24, max_value=(223 << 24) - 1),
    st.integers(min_value=8, max_value=32),
)
_ipv6_cidrs = st.builds(
    lambda address, prefix: ipaddress.ip_network((address, prefix), strict=False),
    st.integers(min_value=0x2000 << 112, max_value=(0x4000 << 112) - 1),  # 2000::/3, global unicast
    st.integers(min_value=16, max_value=128),
)
_cidr_sets = st.lists(st.one_of(_ipv4_cidrs, _ipv6_cidrs).filter(_public), min_size=1, max_size=5)


@st.composite
def _addresses(draw: st.DrawFn, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    if draw(st.booleans()):  # inside one of the ranges, so both outcomes are exercised
        net = draw(st.sampled_from(networks))
        offset = draw(st.integers(min_value=0, max_value=net.num_addresses - 1))
        return str(net.network_address + offset)
    if draw(st.booleans()):
        return str(ipaddress.IPv4Address(draw(st.integers(min_value=1 << 24, max_value=(223 << 24) - 1))))
    return str(ipaddress.IPv6Address(draw(st.integers(min_value=0x2000 << 112, max_value=(0x4000 << 112) - 1))))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), networks=_cidr_sets)
def test_evaluate_rendered_policy_agrees_with_the_spec(
    data: st.DataObject, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> None:
    the_spec = spec(allowedSourceIps=[str(n) for n in networks])
    policy = rendered(the_spec)
    address = data.draw(_addresses(networks))
    allowed = any(ipaddress.ip_address(address) in n for n in networks)
    by_user = evaluate(policy, request(**user(address)))
    assert by_user.denied is not allowed
    by_backup = evaluate(policy, request("s3:ListBucket", BUCKET_ARN, **backup_session(address)))
    assert not by_backup.denied


# --- date forms and malformed values (IAM User Guide, "Condition operators": Date, IP address) -------------------


@pytest.mark.parametrize(
    ("value", "now", "expected"),
    [
        pytest.param("2030", "2029-12-31T23:59:59Z", True, id="iam-date-w3c-year"),
        pytest.param("2030", "2030-01-01T00:00:00Z", False, id="iam-date-w3c-year-is-its-first-instant"),
        pytest.param("2030-01", "2029-12-31T23:59:59Z", True, id="iam-date-w3c-year-month"),
        pytest.param("2030-02", "2030-01-31T00:00:00Z", True, id="iam-date-w3c-year-month-february"),
        pytest.param("2030-01-15", "2030-01-14T23:00:00Z", True, id="iam-date-w3c-complete-date"),
        pytest.param("2030-01-15T10:00Z", "2030-01-15T09:59:00Z", True, id="iam-date-w3c-hours-minutes-zone"),
        pytest.param("2030-01-15T10:00:00+02:00", "2030-01-15T08:30:00Z", False, id="iam-date-w3c-offset"),
        pytest.param("2030-01-15T10:00:00.5Z", "2030-01-15T10:00:00Z", True, id="iam-date-w3c-fraction"),
        pytest.param("1893456000", "2029-12-31T23:59:59Z", True, id="iam-date-epoch-seconds"),
    ],
)
def test_condition_date_less_than_accepts_every_w3c_form(value: str, now: str, expected: bool) -> None:
    assert holds({"DateLessThan": {"aws:CurrentTime": value}}, {"aws:CurrentTime": now}) is expected


@pytest.mark.parametrize(
    ("condition", "match"),
    [
        pytest.param({"NotIpAddress": {"aws:SourceIp": "300.1.1.1/8"}}, "300.1.1.1/8", id="iam-ip-invalid-cidr"),
        pytest.param({"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "nope"]}}, "nope", id="iam-ip-one-bad-of-two"),
        pytest.param({"DateLessThan": {"aws:CurrentTime": "2030-13"}}, "2030-13", id="iam-date-invalid-month"),
        pytest.param({"DateGreaterThan": {"aws:CurrentTime": "soon"}}, "soon", id="iam-date-not-a-date"),
    ],
)
def test_evaluate_malformed_condition_value_raises_malformed_policy_naming_the_sid(
    condition: dict[str, Any], match: str
) -> None:
    # AWS rejects such a policy; ignoring the value would make a NotIpAddress true for everyone.
    policy = doc(deny(condition, sid="OfficeOnly"))
    with pytest.raises(InvalidConditionValueError, match="OfficeOnly") as caught:
        evaluate(policy, request(**user()))
    assert match in caught.value.message
    assert caught.value.reason == "MalformedPolicy"
