"""adoptSids takes over only what our statement supersedes: IP/VPC Denies for everyone on this bucket."""

from __future__ import annotations

from typing import Any

import pytest

from bucketwarden.policy import (
    ADOPTION_REFUSED,
    PolicyDocument,
    Statement,
    bucket_arns,
    check_adoption,
    statement_hash,
    supersede_problems,
)

BUCKET = "team-b-data"
ARNS = bucket_arns(BUCKET)


def deny(**overrides: Any) -> dict[str, Any]:
    stmt: dict[str, Any] = {
        "Sid": "Old",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": list(ARNS),
        "Condition": {"NotIpAddress": {"aws:SourceIp": ["198.51.100.0/24"]}},
    }
    stmt.update(overrides)
    return {k: v for k, v in stmt.items() if v is not None}


SUPERSEDABLE = [
    pytest.param(deny(), id="ip-deny"),
    pytest.param(deny(Principal={"AWS": "*"}), id="principal-aws-star"),
    pytest.param(deny(Action=["s3:GetObject", "s3:PutObject"]), id="action-subset"),
    pytest.param(deny(Action="S3:Get*"), id="action-wildcard-any-case"),
    pytest.param(deny(Resource=f"arn:aws:s3:::{BUCKET}/*"), id="objects-only"),
    pytest.param(deny(Condition={"NotIpAddressIfExists": {"aws:SourceIp": "198.51.100.0/24"}}), id="ip-if-exists"),
    pytest.param(deny(Condition={"StringNotEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}), id="vpce"),
    pytest.param(deny(Condition={"StringNotLikeIfExists": {"aws:sourceVpc": "vpc-1a2b3c4d"}}), id="vpc-key-case"),
    pytest.param(
        deny(
            Condition={
                "NotIpAddress": {"aws:SourceIp": "198.51.100.0/24"},
                "StringNotLike": {"aws:userId": "AROAEXAMPLE:*"},
                "ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/admin"},
            }
        ),
        id="ip-with-exemptions",
    ),
    pytest.param(
        deny(
            Condition={"NotIpAddress": {"aws:SourceIp": "198.51.100.0/24"}, "ArnNotEquals": {"aws:PrincipalArn": "x"}}
        ),
        id="arn-not-equals-exemption",
    ),
]

REFUSED = [
    pytest.param(
        {
            "Sid": "SecurityTeamDenyDelete",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:DeleteBucket",
            "Resource": ARNS[0],
            "Condition": {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/security"}},
        },
        "no network key",
        id="security-team-deny-delete",
    ),
    pytest.param(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": list(ARNS),
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        "aws:securetransport",
        id="deny-insecure-transport",
    ),
    pytest.param(deny(Effect="Allow"), "not Deny", id="allow"),
    pytest.param(deny(Principal={"AWS": "arn:aws:iam::123456789012:root"}), 'Principal is not "*"', id="principal"),
    pytest.param(
        deny(Principal=None, NotPrincipal={"AWS": "arn:aws:iam::123456789012:root"}), "NotPrincipal", id="notprincipal"
    ),
    pytest.param(deny(Action=None, NotAction="s3:GetObject"), "NotAction", id="notaction"),
    pytest.param(deny(Action=["s3:GetObject", "kms:Decrypt"]), "outside s3", id="non-s3-action"),
    pytest.param(deny(Action="*"), "outside s3", id="action-star"),
    pytest.param(deny(Resource="arn:aws:s3:::other-bucket/*"), "other than this bucket", id="other-bucket"),
    pytest.param(deny(Resource="*"), "other than this bucket", id="resource-star"),
    pytest.param(deny(Resource=None, NotResource="arn:aws:s3:::x"), "NotResource", id="notresource"),
    pytest.param(deny(Condition=None), "no condition", id="unconditional"),
    pytest.param(deny(Condition={"IpAddress": {"aws:SourceIp": "198.51.100.0/24"}}), "IpAddress on", id="ip-positive"),
    pytest.param(
        deny(Condition={"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}), "StringEquals on", id="vpce-positive"
    ),
    pytest.param(
        deny(Condition={"StringNotLike": {"aws:userid": "AROAEXAMPLE:*"}}), "no network key", id="exemption-only"
    ),
    pytest.param(
        deny(
            Condition={
                "NotIpAddress": {"aws:SourceIp": "198.51.100.0/24"},
                "StringEquals": {"s3:prefix": "secret/"},
            }
        ),
        "s3:prefix",
        id="ip-and-other-key",
    ),
]


@pytest.mark.parametrize("raw", SUPERSEDABLE)
def test_supersede_problems_accepts_ip_and_vpc_restrictions(raw: dict[str, Any]) -> None:
    assert supersede_problems(Statement.parse(raw), ARNS) == []


@pytest.mark.parametrize(("raw", "why"), REFUSED)
def test_supersede_problems_names_why_a_statement_cannot_be_adopted(raw: dict[str, Any], why: str) -> None:
    problems = supersede_problems(Statement.parse(raw), ARNS)
    assert problems and any(why in p for p in problems), problems


def test_check_adoption_refuses_by_sid_and_hashes_what_it_adopts() -> None:
    security = REFUSED[0].values[0]
    transport = REFUSED[1].values[0]
    doc = PolicyDocument.from_obj({"Version": "2012-10-17", "Statement": [deny(), security, transport]})

    ok = check_adoption(doc, ["Old"], ARNS)
    refused = check_adoption(doc, ["Old", "SecurityTeamDenyDelete", "DenyInsecureTransport", "Absent"], ARNS)

    assert ok.ok and [a.sid for a in ok.adopted] == ["Old"]
    assert ok.adopted[0].hash == statement_hash(doc.statements[0])
    assert not refused.ok
    assert {(f.code, f.severity, f.sid) for f in refused.refused} == {
        (ADOPTION_REFUSED, "Error", "SecurityTeamDenyDelete"),
        (ADOPTION_REFUSED, "Error", "DenyInsecureTransport"),
    }
    assert all("nothing was written" in f.message for f in refused.refused)
    summary = refused.summary()
    assert summary.startswith("refusing to adopt 'SecurityTeamDenyDelete': its conditions name no network key")
    assert "'DenyInsecureTransport': its condition Bool aws:securetransport" in summary
    assert summary.count("Only a Deny") == 1 and summary.endswith("nothing was written")


def test_check_adoption_of_nothing_is_ok() -> None:
    assert check_adoption(None, ["Old"], ARNS).ok
    assert check_adoption(PolicyDocument.from_obj({"Statement": [deny()]}), [], ARNS).adopted == ()


def test_statement_hash_is_by_meaning() -> None:
    a = Statement.parse(deny(Action=["s3:*"]))
    b = Statement.parse({**deny(), "Resource": list(reversed(ARNS))})
    assert statement_hash(a) == statement_hash(b) != statement_hash(Statement.parse(deny(Action="s3:GetObject")))
