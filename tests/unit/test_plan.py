"""Planning a change by meaning: none, put or delete, with a readable diff."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bucketwarden.policy import PolicyDocument, Statement, diff_policies, merge_policy, plan_change

BUCKET_ARN = "arn:aws:s3:::awsbackup-test-001"
OURS: dict[str, Any] = {
    "Sid": "BucketWardenIpRestriction",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": [BUCKET_ARN, f"{BUCKET_ARN}/*"],
    "Condition": {
        "StringNotLike": {"aws:userId": "AROASAMPLESAMPLESAMPL:*"},
        "NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]},
    },
}
FOREIGN: dict[str, Any] = {
    "Sid": "AllowCloudFrontRead",
    "Effect": "Allow",
    "Principal": {"Service": "cloudfront.amazonaws.com"},
    "Action": "s3:GetObject",
    "Resource": f"{BUCKET_ARN}/*",
}


def policy(*statements: dict[str, Any], **top: Any) -> PolicyDocument:
    return PolicyDocument.from_obj({"Version": "2012-10-17", **top, "Statement": list(statements)})


# The same document as another writer (the console, Terraform, S3 itself) might hand it back: statement and key
# order, value order, "x" vs ["x"], condition key and action case all differ; the meaning does not.
REWRITTEN: dict[str, Any] = {
    "Statement": [
        {
            "Resource": f"{BUCKET_ARN}/*",
            "Action": ["S3:GetObject"],
            "Principal": {"Service": ["cloudfront.amazonaws.com"]},
            "Effect": "Allow",
            "Sid": "AllowCloudFrontRead",
        },
        {
            "Condition": {
                "NotIpAddress": {"aws:sourceip": ["203.0.113.0/24", "192.0.2.0/24"]},
                "StringNotLike": {"AWS:UserId": ["AROASAMPLESAMPLESAMPL:*"]},
            },
            "Resource": [f"{BUCKET_ARN}/*", BUCKET_ARN],
            "Action": ["s3:*"],
            "Principal": "*",
            "Effect": "Deny",
            "Sid": "BucketWardenIpRestriction",
        },
    ],
    "Version": "2012-10-17",
}


@pytest.mark.parametrize(
    ("observed", "desired", "action"),
    [
        pytest.param(None, None, "none", id="nothing-and-nothing"),
        pytest.param(None, policy(OURS), "put", id="create"),
        pytest.param(policy(OURS), None, "delete", id="delete"),
        pytest.param(policy(OURS, FOREIGN), policy(OURS, FOREIGN), "none", id="identical"),
        pytest.param(policy(FOREIGN, OURS), policy(OURS, FOREIGN), "none", id="reordered"),
        pytest.param(PolicyDocument.from_obj(REWRITTEN), policy(OURS, FOREIGN), "none", id="same-meaning-other-text"),
        pytest.param(policy(FOREIGN), policy(FOREIGN, OURS), "put", id="ours-missing"),
        pytest.param(
            policy({**OURS, "Condition": {"NotIpAddress": OURS["Condition"]["NotIpAddress"]}}),
            policy(OURS),
            "put",
            id="exemption-missing",
        ),
    ],
)
def test_plan_change_decides_by_meaning(
    observed: PolicyDocument | None, desired: PolicyDocument | None, action: str
) -> None:
    plan = plan_change(observed, desired)
    assert plan.action == action
    assert plan.changes == (action != "none")
    assert plan.desired is desired
    assert (plan.diff == "") == (action == "none")


def test_plan_change_same_meaning_other_string_never_writes() -> None:
    # The endless update loop of ACK (community#1967) and Crossplane (provider-aws#1757, provider-upjet-aws#2149):
    # S3 hands back a document that differs as a string from what was written, and a string compare re-PUTs it.
    observed = PolicyDocument.parse(json.dumps(REWRITTEN, indent=4))
    desired = merge_policy(observed, Statement.parse(OURS), ["SourceIPRestriction001"])
    assert observed.to_json() != desired.to_json()
    plan = plan_change(observed, desired)
    assert plan.action == "none"
    assert plan.diff == ""


def test_plan_change_diff_is_a_readable_unified_diff() -> None:
    stale = json.loads(json.dumps(OURS))
    stale["Condition"]["NotIpAddress"]["aws:SourceIp"] = ["192.0.2.0/24", "198.51.100.0/24"]
    plan = plan_change(policy(FOREIGN, stale), policy(FOREIGN, OURS))
    assert plan.action == "put"
    lines = plan.diff.splitlines()
    assert lines[:2] == ["--- current", "+++ desired"]
    changed = [line[0] + line[1:].strip() for line in lines[2:] if line.startswith(("-", "+"))]
    # Only the CIDR that changed is removed and added; the rest, the foreign statement too, is context.
    assert changed == ['-"198.51.100.0/24"', '+"203.0.113.0/24"']


def test_plan_change_delete_diff_removes_every_line() -> None:
    observed = policy(OURS)
    plan = plan_change(observed, None)
    body = plan.diff.splitlines()[3:]  # after the ---, +++ and @@ lines
    assert body
    assert all(line.startswith("-") for line in body)
    assert len(body) == len(observed.to_json(pretty=True).splitlines())


def test_plan_change_create_diff_adds_every_line() -> None:
    desired = policy(OURS)
    body = plan_change(None, desired).diff.splitlines()[3:]
    assert all(line.startswith("+") for line in body)
    assert "".join(line[1:] for line in body) == "".join(desired.to_json(pretty=True).splitlines())


@pytest.mark.parametrize(
    "top",
    [
        pytest.param({"Version": "2008-10-17"}, id="from-2008"),
        pytest.param({}, id="from-no-version"),
    ],
)
def test_plan_change_keeps_a_legacy_version_without_a_write(top: dict[str, Any]) -> None:
    # A 2008-10-17 document is not upgraded (it would turn ${...} in foreign statements into variables), so a
    # document that already carries our statement needs no write at all.
    observed = PolicyDocument.from_obj({**top, "Statement": [OURS]})
    desired = merge_policy(observed, Statement.parse(OURS), [])
    plan = plan_change(observed, desired)
    assert plan.action == "none"
    assert json.loads(desired.to_json())["Version"] == "2008-10-17"


def test_diff_policies_is_empty_for_identical_text() -> None:
    assert diff_policies(policy(OURS), policy(OURS)) == ""
    assert diff_policies(None, None) == ""
