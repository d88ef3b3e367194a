"""rbac_grants resolves bindings to rules the way the RBAC authoriser does."""

from __future__ import annotations

from typing import Any

import pytest

from bucketwarden_testkit import rbac_grants

RULE = {"apiGroups": ["bucketwarden.io"], "resources": ["protectedbuckets"], "verbs": ["list"]}


def role(kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta, "rules": [RULE]}


def aggregated(name: str) -> dict[str, Any]:
    doc = role("ClusterRole", name)
    doc["metadata"]["labels"] = {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}
    return doc


def binding(kind: str, ref_kind: str, ref: str, namespace: str | None = None, sa: str = "bw") -> dict[str, Any]:
    meta = {"name": "b", **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind, "name": ref},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": "ops"}],
    }


@pytest.mark.parametrize(
    ("docs", "scopes"),
    [
        pytest.param([role("ClusterRole", "r"), binding("ClusterRoleBinding", "ClusterRole", "r")], [None], id="crb"),
        pytest.param([role("Role", "r", "a"), binding("RoleBinding", "Role", "r", "a")], ["a"], id="rb"),
        pytest.param([role("ClusterRole", "r"), binding("RoleBinding", "ClusterRole", "r", "a")], ["a"], id="rb-to-cr"),
        pytest.param([role("Role", "r", "b"), binding("RoleBinding", "Role", "r", "a")], [], id="role-elsewhere"),
        pytest.param([role("ClusterRole", "r"), binding("ClusterRoleBinding", "ClusterRole", "x")], [], id="no-role"),
        pytest.param(
            [role("ClusterRole", "r"), binding("ClusterRoleBinding", "ClusterRole", "r", sa="other")], [], id="other-sa"
        ),
        # The chart's <release>-edit/-view: aggregated into the built-in roles, bound to nobody: not the operator's.
        pytest.param([aggregated("bw-edit"), role("ClusterRole", "r")], [], id="aggregated-unbound"),
        pytest.param(
            [aggregated("bw-edit"), binding("RoleBinding", "ClusterRole", "bw-edit", "a", sa="other")],
            [],
            id="aggregated-bound-to-a-user",
        ),
    ],
)
def test_rbac_grants_scopes_each_rule_by_its_binding(docs: list[dict[str, Any]], scopes: list[str | None]) -> None:
    grants = rbac_grants(docs, service_account="bw", namespace="ops")
    assert [g["namespace"] for g in grants] == scopes
    assert all(g["verbs"] == ["list"] for g in grants)
