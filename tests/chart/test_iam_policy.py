"""docs/iam-policy.json and docs/irsa-trust-policy.json: valid IAM JSON granting exactly what bucketwarden needs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chartkit import REPO_ROOT

DOCS = REPO_ROOT / "docs"
REQUIRED_ACTIONS = {
    "s3:GetBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "iam:GetRole",
    "sts:GetCallerIdentity",
    "sts:AssumeRole",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
}


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _load(name: str) -> dict[str, Any]:
    return json.loads((DOCS / name).read_text())


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    return _load("iam-policy.json")


def test_iam_policy_grants_exactly_the_needed_actions(policy: dict[str, Any]) -> None:
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
        pytest.param("sts:GetCallerIdentity", ["*"], id="sts-whoami"),
        pytest.param("sts:AssumeRole", ["arn:aws:iam::*:role/*"], id="sts-assume-role"),
        pytest.param("sqs:ReceiveMessage", ["arn:aws:sqs:*:*:bucketwarden-drift*"], id="sqs-receive"),
    ],
)
def test_iam_policy_scopes_each_action(action: str, resources: list[str], policy: dict[str, Any]) -> None:
    [statement] = [s for s in policy["Statement"] if action in _as_list(s["Action"])]
    assert _as_list(statement["Resource"]) == resources


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
