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
    """(apiGroup, resource) of every rule in the rendered ClusterRoles."""
    return {
        (group, resource)
        for d in docs
        if d.get("kind") == "ClusterRole"
        for rule in d.get("rules") or []
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
    }


# A namespaced install's only cluster-scoped grants: the SourceAllowLists, which are cluster-scoped themselves.
ALLOW_LIST_GRANTS = {("bucketwarden.io", "sourceallowlists"), ("bucketwarden.io", "sourceallowlists/status")}
