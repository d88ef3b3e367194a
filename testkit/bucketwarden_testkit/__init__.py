"""Test doubles shipped with bucketwarden: AWS (moto) and Kubernetes (kmock) emulators, and an in-process runner.

The demo, the e2e tests and the benchmarks share them; `AwsFaultProxy` injects AWS faults on the wire, and
`S3Front` (`EnforcedMoto`) enforces bucket policies as AWS would; `run_backup_job` plays an AWS Backup job.
moto and kmock come with the `demo` extra. See docs/testing.md and docs/reliability.md.
"""

from ._backup_job import BackupJob, BackupJobResult, run_backup_job
from ._enforced import FRONT_VARIABLE, EnforcedMoto, front_enabled, moto_for_tests
from ._faults import TRANSIENT_FAULTS, AwsFaultProxy, AwsRequest, ErrorReply, Fault, ProxyRecord, Reply, Rule
from ._front import (
    AWS_NETWORK,
    DEFAULT_NETWORKS,
    DENIED_SID_HEADER,
    HARNESS,
    NAT,
    OFFICE,
    ROOT_ACCESS_KEY_ID,
    VPC_ENDPOINT,
    FrontDecision,
    Network,
    Principal,
    S3Front,
    request_context,
)
from ._kube import (
    PROTECTED_BUCKETS,
    TENANT_POLICIES,
    HarnessTimeoutError,
    KubeClient,
    KubeCluster,
    KubeEmulator,
    KubeTarget,
    ResourceSpec,
    connection_info_from_kubeconfig,
    grant_namespaces,
    kubeconfig_for,
    load_crds,
    wait_until,
)
from ._moto import MotoServer
from ._operator import OperatorHandle, login_via_harness, run_operator_in_thread
from ._process import HarnessError, child_pids, scrubbed_environ
from ._rbac import rbac_grants
from ._s3_operations import S3_OPERATIONS, S3Call, S3Operation, resolve_s3_call

__all__ = [
    "AWS_NETWORK",
    "DEFAULT_NETWORKS",
    "DENIED_SID_HEADER",
    "FRONT_VARIABLE",
    "HARNESS",
    "NAT",
    "OFFICE",
    "PROTECTED_BUCKETS",
    "ROOT_ACCESS_KEY_ID",
    "S3_OPERATIONS",
    "TENANT_POLICIES",
    "TRANSIENT_FAULTS",
    "VPC_ENDPOINT",
    "AwsFaultProxy",
    "AwsRequest",
    "BackupJob",
    "BackupJobResult",
    "EnforcedMoto",
    "ErrorReply",
    "Fault",
    "FrontDecision",
    "HarnessError",
    "HarnessTimeoutError",
    "KubeClient",
    "KubeCluster",
    "KubeEmulator",
    "KubeTarget",
    "MotoServer",
    "Network",
    "OperatorHandle",
    "Principal",
    "ProxyRecord",
    "Reply",
    "ResourceSpec",
    "Rule",
    "S3Call",
    "S3Front",
    "S3Operation",
    "child_pids",
    "connection_info_from_kubeconfig",
    "front_enabled",
    "grant_namespaces",
    "kubeconfig_for",
    "load_crds",
    "login_via_harness",
    "moto_for_tests",
    "rbac_grants",
    "request_context",
    "resolve_s3_call",
    "run_backup_job",
    "run_operator_in_thread",
    "scrubbed_environ",
    "wait_until",
]
