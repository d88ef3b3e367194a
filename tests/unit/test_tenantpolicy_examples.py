"""examples/tenantpolicies: admitted by the TenantPolicy CRD (schema and CEL, through test_crd's admission
emulator), valid models, and granting what each example says it grants."""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest
import re2  # type: ignore[import-untyped]  # google-re2: Go's regexp refuses what RE2 refuses (repeats over 1000)
import yaml

from bucketwarden.crd import build_tenant_policy_crd
from bucketwarden.spec import TenantPolicySpec
from tests.shared import REPO_ROOT
from tests.unit.test_crd import _walk, admit

EXAMPLE_FILES = sorted((REPO_ROOT / "examples" / "tenantpolicies").glob("*.yaml"))
SCHEMA: dict[str, Any] = build_tenant_policy_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
EXAMPLES = {path.stem: yaml.safe_load(path.read_text(encoding="utf-8")) for path in EXAMPLE_FILES}


def _spec(name: str) -> TenantPolicySpec:
    return TenantPolicySpec.model_validate(EXAMPLES[name]["spec"])


PATTERNS = sorted({node["pattern"] for _, node, _ in _walk(SCHEMA) if "pattern" in node})


@pytest.mark.parametrize("pattern", PATTERNS)
def test_tenantpolicy_crd_pattern_compiles_in_re2(pattern: str) -> None:
    """The API server compiles every pattern with Go's regexp when the CRD is created: one bad one and the CRD
    does not install (a repeat count over 1000, such as {1,1500}, is refused)."""
    re2.compile(pattern)


def test_tenantpolicy_examples_cover_the_issue_grants() -> None:
    assert set(EXAMPLES) == {"team-a", "team-b", "team-c", "team-b-cross-account"}
    for name, doc in EXAMPLES.items():
        assert (doc["apiVersion"], doc["kind"], doc["metadata"]["name"]) == (
            "bucketwarden.io/v1alpha1",
            "TenantPolicy",
            name,
        )
        assert "namespace" not in doc["metadata"]  # cluster-scoped


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_tenantpolicy_example_is_admitted(name: str) -> None:
    assert admit(EXAMPLES[name], schema=SCHEMA).errors == []


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_tenantpolicy_example_is_a_valid_model(name: str) -> None:
    _spec(name)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_tenantpolicy_example_defaults_from_crd_equal_the_model_defaults(name: str) -> None:
    stored = admit(EXAMPLES[name], schema=SCHEMA).stored["spec"]
    assert TenantPolicySpec.model_validate(stored) == _spec(name)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param({"buckets": []}, "should be non-empty", id="no-buckets"),
        pytest.param({"namespaces": [], "namespaceSelector": None}, "give at least one of namespaces", id="no-one"),
        pytest.param({"buckets": ["Team_A"]}, "should match", id="bad-glob"),
        pytest.param({"assumeRoleArns": ["arn:aws:iam::210987654321:user/x"]}, "should match", id="user-arn"),
        pytest.param({"externalIds": [{"roleArn": "arn:aws:iam::210987654321:role/x"}]}, "externalId", id="no-id"),
    ],
)
def test_tenantpolicy_admission_refuses_a_broken_example(change: dict[str, Any], error: str) -> None:
    """Guards the tests above: the emulated admission does refuse a broken TenantPolicy."""
    doc = EXAMPLES["team-b-cross-account"]
    spec = {k: v for k, v in {**doc["spec"], **change}.items() if v is not None}
    result = admit({**doc, "spec": spec}, schema=SCHEMA)
    assert any(error in e for e in result.errors), result.errors


@pytest.mark.parametrize(
    ("name", "bucket", "granted"),
    [
        pytest.param("team-a", "team-a-data", True, id="team-a-own"),
        pytest.param("team-a", "shared-logs", True, id="team-a-shared"),
        pytest.param("team-a", "team-b-data", False, id="team-a-not-team-b"),
        pytest.param("team-b", "team-b-data", True, id="team-b-own"),
        pytest.param("team-b", "shared-logs", False, id="team-b-not-shared"),
        pytest.param("team-c", "shared-logs", True, id="team-c-shared"),
        pytest.param("team-c", "team-a-data", False, id="team-c-not-team-a"),
        pytest.param("team-b-cross-account", "team-b-data", True, id="cross-account-own"),
    ],
)
def test_tenantpolicy_example_grants_the_buckets_it_says(name: str, bucket: str, granted: bool) -> None:
    assert any(fnmatch.fnmatchcase(bucket, glob) for glob in _spec(name).buckets) is granted


def test_tenantpolicy_cross_account_example_sends_an_external_id_for_each_granted_role() -> None:
    spec = _spec("team-b-cross-account")
    assert spec.assume_role_arns
    assert not spec.grants_all_namespaces
    for arn in spec.assume_role_arns:
        assert "*" not in arn  # one role, not a pattern over roles
        assert [g.external_id for g in spec.external_ids if fnmatch.fnmatchcase(arn, g.role_arn)]
    assert all(not _spec(n).assume_role_arns for n in ("team-a", "team-b", "team-c"))  # default: no roles
