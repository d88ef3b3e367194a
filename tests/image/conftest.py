"""Fixtures for the image tests: the container engine, the image under test, and the emulators it runs against.

`make image-test` builds the image (tools/image.sh) and runs these with BUCKETWARDEN_IMAGE set to it. Without an
engine, or without a built image, every test here skips with one line that says which.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from imagekit import REPO_ROOT, Engine

from bucketwarden.testing import PROTECTED_BUCKETS, EnforcedMoto, KubeEmulator, load_crds

IMAGE_VARIABLE = "BUCKETWARDEN_IMAGE"


@pytest.fixture(scope="session")
def engine() -> Engine:
    """docker with a daemon, or podman: what tools/image.sh picks, with the same words."""
    result = subprocess.run(
        [str(REPO_ROOT / "tools" / "image.sh"), "engine"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.skip(result.stderr.strip().removeprefix("image: ") or "no container engine")
    return Engine(tuple(result.stdout.split()))


@pytest.fixture(scope="session")
def image(engine: Engine) -> str:
    """The image `make image-test` built; the tests never build one themselves (it takes minutes)."""
    reference = os.environ.get(IMAGE_VARIABLE, "")
    if not reference:
        pytest.skip(f"no image under test: `make image-test` builds one and sets {IMAGE_VARIABLE}")
    if engine("image", "inspect", reference, check=False).returncode != 0:
        pytest.fail(f"{IMAGE_VARIABLE}={reference}: {engine.command[0]} has no such image")
    return reference


@pytest.fixture(scope="session")
def helm(image: str) -> Path:
    """helm 3 under .tools/, fetched once by tools/get-helm.sh, to render the chart's Deployment."""
    tools = REPO_ROOT / ".tools"
    result = subprocess.run(
        [str(REPO_ROOT / "tools" / "get-helm.sh"), "--dest", str(tools)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"tools/get-helm.sh failed (needs PyPI):\n{result.stderr[-2000:]}")
    return tools / "helm3"


@pytest.fixture(scope="session")
def aws(image: str) -> Iterator[EnforcedMoto]:
    """moto behind the enforcing S3 front, on loopback: the container reaches it over the host's network."""
    with EnforcedMoto() as server:
        yield server


@pytest.fixture(scope="session")
def kube(image: str) -> Iterator[KubeEmulator]:
    """The emulated Kubernetes API with the product's CRDs, on loopback."""
    crds = load_crds(sorted((REPO_ROOT / "crds").glob("*.yaml")))
    with KubeEmulator(resources=()) as emulator, emulator.client() as client:
        for crd in crds:
            client.apply_crd(crd)
        assert client.list_objects(PROTECTED_BUCKETS) == []
        yield emulator
