"""examples/audit-cronjob: the nightly audit from the operator image, valid for Kubernetes and as locked down as the
chart's Deployment. tests/image runs its container's args from the built image."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart.chartkit import CHART_DIR, REPO_ROOT

CRONJOB = REPO_ROOT / "examples" / "audit-cronjob" / "cronjob.yaml"


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(CRONJOB.read_text()) if doc]


@pytest.fixture(scope="module")
def pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (cronjob,) = (doc for doc in docs if doc["kind"] == "CronJob")
    return dict(cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"])


def test_audit_cronjob_example_validates_against_kubernetes_1_37(docs: list[dict[str, Any]]) -> None:
    assert sorted(doc["kind"] for doc in docs) == ["CronJob", "ServiceAccount"]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)


def test_audit_cronjob_example_runs_the_json_audit_from_the_charts_image(pod: dict[str, Any]) -> None:
    (container,) = pod["containers"]
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert container["image"] == f"{values['image']['repository']}:{chart['appVersion']}"
    assert "command" not in container  # the image's entrypoint, bucketwarden
    assert container["args"][:3] == ["audit", "--output", "json"]


def test_audit_cronjob_example_is_locked_down_like_the_operator(pod: dict[str, Any]) -> None:
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert container["securityContext"] == {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == "/tmp"
    assert {v["name"]: v for v in pod["volumes"]}[mount["name"]]["emptyDir"]
