"""What the image tests stand on, checked without an engine: tools/image.sh's engine choice, and the chart's
Deployment turned into run flags."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.image.imagekit import REPO_ROOT, container_flags

# What tools/image.sh needs besides the engines; the fake engines go in front of only these.
SYSTEM_TOOLS = ("bash", "env", "sed", "dirname", "head", "awk", "cat")


def fake_path(tmp_path: Path, engines: dict[str, int]) -> str:
    """A PATH with the system tools and fake engines, each exiting with its code (docker's for `docker info`)."""
    system, fakes = tmp_path / "system", tmp_path / "fakes"
    system.mkdir()
    fakes.mkdir()
    for tool in SYSTEM_TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (system / tool).symlink_to(found)
    for name, code in engines.items():
        script = fakes / name
        script.write_text(f"#!/bin/sh\nexit {code}\n")
        script.chmod(0o755)
    return f"{fakes}:{system}"


@pytest.mark.parametrize(
    ("engines", "expected"),
    [
        pytest.param({"docker": 0, "podman": 0, "runc": 0}, "docker", id="docker-with-a-daemon"),
        pytest.param({"docker": 1, "podman": 0, "runc": 0}, "podman --runtime runc", id="docker-without-daemon"),
        pytest.param({"podman": 0}, "podman", id="podman-without-runc"),
    ],
)
def test_image_engine_prefers_a_docker_daemon_then_podman(
    tmp_path: Path, engines: dict[str, int], expected: str
) -> None:
    env = {"PATH": fake_path(tmp_path, engines), "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(REPO_ROOT / "tools" / "image.sh"), "engine"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@pytest.mark.parametrize(
    ("engines", "docker"),
    [
        pytest.param({"docker": 1}, "docker has no daemon", id="docker-without-daemon"),
        pytest.param({}, "docker is not installed", id="nothing"),
    ],
)
def test_image_engine_says_in_one_line_why_there_is_none(tmp_path: Path, engines: dict[str, int], docker: str) -> None:
    env = {"PATH": fake_path(tmp_path, engines), "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(REPO_ROOT / "tools" / "image.sh"), "engine"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"image: no container engine: {docker}")
    assert "podman is not installed" in line


def test_image_engine_honours_the_engine_variable(tmp_path: Path) -> None:
    env = {"PATH": fake_path(tmp_path, {}), "HOME": str(tmp_path), "ENGINE": "nerdctl --namespace k8s.io"}
    result = subprocess.run(
        [str(REPO_ROOT / "tools" / "image.sh"), "engine"], env=env, capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "nerdctl --namespace k8s.io"


def deployment(env: list[dict[str, Any]]) -> dict[str, Any]:
    """The shape of the chart's Deployment, as far as container_flags reads it."""
    container = {
        "name": "operator",
        "image": "ghcr.io/bucketwarden/bucketwarden:0.1.0",
        "env": env,
        "securityContext": {
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    pod = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532},
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    return {"kind": "Deployment", "spec": {"template": {"spec": pod}}}


def test_image_container_flags_reproduce_the_deployment() -> None:
    env: list[dict[str, Any]] = [
        {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "BUCKETWARDEN_LOG_FORMAT", "value": "json"},
    ]
    assert container_flags(deployment(env), pod_name="pod-1") == [
        *("--user", "65532:65532", "--read-only", "--security-opt", "no-new-privileges", "--cap-drop", "ALL"),
        *("--tmpfs", "/tmp:rw,mode=1777,size=64m"),
        *("--env", "POD_ID=pod-1", "--env", "BUCKETWARDEN_LOG_FORMAT=json"),
    ]


def test_image_container_flags_refuse_what_they_cannot_reproduce() -> None:
    env = [{"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "aws", "key": "id"}}}]
    with pytest.raises(AssertionError, match="AWS_ACCESS_KEY_ID"):
        container_flags(deployment(env), pod_name="pod-1")


def test_image_tools_script_is_executable() -> None:
    assert os.access(REPO_ROOT / "tools" / "image.sh", os.X_OK)
    assert os.access(REPO_ROOT / ".ci" / "image-test", os.X_OK)
