"""Chart values for production on a shared cluster: Pod Identity egress, memory sized by the B4 benchmark,
security contexts, spreading, extra env and volumes, priority class, the PrometheusRule, and the multi-tenant
example values file. Each is rendered with helm 3 and helm 4."""

from __future__ import annotations

import json
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bucketwarden.k8s import Metrics
from tests.chart.chartkit import (
    CHART_DIR,
    CLUSTER_SCOPED_GRANTS,
    HELMS,
    REPO_ROOT,
    HelmError,
    Manifest,
    Render,
    cluster_scoped_grants,
)

POD_IDENTITY_CIDRS = {"169.254.170.23/32", "fd00:ec2::23/128"}
RESULTS = json.loads((REPO_ROOT / "bench" / "results.json").read_text(encoding="utf-8"))
MULTI_TENANT_VALUES = REPO_ROOT / "examples" / "helm" / "values-multi-tenant.yaml"


def one(docs: list[Manifest], kind: str) -> Manifest:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


def pod(docs: list[Manifest]) -> dict[str, Any]:
    return one(docs, "Deployment")["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container(docs: list[Manifest]) -> dict[str, Any]:
    [c] = pod(docs)["containers"]
    return c  # type: ignore[no-any-return]


def mebibytes(quantity: str) -> float:
    """A Kubernetes memory quantity in MiB (Mi, Gi, M, G)."""
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
    factor = {"Mi": 1.0, "Gi": 1024.0, "M": 1e6 / 2**20, "G": 1e9 / 2**20}[unit]
    return float(number) * factor


def mb_to_mib(mb: float) -> float:
    return mb * 1e6 / 2**20


# --- NetworkPolicy: EKS Pod Identity ---------------------------------------------------------------------------


@pytest.mark.parametrize("helm", HELMS)
@pytest.mark.parametrize("pod_identity", [True, False], ids=["pod-identity", "irsa-only"])
def test_networkpolicy_pod_identity_egress_is_behind_a_value(helm: str, pod_identity: bool, render: Render) -> None:
    values = {"networkPolicy": {"enabled": True, "podIdentity": pod_identity}}
    egress = one(render(helm, values), "NetworkPolicy")["spec"]["egress"]
    port_80 = [rule for rule in egress if any(p["port"] == 80 for p in rule["ports"])]
    if not pod_identity:
        assert port_80 == []
        return
    [rule] = port_80
    assert rule["ports"] == [{"port": 80, "protocol": "TCP"}]
    assert {peer["ipBlock"]["cidr"] for peer in rule["to"]} == POD_IDENTITY_CIDRS  # only the agent, never :80 anywhere


# --- memory: sized by B4 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("helm", HELMS)
def test_default_memory_covers_the_documented_scale_with_headroom(helm: str, render: Render) -> None:
    resources = container(render(helm, {}))["resources"]
    peak_10k = RESULTS["b4_operator"]["10000"]["peak_rss_mb"]
    assert RESULTS["b4_operator"]["measured_at"] >= 10_000  # the number is measured, not extrapolated
    limit = mebibytes(resources["limits"]["memory"])
    assert limit >= 1.5 * mb_to_mib(peak_10k), f"limit {limit} MiB vs B4's {peak_10k} MB at 10,000"
    assert mebibytes(resources["requests"]["memory"]) >= mb_to_mib(RESULTS["b4_operator"]["1000"]["peak_rss_mb"])


def sizing_rows(text: str) -> dict[int, tuple[float, str, str]]:
    """ProtectedBuckets -> (B4 peak RSS MB, request, limit) from a sizing table."""
    rows = re.findall(r"^\| ([0-9,]+) \| ([0-9.]+) MB \| `([0-9]+Mi)` \| `([0-9]+Mi)` \|", text, flags=re.MULTILINE)
    return {int(n.replace(",", "")): (float(rss), req, lim) for n, rss, req, lim in rows}


@pytest.mark.parametrize("doc", ["docs/benchmarks.md", "README.md"])
def test_sizing_table_is_backed_by_b4(doc: str) -> None:
    rows = sizing_rows((REPO_ROOT / doc).read_text(encoding="utf-8"))
    assert set(rows) == {1000, 10000}
    for objects, (rss, request, limit) in rows.items():
        assert rss == RESULTS["b4_operator"][str(objects)]["peak_rss_mb"]
        assert mebibytes(request) >= mb_to_mib(rss), "a request below the measured RSS"
        assert mebibytes(limit) >= 2 * mb_to_mib(rss) * 0.95, "under 2x headroom"
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    assert values["resources"]["limits"]["memory"] == rows[10000][2]  # the default is the 10,000 row's limit


# --- pod and container settings --------------------------------------------------------------------------------

EXTRAS: dict[str, Any] = {
    "podSecurityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 2000},
    "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False, "runAsUser": 1000},
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
    "priorityClassName": "system-cluster-critical",
    "extraEnv": [
        {"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::123456789012:role/bucketwarden"},
        {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/aws/token"},
    ],
    "extraVolumes": [
        {
            "name": "aws-token",
            "projected": {"sources": [{"serviceAccountToken": {"audience": "sts.amazonaws.com", "path": "token"}}]},
        }
    ],
    "extraVolumeMounts": [{"name": "aws-token", "mountPath": "/var/run/secrets/aws", "readOnly": True}],
}


@pytest.mark.parametrize("helm", HELMS)
def test_pod_values_are_rendered_where_kubernetes_reads_them(helm: str, render: Render) -> None:
    docs = render(helm, EXTRAS)
    spec, c = pod(docs), container(docs)
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    # helm merges a values map into the default one: the keys given win, the restricted defaults stay.
    assert spec["securityContext"] == {**defaults["podSecurityContext"], **EXTRAS["podSecurityContext"]}
    assert c["securityContext"] == {**defaults["securityContext"], **EXTRAS["securityContext"]}
    assert spec["topologySpreadConstraints"] == EXTRAS["topologySpreadConstraints"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == "/var/run/secrets/aws/token" and "BUCKETWARDEN_NAMESPACES" in env
    assert [v["name"] for v in spec["volumes"]] == ["tmp", "aws-token"]  # the writable /tmp is kept
    assert [m["mountPath"] for m in c["volumeMounts"]] == ["/tmp", "/var/run/secrets/aws"]


@pytest.mark.parametrize("helm", HELMS)
def test_pod_values_default_to_nothing_extra(helm: str, render: Render) -> None:
    spec = pod(render(helm, {}))
    assert "topologySpreadConstraints" not in spec and "priorityClassName" not in spec
    assert [v["name"] for v in spec["volumes"]] == ["tmp"]


# --- PrometheusRule --------------------------------------------------------------------------------------------


def metric_names() -> set[str]:
    names: set[str] = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count", "created")}
        else:
            names.add(family.name)
    return names


@pytest.mark.parametrize("helm", HELMS)
def test_prometheus_rule_is_off_by_default(helm: str, render: Render) -> None:
    assert [d for d in render(helm, {}) if d["kind"] == "PrometheusRule"] == []


@pytest.mark.parametrize("helm", HELMS)
def test_prometheus_rule_alerts_on_real_metric_names(helm: str, render: Render) -> None:
    values = {"prometheusRule": {"enabled": True, "labels": {"release": "kps"}, "for": "5m", "driftBurstThreshold": 3}}
    rule = one(render(helm, values), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    [group] = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert set(alerts) == {
        "BucketwardenReconcileFailures",
        "BucketwardenBucketsNotReady",
        "BucketwardenVerificationFailures",
        "BucketwardenDriftBurst",
    }
    known = metric_names()
    for alert in alerts.values():
        used = set(re.findall(r"bucketwarden_[a-z_]+", alert["expr"]))
        assert used and used <= known, (alert["alert"], used - known)
        assert "{{ $value }}" in alert["annotations"]["summary"] or "$value" not in alert["annotations"]["summary"]
    assert alerts["BucketwardenReconcileFailures"]["for"] == "5m"
    assert alerts["BucketwardenDriftBurst"]["expr"].endswith("> 3")
    assert 'condition="Verified",status="False"' in alerts["BucketwardenVerificationFailures"]["expr"]


@pytest.mark.parametrize(
    ("values", "offending"),
    [
        pytest.param({"prometheusRule": {"enable": True}}, "enable", id="prometheusRule-typo"),
        pytest.param({"networkPolicy": {"podIdentities": True}}, "podIdentities", id="podIdentity-typo"),
        pytest.param({"extraVolumeMounts": [{"name": "x"}]}, "mountPath", id="mount-without-path"),
        pytest.param({"prometheusRule": {"for": "soon"}}, "for", id="bad-duration"),
    ],
)
@pytest.mark.parametrize("helm", HELMS)
def test_values_schema_rejects_bad_new_values(
    helm: str, values: dict[str, Any], offending: str, render: Render
) -> None:
    with pytest.raises(HelmError, match=offending):
        render(helm, values)


# --- the multi-tenant example ----------------------------------------------------------------------------------


@pytest.mark.parametrize("helm", HELMS)
def test_multi_tenant_example_values_grant_nothing_and_watch_only_the_teams(helm: str, render: Render) -> None:
    values = yaml.safe_load(MULTI_TENANT_VALUES.read_text(encoding="utf-8"))
    docs = render(helm, values)
    env = {e["name"]: e.get("value", "") for e in container(docs)["env"]}
    assert env["BUCKETWARDEN_NAMESPACES"] == ",".join(values["watchNamespaces"])
    assert "BUCKETWARDEN_BUCKET_CLAIMS" not in env  # replaced by TenantPolicy
    # No grant for everyone: the teams' grants are the TenantPolicies of examples/tenantpolicies/.
    assert [d for d in docs if d["kind"] == "TenantPolicy"] == []
    granted = {
        ns
        for path in (REPO_ROOT / "examples" / "tenantpolicies").glob("*.yaml")
        for ns in yaml.safe_load(path.read_text(encoding="utf-8"))["spec"].get("namespaces", [])
    }
    assert granted <= set(values["watchNamespaces"])  # every granted namespace is watched
    # Nothing cluster-wide but what is cluster-scoped itself: no CRDs, no other tenants' buckets.
    assert cluster_scoped_grants(docs) <= CLUSTER_SCOPED_GRANTS


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(EXTRAS, id="pod-extras"),
        pytest.param({"networkPolicy": {"enabled": True, "podIdentity": True}}, id="pod-identity"),
        pytest.param(yaml.safe_load(MULTI_TENANT_VALUES.read_text(encoding="utf-8")), id="multi-tenant-example"),
    ],
)
def test_new_values_render_manifests_kubernetes_accepts(values: dict[str, Any], render: Render) -> None:
    for doc in render("helm4", values):
        if doc["kind"] != "CustomResourceDefinition":
            kubernetes_validate.validate(doc, "1.37.0", strict=True)
