"""The operator logs in as kubectl would, also where the kubernetes client is not installed (the image)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import kopf
import pytest
import yaml

from bucketwarden.k8s._login import login_as_kubectl

SERVER = "https://cluster.example:6443"


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "ctx",
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}}],
        "clusters": [{"name": "c", "cluster": {"server": SERVER, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "sample-token"}}],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.mark.parametrize("client_installed", [pytest.param(True, id="client"), pytest.param(False, id="no-client")])
def test_login_as_kubectl_reads_the_kubeconfig_with_or_without_the_client(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch, client_installed: bool
) -> None:
    if client_installed:
        import kubernetes.config.kube_config

        # The client reads KUBECONFIG once, at import time.
        monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    else:
        # An import of kubernetes (or kubernetes.config) now fails, as in the image.
        for name in [name for name in sys.modules if name == "kubernetes" or name.startswith("kubernetes.")]:
            monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, "kubernetes", None)

    info = login_as_kubectl(logger=logging.getLogger("test"), settings=kopf.OperatorSettings())
    assert info is not None
    assert info.server == SERVER
    assert info.token == "sample-token"


def test_login_as_kubectl_without_client_or_config_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config either

    assert login_as_kubectl(logger=logging.getLogger("test"), settings=kopf.OperatorSettings()) is None
