"""tools/get-helm.sh: the pinned helm and kubectl binaries, fetched once and cached in .tools/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chart.chartkit import REPO_ROOT, TOOLS_DIR


@pytest.mark.parametrize(
    ("tool", "args", "version"),
    [
        pytest.param("helm3", ["version", "--short"], "v3.17.2", id="helm3"),
        pytest.param("helm4", ["version", "--short"], "v4.3.1", id="helm4"),
        pytest.param("kubectl", ["version", "--client"], "v1.37.1", id="kubectl"),
    ],
)
def test_get_helm_provides_pinned_versions(
    tool: str, args: list[str], version: str, helm_binaries: dict[str, Path]
) -> None:
    result = subprocess.run([str(helm_binaries[tool]), *args], capture_output=True, text=True, check=True)
    assert version in result.stdout


def test_get_helm_is_idempotent(helm_binaries: dict[str, Path]) -> None:
    before = {name: path.stat().st_mtime_ns for name, path in helm_binaries.items()}
    subprocess.run(
        [str(REPO_ROOT / "tools" / "get-helm.sh"), "--dest", str(TOOLS_DIR)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        check=True,
    )
    assert {name: path.stat().st_mtime_ns for name, path in helm_binaries.items()} == before
