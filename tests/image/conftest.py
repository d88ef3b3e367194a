"""Fixtures for the image tests: the container engine, the image under test, and the emulators it runs against.

`make image-test` builds the image (tools/image.sh) and runs these with BUCKETWARDEN_IMAGE set to it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bucketwarden_testkit import PROTECTED_BUCKETS, EnforcedMoto, KubeEmulator, load_crds
from tests.image.imagekit import REPO_ROOT, Engine, image_under_test


@pytest.fixture(scope="session")
def under_test() -> tuple[Engine, str]:
    """test_image.py skips as a whole, in one line, where there is no engine or no image."""
    found = image_under_test()
    if isinstance(found, str):
        pytest.skip(found)
    engine, image = found
    engine("image", "inspect", image)  # fails the test, naming the image, when the engine does not have it
    return found


@pytest.fixture(scope="session")
def engine(under_test: tuple[Engine, str]) -> Engine:
    return under_test[0]


@pytest.fixture(scope="session")
def image(under_test: tuple[Engine, str]) -> str:
    return under_test[1]


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
