"""Test doubles shipped with bucketwarden: AWS (moto) and Kubernetes (kmock) emulators, and an in-process runner.

The demo, the e2e tests and the benchmarks share them; `AwsFaultProxy` injects AWS faults on the wire.
moto and kmock come with the `demo` extra. See docs/testing.md and docs/reliability.md.
"""

from ._faults import TRANSIENT_FAULTS, AwsFaultProxy, AwsRequest, ErrorReply, Fault, ProxyRecord, Reply, Rule
from ._kube import (
    PROTECTED_BUCKETS,
    HarnessTimeoutError,
    KubeClient,
    KubeCluster,
    KubeEmulator,
    KubeTarget,
    ResourceSpec,
    connection_info_from_kubeconfig,
    kubeconfig_for,
    load_crds,
    wait_until,
)
from ._moto import MotoServer
from ._operator import OperatorHandle, login_via_harness, run_operator_in_thread
from ._process import HarnessError, scrubbed_environ
from ._rbac import rbac_grants

__all__ = [
    "PROTECTED_BUCKETS",
    "TRANSIENT_FAULTS",
    "AwsFaultProxy",
    "AwsRequest",
    "ErrorReply",
    "Fault",
    "HarnessError",
    "HarnessTimeoutError",
    "KubeClient",
    "KubeCluster",
    "KubeEmulator",
    "KubeTarget",
    "MotoServer",
    "OperatorHandle",
    "ProxyRecord",
    "Reply",
    "ResourceSpec",
    "Rule",
    "connection_info_from_kubeconfig",
    "kubeconfig_for",
    "load_crds",
    "login_via_harness",
    "rbac_grants",
    "run_operator_in_thread",
    "scrubbed_environ",
    "wait_until",
]
