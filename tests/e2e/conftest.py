"""Fixtures for the e2e suite: moto, a Kubernetes API, a namespace, and in-process kopf operators.

The Kubernetes API is the kmock-based emulator, unless BUCKETWARDEN_E2E_KUBECONFIG names a kubeconfig:
then the same tests run against that cluster (kind, k3d, ...) in a fresh namespace bw-e2e-<random>.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest

from bucketwarden_testkit import (
    PROTECTED_BUCKETS,
    TENANT_POLICIES,
    KubeClient,
    KubeCluster,
    KubeEmulator,
    KubeTarget,
    MotoServer,
    OperatorHandle,
    ResourceSpec,
    grant_namespaces,
    load_crds,
    moto_for_tests,
    run_operator_in_thread,
)

E2E_KUBECONFIG_VARIABLE = "BUCKETWARDEN_E2E_KUBECONFIG"
CRD_FILES = sorted((Path(__file__).resolve().parents[2] / "crds").glob("*.yaml"))

# A throwaway resource the harness tests itself with; schema-less, so it never depends on the product's CRD.
HARNESS_CHECKS = ResourceSpec(
    group="harness.testing.bucketwarden.io",
    version="v1",
    plural="harnesschecks",
    kind="HarnessCheck",
    singular="harnesscheck",
)

OperatorFactory = Callable[..., OperatorHandle]


def session_crds(target: KubeTarget) -> list[dict[str, Any]]:
    """The product's CRDs from crds/*.yaml, plus the harness's throwaway one."""
    crds = load_crds(CRD_FILES)
    if not crds and target.emulated:  # until crds/ exists; a stand-in never goes to a real cluster
        crds = [PROTECTED_BUCKETS.crd_manifest()]
    return [*crds, HARNESS_CHECKS.crd_manifest()]


def session_resources(target: KubeTarget) -> list[ResourceSpec]:
    return [spec for crd in session_crds(target) for spec in ResourceSpec.from_crd(crd)]


@pytest.fixture(scope="session")
def harness_resource() -> ResourceSpec:
    return HARNESS_CHECKS


@pytest.fixture(scope="session")
def kube() -> Iterator[KubeTarget]:
    """The Kubernetes API for the session, with the CRDs applied the same way in both modes.

    The emulator, or the cluster in BUCKETWARDEN_E2E_KUBECONFIG. On a cluster the CRDs stay installed
    afterwards: another session may be using them.
    """
    with contextlib.ExitStack() as stack:
        kubeconfig = os.environ.get(E2E_KUBECONFIG_VARIABLE)
        target = KubeCluster(kubeconfig) if kubeconfig else stack.enter_context(KubeEmulator(resources=()))
        with target.client() as client:
            for crd in session_crds(target):
                client.apply_crd(crd)
        yield target


@pytest.fixture(scope="session")
def kube_client(kube: KubeTarget) -> Iterator[KubeClient]:
    with kube.client() as client:
        yield client


@pytest.fixture(scope="session")
def namespace(kube: KubeTarget, kube_client: KubeClient) -> Iterator[str]:
    """A fresh namespace for the session, deleted at the end with everything in it."""
    name = f"bw-e2e-{secrets.token_hex(3)}"
    kube_client.create_namespace(name, labels={"app.kubernetes.io/created-by": "bucketwarden-e2e"})
    # Default deny: the session's namespaces (this one and those named after it) get every bucket, as a cluster
    # admin would grant a tenant. Tenancy tests use namespaces outside the glob.
    grant_namespaces(kube_client, name, namespaces=[name, f"{name}-*"], assumeRoleArns=["arn:aws:iam::*:role/*"])
    yield name
    kube_client.delete_object(TENANT_POLICIES, name)
    # No operator runs any more: drop leftover finalizers, or the namespace would hang in Terminating.
    for resource in session_resources(kube):
        for obj in kube_client.list_objects(resource, namespace=name):
            if obj["metadata"].get("finalizers"):
                patch = {"metadata": {"finalizers": None}}
                kube_client.patch_object(resource, obj["metadata"]["name"], patch, namespace=name)
    kube_client.delete_namespace(name)


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """moto behind the enforcing S3 front (BUCKETWARDEN_S3_FRONT=0: bare moto): ``endpoint_url`` is the cluster's
    NAT network, so a bucket policy that locks out the operator or the backup role fails the test, as on AWS;
    ``client()`` is the test's own unenforced view."""
    with moto_for_tests() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_aws(request: pytest.FixtureRequest) -> None:
    """Every test that uses moto starts with an empty AWS (a reset takes milliseconds)."""
    if "moto" in request.fixturenames:
        request.getfixturevalue("moto").reset()


@pytest.fixture
def operator(kube: KubeTarget, namespace: str) -> Iterator[OperatorFactory]:
    """Start kopf operators in background threads; all are stopped after the test.

    ``operator(registry)`` watches the session's namespace on the session's Kubernetes target;
    ``namespaces=``, ``target=`` (a URL, kubeconfig path or target), ``settings=`` and ``memo=`` override.
    """
    handles: list[OperatorHandle] = []

    def start(
        registry: kopf.OperatorRegistry,
        *,
        namespaces: list[str] | None = None,
        target: Any = None,
        settings: kopf.OperatorSettings | None = None,
        memo: Any = None,
    ) -> OperatorHandle:
        handle = run_operator_in_thread(
            registry,
            server_or_kubeconfig=kube if target is None else target,
            namespaces=[namespace] if namespaces is None else namespaces,
            settings=settings,
            memo=memo,
        )
        handles.append(handle)
        return handle

    yield start
    with contextlib.ExitStack() as stopping:  # stop them all, even if one fails
        for handle in handles:
            stopping.callback(handle.stop)
