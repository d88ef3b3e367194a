"""Issue 21: no wrong Pass. One row per class of wrong Pass (and of Unknown where AWS's answer is known), each with
the AWS documentation rule that decides it; the expected verdicts come from that rule, never from bucketwarden."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bucketwarden.policy import (
    FOREIGN_DENY_BLOCKS_EXEMPT_ROLE,
    FOREIGN_DENY_BLOCKS_OPERATOR,
    PolicyDocument,
    evaluate,
    merge_policy,
    ranges_from_ip_ranges_json,
    render_statement,
    verify_policy,
)
from bucketwarden.principals import ResolvedRole
from bucketwarden.spec import ProtectedBucketSpec
from tests.seed import ACCOUNT, BUCKET, BUCKET_ARN, OPERATOR, ROLE, ROLE_ARN, ROLE_ID, ROLE_NAME

EVERYTHING = [BUCKET_ARN, f"{BUCKET_ARN}/*"]
# Offline without --role-arn: the path is a guess.
ROLE_GUESSED = ResolvedRole(
    ref=ROLE_NAME, name=ROLE_NAME, arn=f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}", role_id=ROLE_ID, path_known=False
)
NOW = 1_795_000_000.0

# The IAM documentation rules the rows cite.
VARIABLES = "IAM User Guide, Policy variables: 'Where you can use policy variables' (Resource, NotResource, Condition)"
NO_VALUE = "IAM User Guide, Policy variables: 'Request information with no value'"
VERSION = "IAM User Guide, IAM JSON policy elements: Version (2008-10-17 has no policy variables)"
IF_EXISTS = "IAM User Guide, Condition operators: '...IfExists condition operators'"
NULL = "IAM User Guide, Condition operators: 'Condition operator to check existence of condition keys' (Null)"
SAR_S3 = "Service Authorization Reference, Amazon S3: condition keys per action"
SOURCE_IP = "AWS General Reference, 'AWS IP address ranges'; IAM global condition keys: aws:SourceIp"
MANAGED = "AWS Managed Policy Reference: AWSBackupServiceRolePolicyForS3Backup / ...ForS3Restore"
PRINCIPAL_ARN = "IAM global condition keys: aws:PrincipalArn (a role session's is the role ARN, with its path)"
SESSION = "IAM User Guide, Principal element: role session ARN (the session name AWS Backup uses is not documented)"
TOKEN = "IAM global condition keys: aws:TokenIssueTime (present for temporary credentials)"


def spec(**fields: Any) -> ProtectedBucketSpec:
    base: dict[str, Any] = {
        "bucketName": BUCKET,
        "allowedSourceIps": ["192.0.2.0/24"],
        "exemptRoles": [{"name": ROLE_NAME}],
    }
    return ProtectedBucketSpec.model_validate({**base, **fields})


def deny(**elements: Any) -> dict[str, Any]:
    return {"Sid": "Foreign", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": EVERYTHING, **elements}


def policy_with(
    the_spec: ProtectedBucketSpec, statement: dict[str, Any], version: str = "2012-10-17"
) -> PolicyDocument:
    existing = PolicyDocument.from_obj({"Version": version, "Statement": [statement]})
    return merge_policy(existing, render_statement(the_spec, [ROLE], OPERATOR), the_spec.owned_sids)


TAGGED = {"verificationContext": {"principalTags": [{"key": "team", "value": "backup"}]}}
CASES = [
    # --- variables ---
    pytest.param(
        deny(Resource=f"{BUCKET_ARN}/${{aws:PrincipalAccount}}/*"), {}, "Fail", VARIABLES, id="var-resource-known"
    ),
    pytest.param(
        deny(Resource=f"{BUCKET_ARN}/${{aws:PrincipalTag/team}}/*"), {}, "Unknown", VARIABLES, id="var-resource-unknown"
    ),
    pytest.param(
        deny(Resource=f"{BUCKET_ARN}/${{aws:PrincipalTag/team}}/*"), TAGGED, "Fail", VARIABLES, id="var-resource-stated"
    ),
    pytest.param(
        deny(Resource=f"{BUCKET_ARN}/${{aws:username}}/*"),
        {},
        "Pass",
        NO_VALUE,
        id="var-resource-no-value-role-session",
    ),
    pytest.param(
        deny(Resource=None, NotResource=[BUCKET_ARN, f"{BUCKET_ARN}/${{aws:PrincipalAccount}}/*"]),
        {},
        "Fail",
        VARIABLES,
        id="var-notresource-known",
    ),
    pytest.param(
        deny(Resource=None, NotResource=[BUCKET_ARN, f"{BUCKET_ARN}/${{aws:PrincipalTag/team}}*"]),
        {},
        "Unknown",
        VARIABLES,
        id="var-notresource-unknown",
    ),
    pytest.param(
        deny(Condition={"StringNotLike": {"aws:userid": "${aws:PrincipalTag/owner}:*"}}),
        {},
        "Unknown",
        VARIABLES,
        id="var-condition-unknown",
    ),
    pytest.param(
        deny(Condition={"StringNotEquals": {"aws:PrincipalAccount": "${aws:ResourceAccount}"}}),
        {},
        "Pass",
        VARIABLES,
        id="var-condition-known-same-account",
    ),
    pytest.param(
        deny(Condition={"StringNotEquals": {"aws:userid": "${aws:username}"}}),
        {},
        "Fail",
        NO_VALUE,
        id="var-condition-no-value-negated-matches",
    ),
    # --- action-specific keys ---
    pytest.param(
        deny(Action="s3:GetObject", Condition={"NumericLessThanIfExists": {"s3:max-keys": "10"}}),
        {},
        "Fail",
        f"{IF_EXISTS}; {SAR_S3}",
        id="key-ifexists-max-keys-on-getobject",
    ),
    pytest.param(
        deny(Condition={"Null": {"s3:x-amz-server-side-encryption": "true"}}),
        {},
        "Fail",
        f"{NULL}; {SAR_S3}",
        id="key-null-sse-across-s3-star",
    ),
    pytest.param(
        deny(
            Action="s3:GetObject",
            Condition={"StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "k"}},
        ),
        {},
        "Fail",
        SAR_S3,
        id="key-negated-kms-key-id-on-getobject",
    ),
    pytest.param(
        deny(
            Action="s3:ListBucket",
            Resource=BUCKET_ARN,
            Condition={"StringNotEquals": {"s3:ExistingObjectTag/class": "x"}},
        ),
        {},
        "Fail",
        SAR_S3,
        id="key-negated-existing-object-tag-on-listbucket",
    ),
    pytest.param(
        deny(Action="s3:GetObject", Condition={"StringEquals": {"s3:ExistingObjectTag/class": "public"}}),
        {},
        "Unknown",
        SAR_S3,
        id="key-supported-but-unknown-stays-unknown",
    ),
    # --- the public address space ---
    pytest.param(
        deny(Condition={"IpAddress": {"aws:SourceIp": ["13.0.0.0/8", "15.0.0.0/8", "35.0.0.0/8"]}}),
        {},
        "Unknown",
        SOURCE_IP,
        id="ip-deny-part-of-public-space",
    ),
    pytest.param(
        deny(Condition={"NotIpAddress": {"aws:SourceIp": ["3.0.0.0/8", "52.0.0.0/8", "54.0.0.0/8"]}}),
        {},
        "Unknown",
        SOURCE_IP,
        id="ip-notipaddress-some-aws-slash-8s",
    ),
    pytest.param(
        deny(Condition={"IpAddress": {"aws:SourceIp": ["0.0.0.0/0", "::/0"]}}),
        {},
        "Fail",
        SOURCE_IP,
        id="ip-deny-every-address",
    ),
    pytest.param(
        deny(Condition={"IpAddress": {"aws:SourceIp": ["13.0.0.0/8"]}}),
        {"verificationContext": {"awsSourceRanges": ["13.248.0.0/16"]}},
        "Fail",
        SOURCE_IP,
        id="ip-stated-ranges-inside-the-deny",
    ),
    pytest.param(
        deny(Condition={"IpAddress": {"aws:SourceIp": ["13.0.0.0/8"]}}),
        {"verificationContext": {"awsSourceRanges": ["52.216.0.0/15"]}},
        "Pass",
        SOURCE_IP,
        id="ip-stated-ranges-outside-the-deny",
    ),
    # --- the managed policies' current actions ---
    pytest.param(
        deny(Action="s3:ListTagsForResource", Resource=BUCKET_ARN),
        {},
        "Fail",
        MANAGED,
        id="managed-listtagsforresource",
    ),
    pytest.param(
        deny(Action="s3:GetObjectVersionTagging", Resource=f"{BUCKET_ARN}/*"),
        {},
        "Fail",
        MANAGED,
        id="managed-backup-object-action",
    ),
    # --- a role session's token ---
    pytest.param(
        deny(Condition={"Null": {"aws:TokenIssueTime": "true"}}), {}, "Pass", TOKEN, id="token-issue-time-present"
    ),
    pytest.param(
        deny(Condition={"DateLessThan": {"aws:TokenIssueTime": "2020-01-01T00:00:00Z"}}),
        {},
        "Unknown",
        TOKEN,
        id="token-issue-time-value-unknown",
    ),
]


@pytest.mark.parametrize(("statement", "fields", "verdict", "rule"), CASES)
def test_verify_policy_never_passes_where_aws_would_deny(
    statement: dict[str, Any], fields: dict[str, Any], verdict: str, rule: str
) -> None:
    statement = {k: v for k, v in statement.items() if v is not None}
    the_spec = spec(**fields)
    policy = policy_with(the_spec, statement)
    verification = verify_policy(the_spec, [ROLE], OPERATOR, policy, now=NOW)
    assert verification.verdict_for("backup") == verdict, (rule, [u.describe() for u in verification.unknowns])
    if verdict == "Fail":
        example = next(c for c in verification.counterexamples if c.promise == "backup")
        assert evaluate(policy, example.request).denied, (rule, example.describe())
    if verdict == "Unknown":
        assert verification.unknown_keys, rule


def test_verify_policy_unknown_variable_is_named() -> None:
    policy = policy_with(spec(), deny(Resource=f"{BUCKET_ARN}/${{aws:PrincipalTag/team}}/*"))
    verification = verify_policy(spec(), [ROLE], OPERATOR, policy, now=NOW)
    assert "${aws:principaltag/team}" in verification.unknown_keys


def test_verify_policy_version_2008_keeps_variables_literal_in_the_witness() -> None:
    policy = policy_with(spec(), deny(Resource=f"{BUCKET_ARN}/${{aws:PrincipalAccount}}/*"), version="2008-10-17")
    verification = verify_policy(spec(), [ROLE], OPERATOR, policy, now=NOW)
    example = next(c for c in verification.counterexamples if c.promise == "backup")
    assert "${aws:PrincipalAccount}/" in example.resource  # a key spelled that way, as AWS reads it (VERSION)
    assert evaluate(policy, example.request).denied


def test_verify_policy_restore_only_deny_does_not_say_backups_fail() -> None:
    policy = policy_with(spec(), deny(Action=["s3:PutObject", "s3:DeleteObject"], Resource=f"{BUCKET_ARN}/*"))
    verification = verify_policy(spec(), [ROLE], OPERATOR, policy, now=NOW)
    assert verification.verdicts == {"network": "Pass", "backup": "Pass", "restore": "Fail", "operator": "Pass"}
    [finding] = [f for f in verification.findings if f.code == FOREIGN_DENY_BLOCKS_EXEMPT_ROLE]
    assert "restores into this bucket" in finding.message and "backup jobs" not in finding.message


def test_verify_policy_foreign_deny_on_the_operator_has_its_own_code() -> None:
    statement = deny(
        Action="s3:PutBucketPolicy", Resource=BUCKET_ARN, Condition={"StringNotLike": {"aws:userid": f"{ROLE_ID}:*"}}
    )
    policy = policy_with(spec(), statement)
    verification = verify_policy(spec(), [ROLE], OPERATOR, policy, now=NOW)
    codes = {f.code for f in verification.findings if f.severity == "Error"}
    assert codes == {FOREIGN_DENY_BLOCKS_OPERATOR}
    assert not any("AWS Backup" in f.message for f in verification.findings if f.code == FOREIGN_DENY_BLOCKS_OPERATOR)
    assert verification.verdicts["backup"] == "Pass" and verification.verdicts["operator"] == "Fail"


ROLE_PATH_DENY = deny(
    Principal=None,
    NotPrincipal={
        "AWS": [
            ROLE_ARN,
            f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/AWSBackup-{ROLE_NAME}",
            f"arn:aws:iam::{ACCOUNT}:root",
        ]
    },
    Condition={"StringNotLike": {"aws:userid": "AROAOPERATOREXAMPLE01:*"}},
)


@pytest.mark.parametrize(
    ("role", "statement", "verdict", "rule"),
    [
        pytest.param(
            ROLE_GUESSED,
            deny(Condition={"ArnNotLike": {"aws:PrincipalArn": ROLE_ARN}}),
            "Unknown",
            PRINCIPAL_ARN,
            id="unknown-path-principalarn",
        ),
        pytest.param(
            ROLE, deny(Condition={"ArnNotLike": {"aws:PrincipalArn": ROLE_ARN}}), "Pass", PRINCIPAL_ARN, id="known-path"
        ),
        pytest.param(
            replace(ROLE, arn=f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"),
            deny(Condition={"ArnNotLike": {"aws:PrincipalArn": ROLE_ARN}}),
            "Fail",
            PRINCIPAL_ARN,
            id="known-other-path",
        ),
        pytest.param(ROLE, ROLE_PATH_DENY, "Unknown", SESSION, id="session-name-decides"),
        pytest.param(
            ROLE,
            deny(Condition={"StringNotLike": {"aws:userid": [f"{ROLE_ID}:*", "AROAOPERATOREXAMPLE01:*"]}}),
            "Pass",
            SESSION,
            id="session-name-irrelevant",
        ),
    ],
)
def test_verify_policy_role_path_and_session_name_are_assumptions(
    role: ResolvedRole, statement: dict[str, Any], verdict: str, rule: str
) -> None:
    the_spec = spec()
    statement = {k: v for k, v in statement.items() if v is not None}
    existing = PolicyDocument.from_obj({"Version": "2012-10-17", "Statement": [statement]})
    policy = merge_policy(existing, render_statement(the_spec, [role], OPERATOR), the_spec.owned_sids)
    verification = verify_policy(the_spec, [role], OPERATOR, policy, now=NOW)
    assert verification.verdict_for("backup") == verdict, (rule, [u.describe() for u in verification.unknowns])


def test_verify_policy_synthetic_ip_ranges_file_narrows_the_address_space(tmp_path: Path) -> None:
    ranges = {
        "syncToken": "1",
        "createDate": "2026-12-01-00-00-00",
        "prefixes": [
            {"ip_prefix": "52.216.0.0/15", "region": "us-east-1", "service": "S3", "network_border_group": "us-east-1"},
            {"ip_prefix": "3.5.0.0/19", "region": "us-east-1", "service": "S3", "network_border_group": "us-east-1"},
        ],
        "ipv6_prefixes": [
            {"ipv6_prefix": "2600:1fa0::/32", "region": "us-east-1", "service": "S3", "network_border_group": "x"}
        ],
    }
    path = tmp_path / "ip-ranges.json"
    path.write_text(json.dumps(ranges), encoding="utf-8")
    aws = ranges_from_ip_ranges_json(path.read_text(encoding="utf-8"))
    assert aws == ("52.216.0.0/15", "3.5.0.0/19", "2600:1fa0::/32")
    the_spec = spec()

    def backup(condition: dict[str, Any]) -> str:
        policy = policy_with(the_spec, deny(Condition=condition))
        return verify_policy(the_spec, [ROLE], OPERATOR, policy, now=NOW, aws_ranges=aws).verdict_for("backup")

    assert backup({"IpAddress": {"aws:SourceIp": ["13.0.0.0/8"]}}) == "Pass"  # no listed range in 13/8
    assert backup({"IpAddress": {"aws:SourceIp": ["52.0.0.0/8"]}}) == "Unknown"  # some listed ranges, not all
    assert backup({"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24"]}}) == "Fail"  # every listed range
    assert backup({"IpAddress": {"aws:SourceIp": ["52.0.0.0/8", "3.0.0.0/8", "2600::/16"]}}) == "Fail"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[]", id="not-an-object"),
        pytest.param('{"prefixes": [{"x": 1}]}', id="no-prefix"),
        pytest.param("{", id="not-json"),
    ],
)
def test_ranges_from_ip_ranges_json_rejects_what_is_not_the_format(text: str) -> None:
    with pytest.raises(ValueError, match=r"JSON|ip_prefix|format"):
        ranges_from_ip_ranges_json(text)


@pytest.mark.parametrize(
    ("cidrs", "verdict"),
    [
        pytest.param(["13.0.0.0/8"], "Unknown", id="part-of-the-internet-may-be-where-the-operator-runs"),
        pytest.param(["0.0.0.0/0", "::/0"], "Fail", id="everywhere"),
        pytest.param(["192.0.2.0/24"], "Pass", id="only-the-allowed-range-where-ours-lets-it-in"),
    ],
)
def test_verify_policy_operator_address_is_judged_over_every_public_address_outside_the_allowed_ranges(
    cidrs: list[str], verdict: str
) -> None:
    statement = deny(
        Action="s3:PutBucketPolicy",
        Resource=BUCKET_ARN,
        Condition={"IpAddress": {"aws:SourceIp": cidrs}, "StringNotLike": {"aws:userid": f"{ROLE_ID}:*"}},
    )
    policy = policy_with(spec(), statement)
    verification = verify_policy(spec(), [ROLE], OPERATOR, policy, now=NOW)
    assert verification.verdict_for("operator") == verdict, SOURCE_IP
