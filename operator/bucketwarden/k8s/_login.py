"""How the operator logs in to the Kubernetes API: as kubectl would, with or without the kubernetes client."""

from __future__ import annotations

from typing import Any

import kopf


def login_as_kubectl(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The in-cluster service account, else the kubeconfig (KUBECONFIG, ~/.kube/config).

    The kubernetes client, when installed, reads every kubeconfig (exec plugins too). The runtime does not
    depend on it (the image stays small), so without it kopf's own readers of the service account and of a
    plain kubeconfig (token, certificates) take over.
    """
    info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)  # None when the client is not installed
    if info is None:
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    return info
