"""The repository holds only source: no virtualenv, cache or build output is ever tracked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.shared import REPO_ROOT

# Path parts that only a virtualenv, a cache or a build leaves behind.
GENERATED_PARTS = {"__pycache__", "site-packages", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis"}
GENERATED_NAMES = {"pyvenv.cfg"}


def _git(*args: str) -> list[str]:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", *args], cwd=REPO_ROOT, check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line]


def test_repository_tracks_nothing_that_gitignore_ignores() -> None:
    assert _git("ls-files", "-ci", "--exclude-standard") == []


def test_repository_tracks_no_virtualenv_or_cache() -> None:
    tracked = _git("ls-files")
    generated = [
        path
        for path in tracked
        if GENERATED_PARTS.intersection(Path(path).parts) or Path(path).name in GENERATED_NAMES or path.endswith(".pyc")
    ]
    assert generated == []


def test_repository_gitignore_lists_the_local_virtualenvs() -> None:
    ignored = set((REPO_ROOT / ".gitignore").read_text().split())
    assert {".venv/", ".bench-venv/", "__pycache__/"} <= ignored
