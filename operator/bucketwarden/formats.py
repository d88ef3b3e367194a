"""`bucketwarden render --format`: our statement, or the merged policy, in a form another tool can own.

- ``policy``: the merged bucket policy document (the default);
- ``statement``: our statement alone, to paste into a policy someone else writes;
- ``terraform-json``: an ``aws_iam_policy_document`` data source in Terraform's JSON syntax (``*.tf.json``);
- ``crossplane``: a Crossplane ``BucketPolicy`` (s3.aws.upbound.io/v1beta1) carrying the merged policy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from bucketwarden.policy import PolicyDocument, Statement
from bucketwarden.spec import ProtectedBucketSpec

FORMATS = ("policy", "statement", "terraform-json", "crossplane")
CROSSPLANE_API_VERSION = "s3.aws.upbound.io/v1beta1"

_TF_LISTS = (
    ("Action", "actions"),
    ("NotAction", "not_actions"),
    ("Resource", "resources"),
    ("NotResource", "not_resources"),
)
_TF_PRINCIPALS = (("Principal", "principals"), ("NotPrincipal", "not_principals"))


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def terraform_name(bucket: str) -> str:
    """A Terraform identifier for the bucket: letters, digits and underscores, never starting with a digit."""
    return "bucketwarden_" + re.sub(r"[^A-Za-z0-9_]", "_", bucket)


def _tf_principals(value: Any) -> list[dict[str, Any]]:
    # Terraform renders `type = "*"` with `identifiers = ["*"]` as "Principal": "*".
    if value == "*":
        return [{"type": "*", "identifiers": ["*"]}]
    return [{"type": kind, "identifiers": _as_list(ids)} for kind, ids in dict(value).items()]


def terraform_statement(statement: Mapping[str, Any]) -> dict[str, Any]:
    """One IAM statement (JSON form) as a `statement` block of aws_iam_policy_document."""
    out: dict[str, Any] = {}
    if statement.get("Sid"):
        out["sid"] = statement["Sid"]
    out["effect"] = statement["Effect"]
    for key, name in _TF_LISTS:
        if key in statement:
            out[name] = _as_list(statement[key])
    for key, name in _TF_PRINCIPALS:
        if key in statement:
            out[name] = _tf_principals(statement[key])
    conditions = statement.get("Condition") or {}
    if conditions:
        out["condition"] = [
            {"test": test, "variable": variable, "values": [str(v) for v in _as_list(values)]}
            for test, keys in conditions.items()
            for variable, values in keys.items()
        ]
    return out


def to_terraform_json(document: PolicyDocument, bucket: str) -> str:
    body: dict[str, Any] = {"version": document.version}
    if document.id:
        body["policy_id"] = document.id
    body["statement"] = [terraform_statement(s.to_json()) for s in document.statements]
    data = {"data": {"aws_iam_policy_document": {terraform_name(bucket): body}}}
    return json.dumps(data, indent=2)


def to_crossplane(document: PolicyDocument, spec: ProtectedBucketSpec) -> str:
    for_provider: dict[str, Any] = {"bucket": spec.bucket_name}
    if spec.region:
        for_provider["region"] = spec.region
    for_provider["policy"] = document.to_json(pretty=True)
    manifest = {
        "apiVersion": CROSSPLANE_API_VERSION,
        "kind": "BucketPolicy",
        "metadata": {"name": spec.bucket_name.replace(".", "-")},
        "spec": {"forProvider": for_provider},
    }
    return yaml.safe_dump(manifest, sort_keys=False, width=4096).rstrip("\n")


def render_format(fmt: str, desired: PolicyDocument, ours: Statement, spec: ProtectedBucketSpec) -> str:
    """The text `render --format fmt` prints."""
    if fmt == "statement":
        return json.dumps(ours.to_json(), indent=2)
    if fmt == "terraform-json":
        return to_terraform_json(desired, spec.bucket_name)
    if fmt == "crossplane":
        return to_crossplane(desired, spec)
    return desired.to_json(pretty=True)
