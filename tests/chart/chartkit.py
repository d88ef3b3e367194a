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
