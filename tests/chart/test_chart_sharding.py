"""The chart's sharding and drift-queue values: one Deployment per shard, each told its shard, none overlapping."""

from __future__ import annotations

import os
from typing import Any

import kubernetes_validate
import pytest

from tests.chart.chartkit import HELMS, HelmError, Manifest, Render

QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/bucketwarden-drift"


def _deployments(docs: list[Manifest]) -> list[Manifest]:
    return [d for d in docs if d["kind"] == "Deployment"]


def _env(deployment: Manifest) -> dict[str, str]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


@pytest.mark.parametrize("shards", [2, 3])
@pytest.mark.parametrize("helm", HELMS)
def test_chart_sharding_renders_one_deployment_per_shard(helm: str, shards: int, render: Render) -> None:
    deployments = _deployments(render(helm, {"sharding": {"shards": shards}}))
    assert len(deployments) == shards
    assert len({d["metadata"]["name"] for d in deployments}) == shards
    indices = sorted(int(_env(d)["BUCKETWARDEN_SHARD_INDEX"]) for d in deployments)
    assert indices == list(range(shards))
    assert {_env(d)["BUCKETWARDEN_SHARD_COUNT"] for d in deployments} == {str(shards)}
    for d in deployments:
        kubernetes_validate.validate(d, "1.37.0", strict=True)
        selector = d["spec"]["selector"]["matchLabels"]
        assert selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        assert d["spec"]["replicas"] == 1
        assert d["spec"]["strategy"]["type"] == "Recreate"
    # No pod of one shard matches another shard's selector.
    selectors = [frozenset(d["spec"]["selector"]["matchLabels"].items()) for d in deployments]
    pods = [frozenset(d["spec"]["template"]["metadata"]["labels"].items()) for d in deployments]
    assert [[s <= p for p in pods] for s in selectors] == [[i == j for j in range(shards)] for i in range(shards)]


@pytest.mark.parametrize("helm", HELMS)
def test_chart_one_shard_is_the_plain_deployment(helm: str, render: Render) -> None:
    default, one = _deployments(render(helm, {})), _deployments(render(helm, {"sharding": {"shards": 1}}))
    assert default == one
    [deployment] = default
    assert "BUCKETWARDEN_SHARD_COUNT" not in _env(deployment)
    assert "bucketwarden.io/shard" not in deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({"sharding": {"shards": 2}, "peering": {"enabled": True}}, id="peering"),
        pytest.param({"sharding": {"shards": 2}, "replicaCount": 2, "peering": {"enabled": True}}, id="replicas"),
    ],
)
@pytest.mark.parametrize("helm", HELMS)
def test_chart_sharding_rejects_replicas_per_shard(helm: str, values: dict[str, Any], render: Render) -> None:
    with pytest.raises(HelmError, match="one replica per shard"):
        render(helm, values)


@pytest.mark.parametrize(
    ("values", "offending"),
    [
        pytest.param({"sharding": {"shards": 0}}, "shards", id="zero-shards"),
        pytest.param({"sharding": {"shard": 2}}, "shard", id="typo"),
        pytest.param({"driftQueue": {"url": "sqs://x"}}, "url", id="bad-url"),
        pytest.param({"driftQueue": {"url": QUEUE_URL, "waitSeconds": 30}}, "waitSeconds", id="wait-over-20"),
    ],
)
@pytest.mark.parametrize("helm", HELMS)
def test_chart_sharding_and_queue_values_are_checked(
    helm: str, values: dict[str, Any], offending: str, render: Render
) -> None:
    with pytest.raises(HelmError, match=offending):
        render(helm, values)


def test_chart_drift_queue_env_is_accepted_by_operator_settings(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bucketwarden.k8s import OperatorSettings

    deployments = _deployments(render("helm4", {"sharding": {"shards": 2}, "driftQueue": {"url": QUEUE_URL}}))
    for name in [n for n in os.environ if n.startswith("BUCKETWARDEN_")]:
        monkeypatch.delenv(name)
    seen = set()
    for deployment in deployments:
        for name, value in _env(deployment).items():
            if name.startswith("BUCKETWARDEN_"):
                monkeypatch.setenv(name, value)
        settings = OperatorSettings()
        assert settings.drift_queue_url == QUEUE_URL
        assert settings.drift_queue_wait_seconds == 20
        assert settings.shard_count == 2
        seen.add(settings.shard_index)
    assert seen == {0, 1}
