"""The benches' lean creator: the objects a user applies, none counted among the operator's writes."""

from __future__ import annotations

import pytest

from bench import _fleet
from bench._operator import create_objects, object_body
from bench.workload import NAMESPACE
from bucketwarden_testkit import PROTECTED_BUCKETS, HarnessError, KubeEmulator


def test_the_bench_creates_each_object_as_a_user_applies_it_and_the_writes_are_not_the_operators() -> None:
    with KubeEmulator() as kube, kube.client() as client:
        client.create_namespace(NAMESPACE)
        kube.clear_requests()
        create_objects(client, range(5))
        created = {obj["metadata"]["name"]: obj for obj in client.list_objects(PROTECTED_BUCKETS, namespace=NAMESPACE)}
        assert len(created) == 5
        for index in range(5):
            expected = object_body(index)
            obj = created[expected["metadata"]["name"]]
            assert obj["kind"] == PROTECTED_BUCKETS.kind
            assert obj["metadata"]["namespace"] == NAMESPACE
            assert obj["spec"] == expected["spec"]
        posts = [r for r in kube.requests() if r.get("method") == "POST"]
        assert len(posts) == 5
        assert _fleet.kube_writes(kube.requests()) == {}  # the bench's own creates, not the operator's writes

        with pytest.raises(RuntimeError, match="HTTP 409"):  # a refused create fails the bench, never passes quietly
            create_objects(client, [0])


def test_the_bench_creates_on_the_emulator_only() -> None:
    with KubeEmulator() as kube, kube.client() as client:
        client.api_client.configuration.host = "https://cluster.example:6443"
        with pytest.raises(HarnessError, match="plain HTTP"):
            create_objects(client, [0])
