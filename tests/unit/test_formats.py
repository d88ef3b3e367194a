"""`bucketwarden render --format`: each output parsed back and compared by meaning with the merged policy."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from bucketwarden.cli import main
from bucketwarden.formats import CROSSPLANE_API_VERSION, terraform_name, terraform_statement
from bucketwarden.policy import PolicyDocument, Statement
from tests.shared import GOLDEN

SPEC = str(GOLDEN / "seed-spec.yaml")
ORIGINAL = str(GOLDEN / "seed-original-policy.json")
ROLE_ID = ["--role-id", "AWSBackupDefaultServiceRole=AROASAMPLESAMPLESAMPL"]
OPERATOR = ["--operator-user-id", "AROAOPERATOROPERATOR1:bucketwarden"]
TF_STATEMENT_KEYS = {"sid", "effect", "actions", "not_actions", "resources", "not_resources"}
TF_STATEMENT_KEYS |= {"principals", "not_principals", "condition"}


def render(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["render", "-f", SPEC, "--existing-policy", ORIGINAL, *ROLE_ID, *OPERATOR, *extra])
    out, _ = capsys.readouterr()
    return code, out


def statement_from_terraform(block: dict[str, Any]) -> dict[str, Any]:
    """The inverse of Terraform's rendering of one statement block, to compare by meaning."""
    out: dict[str, Any] = {"Effect": block["effect"]}
    if "sid" in block:
        out["Sid"] = block["sid"]
    for key, name in (("Action", "actions"), ("NotAction", "not_actions")):
        if name in block:
            out[key] = block[name]
    for key, name in (("Resource", "resources"), ("NotResource", "not_resources")):
        if name in block:
            out[key] = block[name]
    for key, name in (("Principal", "principals"), ("NotPrincipal", "not_principals")):
        if name in block:
            entries = block[name]
            if entries == [{"type": "*", "identifiers": ["*"]}]:
                out[key] = "*"
            else:
                out[key] = {e["type"]: e["identifiers"] for e in entries}
    conditions: dict[str, dict[str, list[str]]] = {}
    for c in block.get("condition", []):
        conditions.setdefault(c["test"], {})[c["variable"]] = c["values"]
    if conditions:
        out["Condition"] = conditions
    return out


def test_render_format_policy_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    _, default = render(capsys)
    code, explicit = render(capsys, "--format", "policy")
    assert code == 0
    assert explicit == default
    assert PolicyDocument.parse(explicit).find("BucketWardenIpRestriction")


def test_render_format_statement_is_ours_alone(capsys: pytest.CaptureFixture[str]) -> None:
    _, policy = render(capsys)
    code, out = render(capsys, "--format", "statement")
    assert code == 0
    statement = Statement.parse(json.loads(out))
    assert statement.sid == "BucketWardenIpRestriction"
    assert statement.same_meaning(PolicyDocument.parse(policy).find("BucketWardenIpRestriction")[0])


def test_render_format_terraform_json_has_the_data_source_shape_and_the_same_meaning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, policy = render(capsys)
    code, out = render(capsys, "--format", "terraform-json")
    assert code == 0
    data = json.loads(out)
    assert list(data) == ["data"] and list(data["data"]) == ["aws_iam_policy_document"]
    (name, body), *rest = data["data"]["aws_iam_policy_document"].items()
    assert not rest and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name)
    assert set(body) <= {"version", "policy_id", "statement"}
    for block in body["statement"]:
        assert set(block) <= TF_STATEMENT_KEYS and block["effect"] in ("Allow", "Deny")
        for c in block.get("condition", []):
            assert set(c) == {"test", "variable", "values"} and all(isinstance(v, str) for v in c["values"])
        for p in block.get("principals", []) + block.get("not_principals", []):
            assert set(p) == {"type", "identifiers"} and isinstance(p["identifiers"], list)
    back = PolicyDocument.from_obj(
        {
            "Version": body["version"],
            "Id": body["policy_id"],
            "Statement": [statement_from_terraform(b) for b in body["statement"]],
        }
    )
    assert back.same_meaning(PolicyDocument.parse(policy))


def test_render_format_crossplane_is_a_bucket_policy_with_the_same_document(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, policy = render(capsys)
    code, out = render(capsys, "--format", "crossplane")
    assert code == 0
    manifest = yaml.safe_load(out)
    assert manifest["apiVersion"] == CROSSPLANE_API_VERSION and manifest["kind"] == "BucketPolicy"
    for_provider = manifest["spec"]["forProvider"]
    assert for_provider["bucket"] == "awsbackup-test-001"
    assert isinstance(for_provider["policy"], str)
    assert PolicyDocument.parse(for_provider["policy"]).same_meaning(PolicyDocument.parse(policy))


@pytest.mark.parametrize(
    ("bucket", "name"),
    [("awsbackup-test-001", "bucketwarden_awsbackup_test_001"), ("a.b-c", "bucketwarden_a_b_c")],
    ids=["hyphens", "dots"],
)
def test_terraform_name_is_an_identifier(bucket: str, name: str) -> None:
    assert terraform_name(bucket) == name


@pytest.mark.parametrize(
    ("statement", "principals"),
    [
        (
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "x"},
            [{"type": "*", "identifiers": ["*"]}],
        ),
        (
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "s3:*",
                "Resource": "x",
            },
            [{"type": "AWS", "identifiers": ["arn:aws:iam::123456789012:root"]}],
        ),
    ],
    ids=["anyone", "one-account"],
)
def test_terraform_statement_principals(statement: dict[str, Any], principals: list[dict[str, Any]]) -> None:
    assert terraform_statement(statement)["principals"] == principals
