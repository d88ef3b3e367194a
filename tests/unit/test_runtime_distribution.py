"""The runtime distribution (the wheel and the image) holds the product only: no emulator, no test kit."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from bucketwarden.exitcodes import ExitCode
from tests.shared import REPO_ROOT

RUNTIME = REPO_ROOT / "operator" / "bucketwarden"

# What only the test kit may bring: the emulators, the servers under them, the kubernetes client and the kit itself.
EMULATORS = {"moto", "kmock", "flask", "flask_cors", "werkzeug", "kubernetes"}
KIT = "bucketwarden_testkit"
# `bucketwarden demo` imports the kit lazily, once it has checked that the kit is installed.
KIT_IMPORTERS = {"cli.py"}


def _imported_top_levels(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def _runtime_modules() -> list[Path]:
    return sorted(RUNTIME.rglob("*.py"))


def test_runtime_modules_import_no_emulator_library() -> None:
    offenders = {
        str(path.relative_to(RUNTIME)): sorted(found)
        for path in _runtime_modules()
        if (found := _imported_top_levels(path) & EMULATORS)
    }
    assert offenders == {}


def test_runtime_modules_import_the_kit_only_for_the_demo_command() -> None:
    importers = {str(path.relative_to(RUNTIME)) for path in _runtime_modules() if KIT in _imported_top_levels(path)}
    assert importers == KIT_IMPORTERS


def test_runtime_scan_sees_an_import_written_either_way(tmp_path: Path) -> None:
    """The scan above would catch a lazy `from moto.s3 import x` inside a function, and `import flask_cors`."""
    module = tmp_path / "m.py"
    module.write_text("import flask_cors\n\ndef f():\n    from moto.s3 import models\n    from . import sibling\n")
    assert _imported_top_levels(module) == {"flask_cors", "moto"}


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None, requirement
    return match.group(0).lower().replace("-", "_")


def test_runtime_distribution_requires_no_emulator_and_not_the_kit() -> None:
    requirements = importlib.metadata.requires("bucketwarden") or []
    plain = {_requirement_name(r) for r in requirements if "extra ==" not in r}
    assert plain & EMULATORS == set()
    assert {"kopf", "boto3", "pydantic"} <= plain
    # Unpublished names are never requirements: pip would ask the package index for them.
    assert {_requirement_name(r) for r in requirements} & {KIT, "bucketwarden_testkit"} == set()


def test_runtime_kit_pins_the_private_apis_it_touches_to_the_locked_versions() -> None:
    kit = tomllib.loads((REPO_ROOT / "testkit" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = {Requirement(r).name: Requirement(r) for r in kit["dependencies"]}
    assert "bucketwarden" not in requirements  # see testkit/pyproject.toml: a different project has that name on PyPI
    constraints = (REPO_ROOT / "constraints.txt").read_text(encoding="utf-8")
    readme = (REPO_ROOT / "testkit" / "README.md").read_text(encoding="utf-8")
    for name in ("moto", "kmock"):
        [locked] = re.findall(rf"^{name}==(\S+)$", constraints, re.M)
        assert str(requirements[name].specifier) == f"=={locked}"
        assert f"**{name} {locked}**" in readme  # the README names the pinned version and what it touches
        assert importlib.metadata.version(name) == locked


# Every runtime module imports, and `--help` runs, with the kit and every emulator library made unimportable.
WITHOUT_THE_KIT = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    BLOCKED = set(sys.argv[1].split())

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    for name in list(sys.modules):
        if name.partition(".")[0] in BLOCKED:
            del sys.modules[name]
    import bucketwarden

    for module in pkgutil.walk_packages(bucketwarden.__path__, "bucketwarden."):
        if module.name != "bucketwarden.__main__":
            importlib.import_module(module.name)
    from bucketwarden.cli import main

    main(["--help"])
    """
)


def test_runtime_imports_every_module_and_runs_help_without_the_kit() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_KIT, " ".join(sorted(EMULATORS | {KIT}))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("usage: bucketwarden")


@pytest.mark.slow
def test_runtime_pip_install_without_extras_gives_a_working_cli(tmp_path: Path) -> None:
    """`pip install .` into a venv that cannot see this one's packages: --help works, the demo says what to install.

    About 25 s with pip's cache warm; it needs PyPI (or the machine's mirror) for the pinned dependencies.
    """
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO_ROOT / name, source / name)
    # Only the runtime's sources: a build must not need (or pick up) testkit/ or tests/.
    shutil.copytree(RUNTIME, source / "operator" / "bucketwarden", ignore=shutil.ignore_patterns("__pycache__"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    pip_install = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    install = subprocess.run(
        [*pip_install, "-c", str(REPO_ROOT / "constraints.txt"), str(source)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env=env,
    )
    if install.returncode != 0 and "No matching distribution" in install.stderr:
        pytest.skip("no package index reachable")
    assert install.returncode == 0, install.stderr[-3000:]
    installed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    names = {_requirement_name(line) for line in installed.splitlines() if line}
    assert names & (EMULATORS | {KIT}) == set()
    cli = env_dir / "bin" / "bucketwarden"
    helped = subprocess.run([str(cli), "--help"], capture_output=True, text=True, timeout=60, check=False, env=env)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: bucketwarden")
    demo = subprocess.run([str(cli), "demo"], capture_output=True, text=True, timeout=60, check=False, env=env)
    assert demo.returncode == ExitCode.UNAVAILABLE.value == 69
    assert len(demo.stderr.splitlines()) == 1
    assert "bucketwarden_testkit" in demo.stderr and "testkit" in demo.stderr
