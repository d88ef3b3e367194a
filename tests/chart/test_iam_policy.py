"""docs/iam-policy.json and docs/irsa-trust-policy.json: valid IAM JSON granting exactly what bucketwarden needs."""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

import pytest
import yaml

from tests.chart.chartkit import REPO_ROOT

DOCS = REPO_ROOT / "docs"
REQUIRED_ACTIONS = {
    "s3:GetBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "iam:GetRole",
    "sts:AssumeRole",
    # AWS Backup readiness checks (switchable off with BUCKETWARDEN_BACKUP_READINESS_CHECKS=false)
    "s3:GetBucketVersioning",
    "iam:ListAttachedRolePolicies",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
    # event-driven drift (BUCKETWARDEN_DRIFT_QUEUE_URL)
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
}  # sts:GetCallerIdentity is called too, but STS answers it without any permission


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DOCS / name).read_text())
    return loaded


@pytest.fixture(scope="module", params=["iam-policy.json", "iam-policy-scoped.json"])
def any_policy(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _load(request.param)


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    return _load("iam-policy.json")


@pytest.fixture(scope="module")
def scoped() -> dict[str, Any]:
    return _load("iam-policy-scoped.json")


def test_iam_policy_grants_exactly_the_needed_actions(any_policy: dict[str, Any]) -> None:
    policy = any_policy
    assert policy["Version"] == "2012-10-17"
    statements = policy["Statement"]
    assert all(s["Effect"] == "Allow" for s in statements)
    assert not [s for s in statements if {"NotAction", "NotResource", "NotPrincipal"} & set(s)]
    granted = {action for s in statements for action in _as_list(s["Action"])}
    assert granted == REQUIRED_ACTIONS
    assert not [a for a in granted if "*" in a]


@pytest.mark.parametrize(
    ("action", "resources"),
    [
        pytest.param("s3:GetBucketPolicy", ["arn:aws:s3:::*"], id="s3-get"),
        pytest.param("s3:PutBucketPolicy", ["arn:aws:s3:::*"], id="s3-put"),
        pytest.param("s3:DeleteBucketPolicy", ["arn:aws:s3:::*"], id="s3-delete"),
        pytest.param("iam:GetRole", ["arn:aws:iam::*:role/*"], id="iam-get-role"),
        pytest.param("sts:AssumeRole", ["arn:aws:iam::*:role/*"], id="sts-assume-role"),
        pytest.param("s3:GetBucketVersioning", ["arn:aws:s3:::*"], id="s3-versioning"),
        pytest.param("iam:ListAttachedRolePolicies", ["arn:aws:iam::*:role/*"], id="iam-attached"),
        pytest.param("iam:ListRolePolicies", ["arn:aws:iam::*:role/*"], id="iam-inline-list"),
        pytest.param("iam:GetRolePolicy", ["arn:aws:iam::*:role/*"], id="iam-inline-get"),
        pytest.param("sqs:ReceiveMessage", ["arn:aws:sqs:*:*:bucketwarden-drift*"], id="sqs-receive"),
    ],
)
def test_iam_policy_scopes_each_action(action: str, resources: list[str], policy: dict[str, Any]) -> None:
    [statement] = [s for s in policy["Statement"] if action in _as_list(s["Action"])]
    assert _as_list(statement["Resource"]) == resources


def test_iam_policy_grants_nothing_for_get_caller_identity(any_policy: dict[str, Any]) -> None:
    actions = {a.lower() for s in any_policy["Statement"] for a in _as_list(s["Action"])}
    assert "sts:getcalleridentity" not in actions
    assert "needs no permission" in (DOCS / "iam.md").read_text()


def _statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    statement: dict[str, Any]
    [statement] = [s for s in policy["Statement"] if s["Sid"] == sid]
    return statement


def test_scoped_iam_policy_has_the_same_statements_with_narrow_resources(
    policy: dict[str, Any], scoped: dict[str, Any]
) -> None:
    assert [(s["Sid"], s["Action"]) for s in scoped["Statement"]] == [
        (s["Sid"], s["Action"]) for s in policy["Statement"]
    ]
    for resource in _as_list(_statement(scoped, "ManageBucketPolicies")["Resource"]):
        bucket = resource.removeprefix("arn:aws:s3:::")
        assert resource.startswith("arn:aws:s3:::") and bucket.rstrip("*") and "*" not in bucket[:-1]
        assert "/" not in bucket  # bucket policy actions act on the bucket ARN
    for sid in ("ResolveRoleIds", "AssumeRoleForCrossAccountBuckets"):
        for resource in _as_list(_statement(scoped, sid)["Resource"]):
            assert re.fullmatch(r"arn:aws:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]+\*?", resource), resource


def test_scoped_iam_policy_covers_the_example_tenant_policies(scoped: dict[str, Any]) -> None:
    """The scoped policy allows exactly the buckets and roles examples/tenantpolicies/ grants, no more."""
    grants = [
        yaml.safe_load(path.read_text())["spec"]
        for path in sorted((REPO_ROOT / "examples" / "tenantpolicies").glob("*.yaml"))
    ]
    patterns = {p for spec in grants for p in spec["buckets"]}
    resources = {
        r.removeprefix("arn:aws:s3:::") for r in _as_list(_statement(scoped, "ManageBucketPolicies")["Resource"])
    }
    assert patterns == resources
    roles = {arn for spec in grants for arn in spec.get("assumeRoleArns", [])}
    assume = _statement(scoped, "AssumeRoleForCrossAccountBuckets")
    assert roles and all(
        any(fnmatch.fnmatchcase(arn, resource) for resource in _as_list(assume["Resource"])) for arn in roles
    )


def test_scoped_iam_policy_assumes_only_tenant_roles_with_an_external_id_and_a_named_session(
    scoped: dict[str, Any],
) -> None:
    """sts:AssumeRole only on one path of tenant roles, only with an ExternalId, only as a bw-<namespace>-<name>
    session: a TenantPolicy that forgot the ExternalId, or a role outside the path, fails at STS too."""
    assume = _statement(scoped, "AssumeRoleForCrossAccountBuckets")
    for resource in _as_list(assume["Resource"]):
        account_and_path = resource.split(":role/", 1)[1]
        assert account_and_path.endswith("/*") and account_and_path.count("*") == 1, resource  # role/<path>/*
    condition = assume["Condition"]
    assert condition["Null"] == {"sts:ExternalId": "false"}
    assert condition["StringLike"] == {"sts:RoleSessionName": "bw-*"}


def test_iam_policy_keeps_assume_role_in_its_own_statement(policy: dict[str, Any]) -> None:
    [statement] = [s for s in policy["Statement"] if s.get("Sid") == "AssumeRoleForCrossAccountBuckets"]
    assert _as_list(statement["Action"]) == ["sts:AssumeRole"]
    sids = [s.get("Sid") for s in policy["Statement"]]
    assert all(sids)
    assert len(set(sids)) == len(sids)
    assert "AssumeRoleForCrossAccountBuckets" in (DOCS / "iam.md").read_text()


def test_irsa_trust_policy_trusts_only_the_operator_service_account() -> None:
    trust = _load("irsa-trust-policy.json")
    assert trust["Version"] == "2012-10-17"
    [statement] = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert ":oidc-provider/" in statement["Principal"]["Federated"]
    conditions = statement["Condition"]["StringEquals"]
    assert {k.rsplit(":", 1)[1]: v for k, v in conditions.items()} == {
        "sub": "system:serviceaccount:bucketwarden:bucketwarden",
        "aud": "sts.amazonaws.com",
    }


def test_iam_doc_describes_pod_identity_alternative() -> None:
    doc = (DOCS / "iam.md").read_text()
    for needle in ("pods.eks.amazonaws.com", "sts:TagSession", "sts:AssumeRole", "irsa-trust-policy.json"):
        assert needle in doc
