"""The e2e harness proves itself: a throwaway kopf operator against the Kubernetes target, and moto over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import kopf
import kubernetes.client
import kubernetes.config
import pytest
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from bucketwarden_testkit import KubeClient, KubeTarget, MotoServer, ResourceSpec, scrubbed_environ, wait_until
from tests.shared import unique

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"


@dataclass
class Probe:
    """What the throwaway operator did, shared with the test thread."""

    deleted: set[str] = field(default_factory=set)
    release_deletion: threading.Event = field(default_factory=threading.Event)


def build_probe_registry(resource: ResourceSpec, probe: Probe) -> kopf.OperatorRegistry:
    """A tiny operator: status on create and update, a timer, and a deletion handler (hence a finalizer)."""
    registry = kopf.OperatorRegistry()
    selector = (resource.group, resource.version, resource.plural)

    @kopf.on.create(*selector, registry=registry)
    def created(body: kopf.Body, spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
        kopf.info(body, reason="Seen", message="the probe saw it")
        patch.status["seen"] = True
        patch.status["observedColour"] = spec.get("colour")

    @kopf.on.update(*selector, field="spec", registry=registry)
    def updated(spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
        patch.status["observedColour"] = spec.get("colour")

    @kopf.timer(*selector, interval=0.5, registry=registry)
    def ticked(status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
        patch.status["ticks"] = status.get("ticks", 0) + 1

    @kopf.on.delete(*selector, registry=registry)
    def deleted(name: str, **_: Any) -> None:
        # Held until the test has seen the object waiting on the finalizer.
        if not probe.release_deletion.wait(30):
            raise kopf.PermanentError("the test never released the deletion")
        probe.deleted.add(name)

    return registry


def test_operator_handles_create_update_timer_and_delete(
    kube_client: KubeClient, namespace: str, operator: Any, harness_resource: ResourceSpec
) -> None:
    probe = Probe()
    operator(build_probe_registry(harness_resource, probe))
    name = unique("check")
    try:
        kube_client.create_object(
            harness_resource, {"metadata": {"name": name}, "spec": {"colour": "red"}}, namespace=namespace
        )
        obj = kube_client.wait_for_status(
            harness_resource,
            name,
            lambda s: s.get("seen") is True and s.get("observedColour") == "red",
            namespace=namespace,
        )
        assert KOPF_FINALIZER in obj["metadata"]["finalizers"]
        kube_client.wait_for_status(harness_resource, name, lambda s: s.get("ticks", 0) >= 2, namespace=namespace)

        kube_client.patch_object(harness_resource, name, {"spec": {"colour": "blue"}}, namespace=namespace)
        obj = kube_client.wait_for_status(
            harness_resource, name, lambda s: s.get("observedColour") == "blue", namespace=namespace
        )
        assert obj["metadata"]["generation"] == 2

        assert kube_client.delete_object(harness_resource, name, namespace=namespace)
        pending = kube_client.wait_for(
            harness_resource,
            name,
            lambda obj: obj is not None and "deletionTimestamp" in obj["metadata"],
            namespace=namespace,
            what="deletion pending on the finalizer",
        )
        assert pending is not None
        assert KOPF_FINALIZER in pending["metadata"]["finalizers"]
    finally:
        probe.release_deletion.set()
    kube_client.wait_until_gone(harness_resource, name, namespace=namespace)
    assert probe.deleted == {name}


def test_operator_logs_in_with_a_kubeconfig(
    kube: KubeTarget, kube_client: KubeClient, namespace: str, operator: Any, harness_resource: ResourceSpec
) -> None:
    probe = Probe()
    probe.release_deletion.set()
    operator(build_probe_registry(harness_resource, probe), target=kube.kubeconfig)
    name = unique("kubeconfig")
    kube_client.create_object(harness_resource, {"metadata": {"name": name}, "spec": {}}, namespace=namespace)
    kube_client.wait_for_status(harness_resource, name, lambda s: s.get("seen") is True, namespace=namespace)
    # kopf.info() posts a core v1 event (generateName, in the object's namespace).
    events = wait_until(
        lambda: [e for e in kube_client.list_events(namespace, involved_name=name) if e["reason"] == "Seen"],
        what=f"the probe's event about {name}",
    )
    assert (events[0]["type"], events[0]["message"]) == ("Normal", "the probe saw it")
    kube_client.delete_object(harness_resource, name, namespace=namespace)
    kube_client.wait_until_gone(harness_resource, name, namespace=namespace)
    assert probe.deleted == {name}


def test_kube_objects_get_server_metadata_and_status_only_via_subresource(
    kube_client: KubeClient, namespace: str, harness_resource: ResourceSpec
) -> None:
    name = unique("plain")
    created = kube_client.create_object(
        harness_resource, {"metadata": {"name": name}, "spec": {"colour": "red"}}, namespace=namespace
    )
    meta = created["metadata"]
    assert meta["namespace"] == namespace
    assert all(meta[key] for key in ("uid", "creationTimestamp", "resourceVersion"))
    assert meta["generation"] == 1

    # Status through the main resource is ignored; the spec change in the same patch is not.
    patched = kube_client.patch_object(
        harness_resource, name, {"spec": {"colour": "green"}, "status": {"ignored": True}}, namespace=namespace
    )
    assert "status" not in patched
    assert patched["metadata"]["generation"] == 2
    assert patched["metadata"]["resourceVersion"] != meta["resourceVersion"]

    with_status = kube_client.patch_status(harness_resource, name, {"phase": "Ready"}, namespace=namespace)
    assert with_status["status"] == {"phase": "Ready"}
    assert with_status["metadata"]["generation"] == 2
    fetched = kube_client.get_object(harness_resource, name, namespace=namespace)
    assert fetched is not None
    assert fetched["status"] == {"phase": "Ready"}

    # A stale resourceVersion is a conflict, as on a real server.
    stale = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "spec": {"colour": "stale"}}
    with pytest.raises(ApiException) as conflict:
        kube_client.patch_object(harness_resource, name, stale, namespace=namespace)
    assert conflict.value.status == 409

    assert [o["metadata"]["name"] for o in kube_client.list_objects(harness_resource, namespace=namespace)].count(
        name
    ) == 1
    assert kube_client.delete_object(harness_resource, name, namespace=namespace)
    assert kube_client.get_object(harness_resource, name, namespace=namespace) is None
    assert not kube_client.delete_object(harness_resource, name, namespace=namespace)


def test_kube_watch_resumes_after_the_listed_resource_version(
    kube_client: KubeClient, namespace: str, harness_resource: ResourceSpec
) -> None:
    group, version, plural = harness_resource.group, harness_resource.version, harness_resource.plural
    listed: Any = kube_client.custom.list_namespaced_custom_object(group, version, namespace, plural)
    name = unique("watched")
    kube_client.create_object(harness_resource, {"metadata": {"name": name}}, namespace=namespace)
    stream = watch.Watch()
    events = stream.stream(
        kube_client.custom.list_namespaced_custom_object,
        group,
        version,
        namespace,
        plural,
        resource_version=listed["metadata"]["resourceVersion"],
        timeout_seconds=10,
    )
    first = next(iter(events))
    stream.stop()
    # Only what happened after the list: no replay of older objects.
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", name)
    kube_client.delete_object(harness_resource, name, namespace=namespace)


def test_kube_kubeconfig_works_for_plain_kubernetes_clients(kube: KubeTarget, namespace: str) -> None:
    api_client = kubernetes.config.new_client_from_config(config_file=str(kube.kubeconfig))
    try:
        namespaces = kubernetes.client.CoreV1Api(api_client).list_namespace().items
    finally:
        api_client.close()
    assert namespace in {ns.metadata.name for ns in namespaces if ns.metadata}


def test_moto_bucket_policy_round_trip(moto: MotoServer) -> None:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="harness-bucket")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "HarnessDeny",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::harness-bucket/*",
                "Condition": {"NotIpAddress": {"aws:SourceIp": ["203.0.113.0/24"]}},
            }
        ],
    }
    s3.put_bucket_policy(Bucket="harness-bucket", Policy=json.dumps(policy))
    assert json.loads(s3.get_bucket_policy(Bucket="harness-bucket")["Policy"]) == policy
    assert moto.endpoint_url.startswith("http://127.0.0.1:")


def test_moto_env_points_child_processes_at_moto(moto: MotoServer) -> None:
    moto.client("s3").create_bucket(Bucket="seen-by-child")
    script = "import boto3; print([b['Name'] for b in boto3.client('s3').list_buckets()['Buckets']])"
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=scrubbed_environ(moto.env()),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "['seen-by-child']"


def test_moto_reset_forgets_everything(moto: MotoServer) -> None:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="to-be-forgotten")
    moto.reset()
    assert s3.list_buckets()["Buckets"] == []
