"""The SourceAllowList CRD and ProtectedBucket's allowedSourcesFrom, through the admission emulator of test_crd."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bucketwarden.crd import CRD_BUILDERS, build_allow_list_crd, render_crd_yaml
from bucketwarden.spec import ProtectedBucketSpec, SourceAllowListSpec
from tests.shared import REPO_ROOT
from tests.unit.test_crd import (
    PER_RULE_COST_LIMIT,
    _walk,
    admit,
    estimated_cost,
    structural_problems,
)

CRD_FILE = REPO_ROOT / "crds" / "bucketwarden.io_sourceallowlists.yaml"
CHART_CRD_FILE = REPO_ROOT / "charts" / "bucketwarden" / "crds" / "bucketwarden.io_sourceallowlists.yaml"
CRD = build_allow_list_crd()
SCHEMA: dict[str, Any] = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def allow_list(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "bucketwarden.io/v1alpha1",
        "kind": "SourceAllowList",
        "metadata": {"name": "corp"},
        "spec": spec,
    }


def bucket(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "bucketwarden.io/v1alpha1",
        "kind": "ProtectedBucket",
        "metadata": {"name": "b", "namespace": "team"},
        "spec": {"bucketName": "awsbackup-test-001", **spec},
    }


def test_allow_list_crd_file_matches_render() -> None:
    assert CRD_FILE.read_text() == render_crd_yaml("SourceAllowList"), "crds/ is stale: run `make crd`"
    assert CHART_CRD_FILE.read_bytes() == CRD_FILE.read_bytes(), "the chart's CRD is stale: run `make crd`"


def test_allow_list_crd_is_cluster_scoped_with_a_short_name() -> None:
    assert CRD["metadata"]["name"] == "sourceallowlists.bucketwarden.io"
    assert CRD["spec"]["scope"] == "Cluster"
    assert CRD["spec"]["names"]["shortNames"] == ["sal"]
    assert set(CRD_BUILDERS) == {"ProtectedBucket", "SourceAllowList", "TenantPolicy"}


def test_allow_list_crd_schema_is_structural() -> None:
    assert list(structural_problems(SCHEMA)) == []


def test_allow_list_crd_cel_rules_are_bounded() -> None:
    costs = [
        estimated_cost(v, node, ancestors)
        for _, node, ancestors in _walk(SCHEMA)
        for v in node.get("x-kubernetes-validations", [])
    ]
    assert costs and max(costs) <= PER_RULE_COST_LIMIT


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"cidrs": ["192.0.2.0/24"], "owner": "network-team", "description": "office egress"}, None),
        ({"vpcEndpoints": ["vpce-0123456789abcdef0"]}, None),
        ({"cidrs": ["192.0.2.0/33"]}, "must be an IPv4 or IPv6 CIDR"),
        ({"cidrs": ["::ffff:192.0.2.1"]}, "must be an IPv4 or IPv6 CIDR"),
        ({"cidrs": []}, "give at least one of cidrs, vpcEndpoints and vpcs"),
        ({"cidrs": [f"192.0.2.{i}" for i in range(101)]}, "must have at most 100 items"),
        ({"vpcs": ["vpce-0123456789abcdef0"]}, "should match"),
        ({"cidrs": ["192.0.2.0/24"], "owner": "x" * 257}, "may not be more than 256"),
    ],
    ids=["full", "endpoint-only", "bad-prefix", "mapped-ipv6", "empty", "too-many", "endpoint-as-vpc", "long-owner"],
)
def test_allow_list_admission_and_model_agree(spec: dict[str, Any], error: str | None) -> None:
    result = admit(allow_list(**spec), schema=SCHEMA)
    try:
        SourceAllowListSpec.model_validate(spec)
        model_ok = True
    except ValidationError:
        model_ok = False
    assert result.allowed == model_ok == (error is None), result.errors
    if error is not None:
        assert any(error in e for e in result.errors), result.errors


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"allowedSourcesFrom": [{"name": "corp-egress"}]}, None),
        ({"allowedSourcesFrom": [{"name": "corp-egress"}], "allowedSourceIps": ["192.0.2.1"]}, None),
        ({"allowedSourcesFrom": []}, "give at least one of allowedSourceIps"),
        ({"allowedSourcesFrom": [{"name": "a"}, {"name": "a"}]}, "Duplicate value"),
        ({"allowedSourcesFrom": [{"name": "Corp_Egress"}]}, "should match"),
    ],
    ids=["reference-only", "reference-and-inline", "empty", "duplicate", "bad-name"],
)
def test_bucket_reference_admission_and_model_agree(spec: dict[str, Any], error: str | None) -> None:
    from tests.unit.test_crd import OPENAPI

    result = admit(bucket(**spec), schema=OPENAPI)
    try:
        ProtectedBucketSpec.model_validate({"bucketName": "awsbackup-test-001", **spec})
        model_ok = True
    except ValidationError:
        model_ok = False
    assert result.allowed == model_ok == (error is None), result.errors
    if error is not None:
        assert any(error in e for e in result.errors), result.errors


def test_allow_list_example_is_admitted() -> None:
    doc = yaml.safe_load((REPO_ROOT / "examples" / "sourceallowlists" / "corp-egress.yaml").read_text())
    assert admit(doc, schema=SCHEMA).allowed
    SourceAllowListSpec.model_validate(doc["spec"])
