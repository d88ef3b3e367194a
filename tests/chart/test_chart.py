"""The Helm chart: lint, render, validate against Kubernetes schemas, RBAC and security guarantees."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from bucketwarden.crd import build_tenant_policy_crd
from bucketwarden.spec import TenantPolicySpec
from tests.chart.chartkit import CHART_DIR, HELMS, REPO_ROOT, HelmError, Manifest, Render, is_aggregated, run_helm
from tests.unit.test_crd import admit

KUBE_VERSIONS = ("1.30.0", "1.37.0")
NAMESPACES = ["team-a", "team-b"]
PEERING_KINDS = {"ClusterKopfPeering", "KopfPeering"}
# Custom resources of our own CRDs that the chart's templates may render (validated against crds/).
OWN_CR_KINDS = {"TenantPolicy"}
# Custom resources of CRDs that are not ours to validate (the Prometheus Operator's).
FOREIGN_CR_KINDS = {"ServiceMonitor"}

SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": NAMESPACES},
    "metrics-off": {"metrics": {"enabled": False}},
    "ha-clusterwide": {"replicaCount": 2, "peering": {"enabled": True}},
    "ha-namespaced": {"replicaCount": 2, "peering": {"enabled": True}, "watchNamespaces": NAMESPACES},
    "peering-shared-crds": {"peering": {"enabled": True, "createCRDs": False}},
    "ha-leader-election": {"replicaCount": 2, "leaderElection": {"enabled": True}},
    "ha-leader-election-namespaced": {
        "replicaCount": 2,
        "leaderElection": {"enabled": True},
        "watchNamespaces": NAMESPACES,
    },
    "extras-on": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "podDisruptionBudget": {"enabled": True},
        "networkPolicy": {"enabled": True, "kubeApiCidrs": ["10.0.0.1/32"], "metricsFrom": [{"podSelector": {}}]},
        "aws": {"region": "eu-west-1", "endpointUrl": "http://moto.aws.svc:5000"},
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/bw"}},
        "extraEnv": [{"name": "AWS_MAX_ATTEMPTS", "value": "5"}],
        "podAnnotations": {"example.com/team": "platform"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    },
    "netpol-metrics-off": {"networkPolicy": {"enabled": True}, "metrics": {"enabled": False}},
    "grant-all": {"tenancy": {"grantAll": True}},
    "grant-all-namespaced": {"tenancy": {"grantAll": True}, "watchNamespaces": NAMESPACES},
    "aggregated-off": {"rbac": {"aggregateToEdit": False, "aggregateToView": False}},
}


def _own_crd_schema(kind: str) -> dict[str, Any]:
    crd = {"TenantPolicy": build_tenant_policy_crd}[kind]()
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def _ours(docs: list[Manifest]) -> list[Manifest]:
    """The chart's templates, without the ProtectedBucket CRD from crds/ (tested separately)."""
    return [d for d in docs if not d["metadata"]["name"].endswith(".bucketwarden.io")]


def _of_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: list[Manifest], kind: str) -> Manifest:
    [doc] = _of_kind(docs, kind)
    return doc


def _rule_triples(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """RBAC rules as (apiGroup, resource, verb) triples, so that grouping and order do not matter."""
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, f"unexpected rule fields: {rule}"
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _container(docs: list[Manifest]) -> dict[str, Any]:
    container: dict[str, Any]
    [container] = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def _env(docs: list[Manifest]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in _container(docs)["env"]}


@pytest.fixture(scope="module")
def rbac_minimal() -> dict[str, Any]:
    minimal: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docs" / "rbac-minimal.yaml").read_text())
    return minimal


@pytest.fixture(scope="module")
def peering_crds(render: Render) -> dict[str, Manifest]:
    docs = render("helm4", {"peering": {"enabled": True}})
    return {d["spec"]["names"]["kind"]: d for d in _of_kind(docs, "CustomResourceDefinition")}


@pytest.mark.parametrize("helm", HELMS)
@pytest.mark.parametrize(
    ("lint_args", "values"),
    [
        pytest.param((), {}, id="defaults"),
        pytest.param(("--strict",), {}, id="strict"),
        pytest.param(("--strict",), SCENARIOS["ha-namespaced"], id="strict-ha-namespaced"),
        pytest.param(("--strict",), SCENARIOS["extras-on"], id="strict-extras-on"),
        pytest.param(("--strict",), SCENARIOS["grant-all-namespaced"], id="strict-grant-all-namespaced"),
        pytest.param(("--strict",), SCENARIOS["aggregated-off"], id="strict-aggregated-off"),
    ],
)
def test_chart_lints_clean(
    helm: str,
    lint_args: tuple[str, ...],
    values: dict[str, Any],
    helm_binaries: dict[str, Path],
    tmp_path: Path,
) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    out = run_helm(helm_binaries[helm], "lint", str(CHART_DIR), "--values", str(values_file), *lint_args)
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out
    assert "[ERROR]" not in out


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("helm", HELMS)
def test_chart_renders_valid_manifests(
    helm: str, scenario: str, kube_version: str, render: Render, peering_crds: dict[str, Manifest]
) -> None:
    docs = render(helm, SCENARIOS[scenario])
    assert docs
    for doc in docs:
        if doc["kind"] in FOREIGN_CR_KINDS:
            continue
        if doc["kind"] in PEERING_KINDS:
            crd = peering_crds[doc["kind"]]
            group, _, version = doc["apiVersion"].partition("/")
            assert group == crd["spec"]["group"]
            [crd_version] = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
            assert ("namespace" in doc["metadata"]) == (crd["spec"]["scope"] == "Namespaced")
            jsonschema.validate(doc, crd_version["schema"]["openAPIV3Schema"])
            continue
        if doc["kind"] in OWN_CR_KINDS:
            assert admit(doc, schema=_own_crd_schema(doc["kind"])).errors == []
            continue
        kubernetes_validate.validate(doc, kube_version, strict=True)


def test_kubernetes_validate_rejects_unknown_fields() -> None:
    # Guards the test above: strict validation must fail on a field Kubernetes does not know.
    doc = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}, "spec": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, "1.37.0", strict=True)


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        pytest.param(
            "defaults",
            {"ServiceAccount": 1, "ClusterRole": 3, "ClusterRoleBinding": 1, "Deployment": 1, "Service": 1},
            id="defaults",
        ),
        pytest.param(
            "namespaced",
            {
                "ServiceAccount": 1,
                "Role": 2,
                "RoleBinding": 2,
                "ClusterRole": 3,
                "ClusterRoleBinding": 1,
                "Deployment": 1,
                "Service": 1,
            },
            id="namespaced",
        ),
        pytest.param(
            "metrics-off",
            {"ServiceAccount": 1, "ClusterRole": 3, "ClusterRoleBinding": 1, "Deployment": 1},
            id="metrics-off",
        ),
        pytest.param(
            "ha-clusterwide",
            {
                "ServiceAccount": 1,
                "ClusterRole": 3,
                "ClusterRoleBinding": 1,
                "Deployment": 1,
                "Service": 1,
                "CustomResourceDefinition": 2,
                "ClusterKopfPeering": 1,
            },
            id="ha-clusterwide",
        ),
        pytest.param(
            "ha-namespaced",
            {
                "ServiceAccount": 1,
                "Role": 2,
                "RoleBinding": 2,
                "ClusterRole": 3,
                "ClusterRoleBinding": 1,
                "Deployment": 1,
                "Service": 1,
                "CustomResourceDefinition": 2,
                "KopfPeering": 2,
            },
            id="ha-namespaced",
        ),
        pytest.param(
            "peering-shared-crds",
            {
                "ServiceAccount": 1,
                "ClusterRole": 3,
                "ClusterRoleBinding": 1,
                "Deployment": 1,
                "Service": 1,
                "ClusterKopfPeering": 1,
            },
            id="peering-shared-crds",
        ),
        pytest.param(
            "extras-on",
            {
                "ServiceAccount": 1,
                "ClusterRole": 3,
                "ClusterRoleBinding": 1,
                "Deployment": 1,
                "Service": 1,
                "ServiceMonitor": 1,
                "PodDisruptionBudget": 1,
                "NetworkPolicy": 1,
            },
            id="extras-on",
        ),
        pytest.param(
            "netpol-metrics-off",
            {
                "ServiceAccount": 1,
                "ClusterRole": 3,
                "ClusterRoleBinding": 1,
                "Deployment": 1,
                "NetworkPolicy": 1,
            },
            id="netpol-metrics-off",
        ),
        pytest.param(
            "grant-all",
            {
                "ServiceAccount": 1,
                "ClusterRole": 3,
                "ClusterRoleBinding": 1,
                "Deployment": 1,
                "Service": 1,
                "TenantPolicy": 1,
            },
            id="grant-all",
        ),
        pytest.param(
            "grant-all-namespaced",
            {
                "ServiceAccount": 1,
                "Role": 2,
                "RoleBinding": 2,
                "ClusterRole": 3,
                "ClusterRoleBinding": 1,
                "Deployment": 1,
                "Service": 1,
                "TenantPolicy": 1,
            },
            id="grant-all-namespaced",
        ),
        pytest.param(
            "aggregated-off",
            {"ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Deployment": 1, "Service": 1},
            id="aggregated-off",
        ),
    ],
)
@pytest.mark.parametrize("helm", HELMS)
def test_chart_renders_expected_kinds(helm: str, scenario: str, expected: dict[str, int], render: Render) -> None:
    assert Counter(d["kind"] for d in _ours(render(helm, SCENARIOS[scenario]))) == expected


@pytest.mark.parametrize(
    ("values", "offending_key"),
    [
        pytest.param({"replicaCont": 1}, "replicaCont", id="top-level"),
        pytest.param({"operator": {"resyncIntervalSecond": 30}}, "resyncIntervalSecond", id="operator"),
        pytest.param({"metrics": {"enable": False}}, "enable", id="metrics"),
        pytest.param({"peering": {"enabled": True, "nmae": "x"}}, "nmae", id="peering"),
        pytest.param({"serviceAccount": {"annotation": {}}}, "annotation", id="serviceAccount"),
        pytest.param({"networkPolicy": {"enabled": True, "egress": []}}, "egress", id="networkPolicy"),
        pytest.param({"operator": {"logFormat": "xml"}}, "logFormat", id="bad-enum"),
        pytest.param({"watchNamespaces": "team-a"}, "watchNamespaces", id="bad-type"),
        pytest.param({"operator": {"bucketClaims": {"team-a": ["team-a-*"]}}}, "bucketClaims", id="bucket-claims-gone"),
        pytest.param({"tenancy": {"grantAll": "yes"}}, "grantAll", id="tenancy-bad-type"),
        pytest.param({"tenancy": {"grantAll": True, "namespaces": ["*"]}}, "namespaces", id="tenancy"),
        pytest.param({"rbac": {"aggregateToEdit": True, "aggregateToAdmin": True}}, "aggregateToAdmin", id="rbac"),
    ],
)
@pytest.mark.parametrize("helm", HELMS)
def test_values_schema_rejects_typos(helm: str, values: dict[str, Any], offending_key: str, render: Render) -> None:
    with pytest.raises(HelmError, match=offending_key):
        render(helm, values)


def test_values_schema_is_valid_draft7_and_accepts_defaults() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(yaml.safe_load((CHART_DIR / "values.yaml").read_text()))


def test_values_schema_closes_every_object_it_describes() -> None:
    def walk(node: Any, path: str) -> list[str]:
        if isinstance(node, list):
            return [p for i, item in enumerate(node) for p in walk(item, f"{path}[{i}]")]
        if not isinstance(node, dict):
            return []
        open_objects = [path] if "properties" in node and node.get("additionalProperties") is not False else []
        return open_objects + [p for key, child in node.items() for p in walk(child, f"{path}/{key}")]

    assert walk(json.loads((CHART_DIR / "values.schema.json").read_text()), "") == []


@pytest.mark.parametrize("replicas", [2, 3])
@pytest.mark.parametrize("helm", HELMS)
def test_chart_rejects_replicas_without_peering(helm: str, replicas: int, render: Render) -> None:
    with pytest.raises(HelmError, match=rf"replicaCount is {replicas} but neither leaderElection\.enabled"):
        render(helm, {"replicaCount": replicas})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"leaderElection": {"enabled": True}, "peering": {"enabled": True}}, "two ways to HA", id="both-ha"
        ),
        pytest.param(
            {"leaderElection": {"enabled": True, "retrySeconds": 12}}, "retrySeconds < renewDeadline", id="timings"
        ),
        pytest.param({"leaderElection": {"enabled": True}, "sharding": {"shards": 2}}, "one replica per", id="shards"),
    ],
)
@pytest.mark.parametrize("helm", HELMS)
def test_chart_rejects_leader_election_it_cannot_honour(
    helm: str, values: dict[str, Any], message: str, render: Render
) -> None:
    with pytest.raises(HelmError, match=message):
        render(helm, values)


@pytest.mark.parametrize("scenario", ["ha-leader-election", "ha-leader-election-namespaced"])
@pytest.mark.parametrize("helm", HELMS)
def test_leader_election_gets_its_one_lease_in_the_release_namespace(helm: str, scenario: str, render: Render) -> None:
    docs = render(helm, SCENARIOS[scenario])
    role = next(d for d in _of_kind(docs, "Role") if d["metadata"]["name"].endswith("-leader-election"))
    binding = next(d for d in _of_kind(docs, "RoleBinding") if d["metadata"]["name"].endswith("-leader-election"))
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "bucketwarden"
    unnamed = [{k: v for k, v in rule.items() if k != "resourceNames"} for rule in role["rules"]]
    assert _rule_triples(unnamed) == {
        ("coordination.k8s.io", "leases", "create"),
        ("coordination.k8s.io", "leases", "get"),
        ("coordination.k8s.io", "leases", "update"),
    }
    env = _env(docs)
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert [r["resourceNames"] for r in named] == [[env["BUCKETWARDEN_LEADER_ELECTION_NAME"]]]
    assert env["BUCKETWARDEN_LEADER_ELECTION"] == "true" and env["BUCKETWARDEN_PEERING"] == "false"
    assert _one(docs, "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"


@pytest.mark.parametrize(
    ("kube_version", "accepted"),
    [pytest.param("1.30.0", False, id="1.30-rejected"), pytest.param("1.31.0", True, id="1.31-accepted")],
)
@pytest.mark.parametrize("helm", HELMS)
def test_chart_requires_kubernetes_1_31(helm: str, kube_version: str, accepted: bool, render: Render) -> None:
    if accepted:
        assert render(helm, {}, "--kube-version", kube_version)
    else:
        with pytest.raises(HelmError, match="kubeVersion"):
            render(helm, {}, "--kube-version", kube_version)


@pytest.mark.parametrize("scenario", ["defaults", "ha-namespaced", "extras-on"])
@pytest.mark.parametrize("helm", HELMS)
def test_deployment_has_restricted_security_context(helm: str, scenario: str, render: Render) -> None:
    docs = render(helm, SCENARIOS[scenario])
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(forbidden)
    container = _container(docs)
    assert container["securityContext"] == {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    [tmp_mount] = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    [tmp_volume] = [v for v in pod["volumes"] if v["name"] == tmp_mount["name"]]
    assert "emptyDir" in tmp_volume


@pytest.mark.parametrize("scenario", ["defaults", "metrics-off", "ha-clusterwide"])
@pytest.mark.parametrize("helm", HELMS)
def test_deployment_probes_hit_healthz_on_health_port(helm: str, scenario: str, render: Render) -> None:
    container = _container(render(helm, SCENARIOS[scenario]))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == 8081
    assert ("metrics" in ports) == (scenario != "metrics-off")
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}


@pytest.mark.parametrize(
    ("scenario", "strategy"),
    [
        pytest.param("defaults", "Recreate", id="single-recreate"),
        pytest.param("namespaced", "Recreate", id="namespaced-recreate"),
        pytest.param("ha-clusterwide", "RollingUpdate", id="peering-rolling"),
        pytest.param("peering-shared-crds", "RollingUpdate", id="peering-one-replica-rolling"),
        pytest.param("ha-leader-election", "RollingUpdate", id="leader-election-rolling"),
    ],
)
@pytest.mark.parametrize("helm", HELMS)
def test_deployment_strategy_follows_peering(helm: str, scenario: str, strategy: str, render: Render) -> None:
    assert _one(render(helm, SCENARIOS[scenario]), "Deployment")["spec"]["strategy"]["type"] == strategy


_DEFAULT_ENV = {
    "BUCKETWARDEN_NAMESPACES": "",
    "BUCKETWARDEN_RESYNC_INTERVAL_SECONDS": "60",
    "BUCKETWARDEN_ROLE_CACHE_TTL_SECONDS": "300",
    "BUCKETWARDEN_MAX_CONCURRENT_RECONCILES": "16",
    "BUCKETWARDEN_RECONCILE_PROCESSES": "0",
    "BUCKETWARDEN_LOG_FORMAT": "json",
    "BUCKETWARDEN_LOG_LEVEL": "INFO",
    "BUCKETWARDEN_METRICS_PORT": "8080",
    "BUCKETWARDEN_HEALTH_PORT": "8081",
    "BUCKETWARDEN_PEERING": "false",
    "BUCKETWARDEN_PEERING_NAME": "bucketwarden",
    "BUCKETWARDEN_BUCKET_CLAIMS": None,
    "AWS_REGION": None,
    "AWS_DEFAULT_REGION": None,
    "AWS_ENDPOINT_URL": None,
}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param({}, _DEFAULT_ENV, id="defaults"),
        pytest.param(SCENARIOS["namespaced"], {"BUCKETWARDEN_NAMESPACES": "team-a,team-b"}, id="namespaces"),
        pytest.param(SCENARIOS["metrics-off"], {"BUCKETWARDEN_METRICS_PORT": "0"}, id="metrics-off"),
        pytest.param(SCENARIOS["ha-clusterwide"], {"BUCKETWARDEN_PEERING": "true"}, id="peering"),
        pytest.param(
            {
                "operator": {
                    "resyncIntervalSeconds": 30,
                    "roleCacheTtlSeconds": 0,
                    "maxConcurrentReconciles": 4,
                    "reconcileProcesses": 2,
                    "logFormat": "text",
                    "logLevel": "DEBUG",
                },
                "metrics": {"port": 9090},
                "health": {"port": 9091},
                "peering": {"name": "bw-peering"},
            },
            {
                "BUCKETWARDEN_RESYNC_INTERVAL_SECONDS": "30",
                "BUCKETWARDEN_ROLE_CACHE_TTL_SECONDS": "0",
                "BUCKETWARDEN_MAX_CONCURRENT_RECONCILES": "4",
                "BUCKETWARDEN_RECONCILE_PROCESSES": "2",
                "BUCKETWARDEN_LOG_FORMAT": "text",
                "BUCKETWARDEN_LOG_LEVEL": "DEBUG",
                "BUCKETWARDEN_METRICS_PORT": "9090",
                "BUCKETWARDEN_HEALTH_PORT": "9091",
                "BUCKETWARDEN_PEERING_NAME": "bw-peering",
            },
            id="settings",
        ),
        pytest.param(
            SCENARIOS["extras-on"],
            {
                "AWS_REGION": "eu-west-1",
                "AWS_DEFAULT_REGION": "eu-west-1",
                "AWS_ENDPOINT_URL": "http://moto.aws.svc:5000",
                "AWS_MAX_ATTEMPTS": "5",
            },
            id="aws-and-extra-env",
        ),
    ],
)
@pytest.mark.parametrize("helm", HELMS)
def test_deployment_env_carries_operator_settings(
    helm: str, values: dict[str, Any], expected: dict[str, str | None], render: Render
) -> None:
    env = _env(render(helm, values))
    assert {name: env.get(name) for name in expected} == expected


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("helm", HELMS)
def test_rbac_rules_match_minimal_doc(helm: str, scenario: str, render: Render, rbac_minimal: dict[str, Any]) -> None:
    values = SCENARIOS[scenario]
    docs = [d for d in render(helm, values) if not _is_extra_cluster_rbac(d)]  # tested below
    namespaces = values.get("watchNamespaces", [])
    mode = "namespaced" if namespaces else "clusterwide"
    expected = rbac_minimal[mode]["rules"]
    if values.get("peering", {}).get("enabled"):
        expected = expected + rbac_minimal[mode]["peeringRules"]
    role_kind, binding_kind = ("Role", "RoleBinding") if namespaces else ("ClusterRole", "ClusterRoleBinding")
    absent_kinds = {"ClusterRole", "ClusterRoleBinding"} if namespaces else {"Role", "RoleBinding"}

    assert not [d for d in docs if d["kind"] in absent_kinds]
    roles = _of_kind(docs, role_kind)
    assert sorted(r["metadata"].get("namespace", "") for r in roles) == (sorted(namespaces) or [""])
    for role in roles:
        assert _rule_triples(role["rules"]) == _rule_triples(expected)

    service_account = _one(docs, "ServiceAccount")["metadata"]
    bindings = _of_kind(docs, binding_kind)
    assert len(bindings) == len(roles)
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role_kind,
            "name": roles[0]["metadata"]["name"],
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": service_account["name"], "namespace": "bucketwarden"}
        ]


def _is_extra_cluster_rbac(doc: Manifest) -> bool:
    """A namespaced install's small ClusterRole (and binding), and the aggregated roles for namespace users."""
    kind: str = doc["kind"]
    name: str = doc["metadata"]["name"]
    if name.endswith("-leader-election"):  # its one Lease, in the release namespace (tested on its own)
        return True
    return kind.startswith("ClusterRole") and name.endswith(("-cluster-scoped", "-edit", "-view"))


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("helm", HELMS)
def test_rbac_cluster_scoped_resources_are_granted_in_both_install_modes(
    helm: str, scenario: str, render: Render, rbac_minimal: dict[str, Any]
) -> None:
    """SourceAllowLists, TenantPolicies and namespaces are cluster-scoped: a namespaced install needs its one
    small ClusterRole for them; a cluster-wide install has them in its own ClusterRole."""
    values = SCENARIOS[scenario]
    docs = render(helm, values)
    operator_roles = [d for d in _of_kind(docs, "ClusterRole") if not is_aggregated(d)]
    cluster_scoped = _rule_triples(rbac_minimal["namespaced"]["clusterRules"])
    assert {r for _, r, _ in cluster_scoped} == {
        "sourceallowlists",
        "sourceallowlists/status",
        "tenantpolicies",
        "tenantpolicies/status",
        "namespaces",
    }
    (role,) = operator_roles
    if values.get("watchNamespaces"):
        assert role["metadata"]["name"].endswith("-cluster-scoped")
        assert _rule_triples(role["rules"]) == cluster_scoped
    else:
        assert cluster_scoped <= _rule_triples(role["rules"])
    (binding,) = _of_kind(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("helm", HELMS)
def test_rbac_operator_never_writes_a_tenant_policy(helm: str, scenario: str, render: Render) -> None:
    """Only cluster admins write TenantPolicies: the operator reads them and writes their status, nothing more."""
    docs = render(helm, SCENARIOS[scenario])
    roles = [d for d in docs if d["kind"] in ("ClusterRole", "Role") and not is_aggregated(d)]
    triples = {t for role in roles for t in _rule_triples(role["rules"])}
    assert {(r, v) for g, r, v in triples if r.startswith("tenantpolicies") and g == "bucketwarden.io"} == {
        ("tenantpolicies", "list"),
        ("tenantpolicies", "watch"),
        ("tenantpolicies/status", "patch"),
    }
    assert {v for _, r, v in triples if r == "namespaces"} == {"list", "watch"}


EDIT_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
READ_VERBS = {"get", "list", "watch"}
EDIT_ROLE = (
    {"aggregate-to-admin", "aggregate-to-edit"},
    {("protectedbuckets", v) for v in EDIT_VERBS} | {("sourceallowlists", v) for v in READ_VERBS},
)
VIEW_ROLE = (
    {"aggregate-to-view"},
    {("protectedbuckets", v) for v in READ_VERBS} | {("sourceallowlists", v) for v in READ_VERBS},
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param({}, {"bucketwarden-edit": EDIT_ROLE, "bucketwarden-view": VIEW_ROLE}, id="defaults"),
        pytest.param(
            SCENARIOS["namespaced"], {"bucketwarden-edit": EDIT_ROLE, "bucketwarden-view": VIEW_ROLE}, id="namespaced"
        ),
        pytest.param({"rbac": {"aggregateToView": False}}, {"bucketwarden-edit": EDIT_ROLE}, id="view-off"),
        pytest.param({"rbac": {"aggregateToEdit": False}}, {"bucketwarden-view": VIEW_ROLE}, id="edit-off"),
        pytest.param(SCENARIOS["aggregated-off"], {}, id="both-off"),
    ],
)
@pytest.mark.parametrize("helm", HELMS)
def test_rbac_aggregated_roles_for_namespace_users(
    helm: str, values: dict[str, Any], expected: dict[str, tuple[set[str], set[tuple[str, str]]]], render: Render
) -> None:
    """As cert-manager does: <release>-edit into admin and edit, <release>-view into view; bound to nobody."""
    docs = render(helm, values)
    aggregated = {d["metadata"]["name"]: d for d in docs if is_aggregated(d)}
    got = {
        name: (
            {k.removeprefix("rbac.authorization.k8s.io/") for k, v in d["metadata"]["labels"].items() if v == "true"},
            {(r, v) for _, r, v in _rule_triples(d["rules"])},
        )
        for name, d in aggregated.items()
    }
    assert got == expected
    for d in aggregated.values():
        assert {g for g, _, _ in _rule_triples(d["rules"])} == {"bucketwarden.io"}
    bound = {b["roleRef"]["name"] for b in docs if b["kind"] in ("ClusterRoleBinding", "RoleBinding")}
    assert not bound & set(aggregated)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("helm", HELMS)
def test_rbac_aggregated_roles_grant_nothing_on_tenant_policies_or_status(
    helm: str, scenario: str, render: Render
) -> None:
    """Decided: not even read. A TenantPolicy names other tenants' buckets, role ARNs and ExternalIds; a
    tenant needs none of it (NotAuthorized names the missing grant), and a cluster-wide `view` binding would
    otherwise show every grant to every viewer. Status is the operator's to write, never a namespace user's."""
    aggregated = [d for d in render(helm, SCENARIOS[scenario]) if is_aggregated(d)]
    resources = {r for d in aggregated for _, r, _ in _rule_triples(d["rules"])}
    assert not {r for r in resources if r.startswith("tenantpolicies") or "/" in r}
    assert "*" not in {v for d in aggregated for _, _, v in _rule_triples(d["rules"])}


@pytest.mark.parametrize(
    ("mode", "forbidden"),
    [
        pytest.param("namespaced", ("apiextensions.k8s.io", "customresourcedefinitions"), id="namespaced-no-crds"),
        pytest.param("namespaced", ("", "secrets"), id="namespaced-no-secrets"),
        pytest.param("clusterwide", ("", "nodes"), id="clusterwide-no-nodes"),
        pytest.param("clusterwide", ("", "secrets"), id="clusterwide-no-secrets"),
    ],
)
def test_rbac_minimal_doc_grants_nothing_needless(
    mode: str, forbidden: tuple[str, str], rbac_minimal: dict[str, Any]
) -> None:
    rules = (
        rbac_minimal[mode]["rules"] + rbac_minimal[mode]["peeringRules"] + rbac_minimal[mode].get("clusterRules", [])
    )
    assert not {(g, r) for g, r, _ in _rule_triples(rules)} & {forbidden}
    assert not {v for _, _, v in _rule_triples(rules)} & {"*", "delete", "deletecollection", "escalate", "bind"}


# --- tenancy ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if not SCENARIOS[s].get("tenancy", {}).get("grantAll")])
@pytest.mark.parametrize("helm", HELMS)
def test_chart_creates_no_tenant_policy_by_default(helm: str, scenario: str, render: Render) -> None:
    """Default deny: without tenancy.grantAll no namespace is granted anything by the chart."""
    assert _of_kind(render(helm, SCENARIOS[scenario]), "TenantPolicy") == []


@pytest.mark.parametrize("scenario", ["grant-all", "grant-all-namespaced"])
@pytest.mark.parametrize("helm", HELMS)
def test_chart_grant_all_renders_one_visible_all_namespaces_policy(helm: str, scenario: str, render: Render) -> None:
    (policy,) = _of_kind(render(helm, SCENARIOS[scenario]), "TenantPolicy")
    assert (policy["apiVersion"], policy["metadata"]["name"]) == ("bucketwarden.io/v1alpha1", "all-namespaces")
    assert "namespace" not in policy["metadata"]  # cluster-scoped
    assert admit(policy, schema=_own_crd_schema("TenantPolicy")).errors == []
    spec = TenantPolicySpec.model_validate(policy["spec"])
    assert (spec.namespaces, spec.buckets, spec.assume_role_arns, spec.external_ids) == (["*"], ["*"], [], [])
    assert spec.grants_all_namespaces
    # Argo CD's dry run runs before the CRD exists on a first sync.
    assert policy["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "SkipDryRunOnMissingResource=true"


@pytest.mark.parametrize(
    ("values", "present", "absent"),
    [
        pytest.param(
            {},
            [
                "no TenantPolicy is installed",
                "NotAuthorized",
                "kind: TenantPolicy",
                "kubectl apply -f -",
                "bucketwarden-edit is aggregated into admin and edit",
                "bucketwarden-view is aggregated into view",
            ],
            ["TenantPolicy all-namespaces"],
            id="default-deny",
        ),
        pytest.param(
            {"tenancy": {"grantAll": True}},
            ["the TenantPolicy all-namespaces (tenancy.grantAll=true) grants every namespace every bucket"],
            ["no TenantPolicy is installed", "NotAuthorized"],
            id="grant-all",
        ),
        pytest.param(
            {"rbac": {"aggregateToEdit": False, "aggregateToView": False}},
            ["no TenantPolicy is installed"],
            ["aggregated into"],
            id="aggregated-off",
        ),
        pytest.param(
            {"watchNamespaces": NAMESPACES},
            ["ClusterRole bucketwarden-cluster-scoped: SourceAllowLists, TenantPolicies and namespaces"],
            ["no cluster-wide access"],
            id="namespaced",
        ),
    ],
)
def test_notes_state_the_tenancy_in_force(
    values: dict[str, Any], present: list[str], absent: list[str], helm_binaries: dict[str, Path], tmp_path: Path
) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    # helm 4 renders NOTES.txt offline (a client-side dry run); helm 3's needs a cluster.
    out = run_helm(
        helm_binaries["helm4"],
        "install",
        "bucketwarden",
        str(CHART_DIR),
        "-n",
        "bucketwarden",
        "--dry-run=client",
        "--values",
        str(values_file),
    )
    notes = " ".join(out.split("NOTES:", 1)[1].split())  # one line: the wrapping does not matter
    for text in present:
        assert " ".join(text.split()) in notes
    for text in absent:
        assert text not in notes


@pytest.mark.parametrize(
    ("scenario", "kind", "namespaces"),
    [
        pytest.param("ha-clusterwide", "ClusterKopfPeering", [None], id="clusterwide"),
        pytest.param("ha-namespaced", "KopfPeering", NAMESPACES, id="namespaced"),
    ],
)
@pytest.mark.parametrize("helm", HELMS)
def test_peering_object_is_created_after_its_crd(
    helm: str, scenario: str, kind: str, namespaces: list[str | None], render: Render
) -> None:
    docs = render(helm, SCENARIOS[scenario])
    peerings = _of_kind(docs, kind)
    assert sorted(map(str, (p["metadata"].get("namespace") for p in peerings))) == sorted(map(str, namespaces))
    for peering in peerings:
        assert peering["metadata"]["name"] == "bucketwarden"
        # Helm cannot create a custom resource in the same pass as its CRD: a post-install hook can.
        assert peering["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    for crd in _of_kind(_ours(docs), "CustomResourceDefinition"):
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


@pytest.mark.parametrize(
    ("scenario", "ingress_ports"),
    [
        pytest.param("extras-on", ["metrics"], id="metrics-on"),
        pytest.param("netpol-metrics-off", [], id="metrics-off"),
    ],
)
@pytest.mark.parametrize("helm", HELMS)
def test_networkpolicy_allows_only_dns_https_api_and_metrics(
    helm: str, scenario: str, ingress_ports: list[str], render: Render
) -> None:
    spec = _one(render(helm, SCENARIOS[scenario]), "NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert [p["port"] for rule in spec["ingress"] for p in rule["ports"]] == ingress_ports
    egress_ports = {(p["port"], p["protocol"]) for rule in spec["egress"] for p in rule["ports"]}
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (443, "TCP"), (6443, "TCP")}


def test_chart_metadata_matches_contract() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    pyproject_version = re.search(r'^version = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.M)
    assert pyproject_version
    assert (chart["apiVersion"], chart["version"], chart["appVersion"], chart["kubeVersion"]) == (
        "v2",
        "0.1.0",
        pyproject_version.group(1),
        ">=1.31.0-0",
    )


def _top_level_crds() -> dict[str, bytes]:
    top_level = {p.name: p.read_bytes() for p in sorted((REPO_ROOT / "crds").glob("*.y*ml"))}
    if not top_level:
        pytest.skip("crds/ has no YAML yet: generate it with `make crd` (bucketwarden crd)")
    return top_level


def test_chart_crds_equal_top_level_crds() -> None:
    top_level = _top_level_crds()
    in_chart = {p.name: p.read_bytes() for p in sorted((CHART_DIR / "crds").iterdir()) if p.is_file()}
    assert sorted(in_chart) == sorted(top_level), "charts/bucketwarden/crds/ must hold exactly crds/*"
    for name, content in top_level.items():
        assert in_chart[name] == content, f"charts/bucketwarden/crds/{name} differs from crds/{name}"
    assert "bucketwarden.io_protectedbuckets.yaml" in top_level


def test_protectedbucket_crd_matches_chart_contract() -> None:
    # The chart's RBAC (protectedbuckets, protectedbuckets/status) and the Argo CD health check rely on these.
    crd = yaml.safe_load(_top_level_crds()["bucketwarden.io_protectedbuckets.yaml"])
    names = crd["spec"]["names"]
    assert (crd["spec"]["group"], crd["spec"]["scope"]) == ("bucketwarden.io", "Namespaced")
    assert (names["kind"], names["plural"], names["shortNames"], names["categories"]) == (
        "ProtectedBucket",
        "protectedbuckets",
        ["pb"],
        ["bucketwarden"],
    )
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    assert version["served"]
    assert version["storage"]
    assert version["subresources"]["status"] == {}
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"observedGeneration", "conditions"} <= set(status)


@pytest.mark.parametrize("scenario", ["defaults", "extras-on", "ha-namespaced"])
def test_deployment_env_is_accepted_by_operator_settings(
    scenario: str, render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bucketwarden.k8s import OperatorSettings  # what `bucketwarden run` reads from its environment

    env = _env(render("helm4", SCENARIOS[scenario]))
    prefix = OperatorSettings.model_config["env_prefix"]
    ours = {name: value for name, value in env.items() if name.startswith(prefix)}
    assert {name.removeprefix(prefix).lower() for name in ours} <= set(OperatorSettings.model_fields)
    for name in [n for n in os.environ if n.startswith(prefix)]:
        monkeypatch.delenv(name)
    for name, value in ours.items():
        monkeypatch.setenv(name, value)
    settings = OperatorSettings()
    values = SCENARIOS[scenario]
    assert settings.namespaces == values.get("watchNamespaces", [])
    assert settings.peering == values.get("peering", {}).get("enabled", False)
    assert (settings.metrics_port, settings.health_port) == (8080, 8081)
