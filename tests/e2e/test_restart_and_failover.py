"""A restart and a leader change, as real processes: the new operator checks every object from its recorded status,
writes nothing to an unchanged object, and keeps the Ready gauge (issue 22; B8 and B10 measure it at scale)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bucketwarden_testkit import (
    PROTECTED_BUCKETS,
    KubeEmulator,
    MotoServer,
    ResourceSpec,
    grant_namespaces,
    scrubbed_environ,
    wait_until,
)
from tests.shared import OUR_SID, fetch, free_port, unique

OBJECTS = 3
LEASES = ResourceSpec("coordination.k8s.io", "v1", "leases", "Lease", "lease", status_subresource=False)
LEASE = {
    "BUCKETWARDEN_LEADER_ELECTION": "true",
    "BUCKETWARDEN_LEADER_ELECTION_NAMESPACE": "default",
    "BUCKETWARDEN_LEADER_ELECTION_LEASE_SECONDS": "3",
    "BUCKETWARDEN_LEADER_ELECTION_RENEW_DEADLINE_SECONDS": "2",
    "BUCKETWARDEN_LEADER_ELECTION_RETRY_SECONDS": "0.5",
}


class Operator:
    """``bucketwarden run`` as a process, with its own metrics and health ports."""

    def __init__(self, moto: MotoServer, kube: KubeEmulator, workdir: Path, name: str, **env: str) -> None:
        self.metrics_port, self.health_port = free_port(), free_port()
        self.log_path = workdir / f"{name}.log"
        environ = scrubbed_environ(
            {
                **moto.env(),
                "KUBECONFIG": str(kube.kubeconfig),
                "HOME": str(workdir),
                "POD_ID": name,
                "BUCKETWARDEN_METRICS_PORT": str(self.metrics_port),
                "BUCKETWARDEN_HEALTH_PORT": str(self.health_port),
                "BUCKETWARDEN_RESYNC_INTERVAL_SECONDS": "300",  # no scheduled tick in the test: only warm-up ones
                "BUCKETWARDEN_LOG_FORMAT": "json",
                **env,
            }
        )
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bucketwarden", "run"], env=environ, stdout=log, stderr=subprocess.STDOUT
            )

    def metrics(self) -> str | None:
        try:
            return fetch(f"http://127.0.0.1:{self.metrics_port}/metrics")
        except OSError:
            return None

    def sample(self, name: str) -> float:
        found = re.findall(rf"^{re.escape(name)} ([0-9.e+-]+)$", self.metrics() or "", re.M)
        return float(found[0]) if found else -1.0

    def warmed_up(self, objects: int) -> bool:
        text = self.metrics() or ""
        ticks = sum(float(n) for n in re.findall(r"^bucketwarden_resync_ticks_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))
        ready = self.sample('bucketwarden_managed_buckets{condition="Ready",status="True"}')
        return ticks >= objects and ready == objects and self.sample("bucketwarden_objects_unchecked") == 0

    def alive(self) -> bool:
        try:
            return bool(fetch(f"http://127.0.0.1:{self.health_port}/healthz"))
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(30)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[MotoServer, KubeEmulator, str]]:
    with MotoServer() as moto, KubeEmulator() as kube, kube.client() as client:
        namespace = unique("bw-restart")
        client.create_namespace(namespace)
        grant_namespaces(client)
        s3 = moto.client("s3")
        for i in range(OBJECTS):
            s3.create_bucket(Bucket=f"{namespace}-{i}")
        yield moto, kube, namespace


def converge(kube: KubeEmulator, namespace: str) -> None:
    with kube.client() as client:
        for i in range(OBJECTS):
            body: dict[str, Any] = {
                "metadata": {"name": f"pb-{i}"},
                "spec": {"bucketName": f"{namespace}-{i}", "allowedSourceIps": ["192.0.2.0/24", "2001:db8::/32"]},
            }
            client.create_object(PROTECTED_BUCKETS, body, namespace=namespace)
        for i in range(OBJECTS):
            client.wait_for_status(
                PROTECTED_BUCKETS,
                f"pb-{i}",
                lambda s: any(c.get("type") == "Ready" and c.get("status") == "True" for c in s.get("conditions", [])),
                namespace=namespace,
                timeout=60,
            )


def writes_to_objects(kube: KubeEmulator) -> list[str]:
    return [
        f"{r['method']} {r['path']}"
        for r in kube.requests()
        if r["method"] in ("PATCH", "PUT", "POST", "DELETE") and "/protectedbuckets" in r["path"]
    ]


@pytest.mark.e2e
def test_a_restarted_operator_checks_every_object_from_its_status_and_writes_nothing(
    world: tuple[MotoServer, KubeEmulator, str], tmp_path: Path
) -> None:
    moto, kube, namespace = world
    first = Operator(moto, kube, tmp_path, "first")
    try:
        converge(kube, namespace)
        time.sleep(1.0)  # kopf's last patches
    finally:
        assert first.stop() == 0
    kube.clear_requests()
    second = Operator(moto, kube, tmp_path, "second")
    try:
        wait_until(lambda: second.warmed_up(OBJECTS), timeout=60, interval=0.2)
        assert writes_to_objects(kube) == []
        assert f'bucketwarden_resync_ticks_total{{path="quiet"}} {float(OBJECTS)}' in (second.metrics() or "")
        assert 'bucketwarden_aws_calls_total{api="PutBucketPolicy"' not in (second.metrics() or "")
    finally:
        second.stop()


@pytest.mark.e2e
def test_a_standby_takes_over_from_a_killed_leader_and_a_stopped_leader_hands_the_lease_over(
    world: tuple[MotoServer, KubeEmulator, str], tmp_path: Path
) -> None:
    moto, kube, namespace = world
    leader = Operator(moto, kube, tmp_path, "replica-a", **LEASE)
    wait_until(lambda: leader.metrics() is not None, timeout=60, interval=0.2)
    standby = Operator(moto, kube, tmp_path, "replica-b", **LEASE)
    try:
        converge(kube, namespace)
        wait_until(standby.alive, timeout=30)
        assert standby.metrics() is None  # a standby runs nothing
        kube.clear_requests()
        assert leader.stop(signal.SIGKILL) != 0  # killed: no release, the Lease must run out
        began = time.monotonic()
        wait_until(lambda: standby.warmed_up(OBJECTS), timeout=60, interval=0.2)
        took_over_s = time.monotonic() - began
        assert took_over_s < 3 + 0.5 + 20  # lease + poll + the operator's start
        assert writes_to_objects(kube) == []
        bucket_policy = moto.client("s3").get_bucket_policy(Bucket=f"{namespace}-0")["Policy"]
        assert OUR_SID in bucket_policy
        lease_writes = [r for r in kube.requests() if "/leases" in r["path"] and r["method"] == "PUT"]
        assert lease_writes  # the new leader renews
    finally:
        assert standby.stop() == 0
        leader.stop(signal.SIGKILL)
    with kube.client() as client:
        released = client.get_object(LEASES, "bucketwarden", namespace="default")
    assert released is not None and released["spec"]["holderIdentity"] == ""  # handed back on SIGTERM


@pytest.mark.e2e
def test_forged_kopf_annotations_cannot_keep_an_object_unreconciled_or_hold_back_every_resync(
    world: tuple[MotoServer, KubeEmulator, str], tmp_path: Path
) -> None:
    """A tenant creates a ProtectedBucket whose kopf annotations (where earlier versions kept kopf's bookkeeping)
    say the create handler already succeeded and the spec was handled. kopf reads its record from status only
    (k8s/_bookkeeping.py), and an old diff-base annotation only for a generation our status says was reconciled:
    the create handler runs, and the object is checked like any other."""
    moto, kube, namespace = world
    forged = {
        "started": "2026-12-01T00:00:00.000000+00:00",
        "stopped": "2026-12-01T00:00:01.000000+00:00",
        "purpose": "create",
        "retries": 1,
        "success": True,
        "failure": False,
    }
    spec = {"bucketName": f"{namespace}-0", "allowedSourceIps": ["192.0.2.0/24"]}
    annotations = {
        "bucketwarden.io/reconcile": json.dumps(forged),
        "bucketwarden.io/last-handled-configuration": json.dumps({"spec": spec}),
        "bucketwarden.io/kopf-managed": "yes",
    }
    operator = Operator(moto, kube, tmp_path, "forged", BUCKETWARDEN_RESYNC_INTERVAL_SECONDS="1")
    try:
        wait_until(lambda: operator.metrics() is not None, timeout=30, what="the operator's metrics")
        with kube.client() as client:
            body: dict[str, Any] = {
                "metadata": {"name": "pb-forged", "annotations": annotations},
                "spec": spec,
            }
            client.create_object(PROTECTED_BUCKETS, body, namespace=namespace)
            client.wait_for_status(
                PROTECTED_BUCKETS,
                "pb-forged",
                lambda s: any(c.get("type") == "Ready" and c.get("status") == "True" for c in s.get("conditions", [])),
                namespace=namespace,
                timeout=60,
            )
            # kopf's create handler ran (not only the resync queue): its record of the handled spec is in status.
            handled = client.get_object(PROTECTED_BUCKETS, "pb-forged", namespace=namespace)
            assert handled is not None and json.loads(handled["status"]["kopf"]["lastHandledConfiguration"])["spec"]
        wait_until(lambda: operator.sample("bucketwarden_objects_unchecked") == 0, timeout=30, what="no unchecked")
        assert OUR_SID in moto.client("s3").get_bucket_policy(Bucket=f"{namespace}-0")["Policy"]
    finally:
        operator.stop()
