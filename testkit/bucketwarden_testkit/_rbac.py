"""What rendered RBAC manifests grant one ServiceAccount, as rules the Kubernetes emulator can enforce.

Resolves RoleBindings and ClusterRoleBindings to their Roles and ClusterRoles the way the API server's RBAC
authoriser does: a ClusterRoleBinding grants its rules everywhere; a RoleBinding grants its Role's (or a
ClusterRole's) rules only inside the binding's namespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

JsonDict = dict[str, Any]


def _binds(binding: Mapping[str, Any], service_account: str, namespace: str) -> bool:
    return any(
        subject.get("kind") == "ServiceAccount"
        and subject.get("name") == service_account
        and subject.get("namespace", binding["metadata"].get("namespace")) == namespace
        for subject in binding.get("subjects") or ()
    )


def rbac_grants(manifests: Iterable[Mapping[str, Any]], *, service_account: str, namespace: str) -> list[JsonDict]:
    """Every rule granted to ServiceAccount ``namespace/service_account``, each with the namespace it holds in.

    ``namespace`` of a grant is None for a ClusterRoleBinding (cluster-wide), else the RoleBinding's namespace.
    A binding to a role that does not exist grants nothing, as on a real server.
    """
    docs = [d for d in manifests if d and d.get("apiVersion", "").startswith("rbac.authorization.k8s.io/")]
    cluster_roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    roles = {(d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs if d["kind"] == "Role"}
    grants: list[JsonDict] = []
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding") or not _binds(
            binding, service_account, namespace
        ):
            continue
        ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        if ref["kind"] == "ClusterRole":
            role = cluster_roles.get(ref["name"])
        elif binding["kind"] == "RoleBinding":
            role = roles.get((scope, ref["name"]))
        else:
            role = None  # a ClusterRoleBinding can only reference a ClusterRole
        for rule in (role or {}).get("rules") or ():
            grants.append({"namespace": scope, **{k: list(v) for k, v in rule.items()}})
    return grants
