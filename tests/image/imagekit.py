"""Helpers for the image tests: a container engine's command line, and a chart-rendered Deployment as run flags."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
IMAGE_VARIABLE = "BUCKETWARDEN_IMAGE"

# podman's default rlimits exceed this machine's hard limits ("setrlimit RLIMIT_NOFILE: Operation not permitted").
PODMAN_RUN_FLAGS = ("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")


@dataclass(frozen=True)
class Engine:
    """A container engine's command words, e.g. ("podman", "--runtime", "runc") or ("docker",)."""

    command: tuple[str, ...]

    @property
    def is_podman(self) -> bool:
        return Path(self.command[0]).name == "podman"

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.command, *args], capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join([*self.command, *args])} exited {result.returncode}:\n{result.stderr}")
        return result

    def run_flags(self) -> tuple[str, ...]:
        return PODMAN_RUN_FLAGS if self.is_podman else ()

    def run(
        self,
        image: str,
        *args: str,
        flags: Sequence[str] = (),
        entrypoint: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """`run --rm` with a read-only root and a tmpfs /tmp (as the chart runs it); the result, never raising."""
        chosen = ["--entrypoint", entrypoint] if entrypoint else []
        return self(
            "run",
            "--rm",
            *self.run_flags(),
            "--read-only",
            "--tmpfs",
            "/tmp:rw,mode=1777",
            *flags,
            *chosen,
            image,
            *args,
            timeout=timeout,
            check=False,
        )

    def size(self, image: str) -> int:
        return int(self("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())

    def label(self, image: str, name: str) -> str:
        return self("image", "inspect", "--format", f'{{{{index .Config.Labels "{name}"}}}}', image).stdout.strip()


def detect_engine() -> Engine | str:
    """The engine tools/image.sh would build with (docker with a daemon, or podman), or why there is none."""
    result = subprocess.run(
        [str(REPO_ROOT / "tools" / "image.sh"), "engine"], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        return result.stderr.strip().removeprefix("image: ") or "no container engine"
    return Engine(tuple(result.stdout.split()))


def image_under_test() -> tuple[Engine, str] | str:
    """(engine, image) when `make image-test` built one, else the one line that says why the tests skip."""
    engine = detect_engine()
    if isinstance(engine, str):
        return engine
    reference = os.environ.get(IMAGE_VARIABLE, "")
    if not reference:
        return f"no image under test: `make image-test` builds one with {engine.command[0]} and sets {IMAGE_VARIABLE}"
    return engine, reference


def find_deployment(manifests: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    deployments = [m for m in manifests if m.get("kind") == "Deployment"]
    assert len(deployments) == 1, [m.get("metadata", {}).get("name") for m in deployments]
    return deployments[0]


def container_flags(deployment: Mapping[str, Any], *, pod_name: str) -> list[str]:
    """The run flags that reproduce the Deployment's operator container: env, user, security context, /tmp.

    Fails on what it cannot reproduce, so that a chart change is never silently left out of the image test.
    """
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "command" not in container and "args" not in container, "the chart must run the image's default command"
    flags: list[str] = []

    pod_security = pod.get("securityContext", {})
    if "runAsUser" in pod_security:
        flags += ["--user", f"{pod_security['runAsUser']}:{pod_security.get('runAsGroup', pod_security['runAsUser'])}"]

    security = container.get("securityContext", {})
    if security.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    if security.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    for capability in security.get("capabilities", {}).get("drop", []):
        flags += ["--cap-drop", capability]

    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        assert "emptyDir" in volume, f"volume {mount['name']}: only emptyDir volumes are reproduced"
        size = volume["emptyDir"].get("sizeLimit", "")
        options = ["rw", "mode=1777"] + ([f"size={size.removesuffix('i').lower()}"] if size else [])
        flags += ["--tmpfs", f"{mount['mountPath']}:{','.join(options)}"]

    for variable in container.get("env", []):
        if "value" in variable:
            flags += ["--env", f"{variable['name']}={variable['value']}"]
        elif variable.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            flags += ["--env", f"{variable['name']}={pod_name}"]
        else:
            raise AssertionError(f"env {variable['name']}: cannot reproduce {variable}")
    return flags
