"""Helpers for the chart checks: repository paths and running helm."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "bucketwarden"
TOOLS_DIR = REPO_ROOT / ".tools"
HELMS = ("helm3", "helm4")

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]


class HelmError(Exception):
    """helm exited non-zero; the message is its stderr."""


def run_helm(helm: Path, *args: str) -> str:
    """Run helm and return its stdout; raise HelmError with its stderr when it fails."""
    result = subprocess.run([str(helm), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HelmError(result.stderr.strip() or result.stdout.strip())
    return result.stdout


def cluster_scoped_grants(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(apiGroup, resource) of every rule in the rendered ClusterRoles that a ClusterRoleBinding grants.

    The aggregated ClusterRoles for namespace users (<release>-edit, <release>-view) are bound to nobody by the
    chart: the API server folds them into admin, edit and view, which only ever hold inside a namespace when
    bound by a RoleBinding. They are not the operator's cluster-wide access, so they do not count here.
    """
    bound = {d["roleRef"]["name"] for d in docs if d.get("kind") == "ClusterRoleBinding"}
    return {
        (group, resource)
        for d in docs
        if d.get("kind") == "ClusterRole" and d["metadata"]["name"] in bound
        for rule in d.get("rules") or []
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
    }


# A namespaced install's only cluster-scoped grants: what is cluster-scoped itself. SourceAllowLists and
# TenantPolicies (watched, their status written) and namespaces (their labels, for namespaceSelector).
CLUSTER_SCOPED_GRANTS = {
    ("bucketwarden.io", "sourceallowlists"),
    ("bucketwarden.io", "sourceallowlists/status"),
    ("bucketwarden.io", "tenantpolicies"),
    ("bucketwarden.io", "tenantpolicies/status"),
    ("", "namespaces"),
}
AGGREGATE_LABELS = {
    "rbac.authorization.k8s.io/aggregate-to-admin",
    "rbac.authorization.k8s.io/aggregate-to-edit",
    "rbac.authorization.k8s.io/aggregate-to-view",
}


def is_aggregated(doc: dict[str, Any]) -> bool:
    """A ClusterRole the API server folds into the built-in admin/edit/view roles."""
    labels = doc.get("metadata", {}).get("labels") or {}
    return doc.get("kind") == "ClusterRole" and any(labels.get(key) == "true" for key in AGGREGATE_LABELS)
