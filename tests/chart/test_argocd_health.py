"""The Argo CD examples: the ProtectedBucket health check (run in Lua 5.1, as Argo CD's gopher-lua) and manifests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from bucketwarden import errors
from bucketwarden.k8s import _handlers
from bucketwarden.k8s._events import CONFLICT
from bucketwarden.reasons import READY_REASONS, VERIFIED_INCONCLUSIVE, reasons_of
from bucketwarden.tenancy import NOT_AUTHORIZED
from tests.chart.chartkit import REPO_ROOT

ARGOCD_DIR = REPO_ROOT / "examples" / "argocd"
HEALTH_KEY = "resource.customizations.health.bucketwarden.io_ProtectedBucket"
TERMINAL_REASONS = reasons_of("terminal")


def _bucket(
    *,
    generation: int = 2,
    observed: int | None = 2,
    ready: tuple[str, str, str] | None = None,
    verified: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    """A ProtectedBucket as Argo CD sees it; ready is (status, reason, message) of the Ready condition."""
    obj: dict[str, Any] = {
        "apiVersion": "bucketwarden.io/v1alpha1",
        "kind": "ProtectedBucket",
        "metadata": {"name": "logs", "namespace": "team-a", "generation": generation},
        "spec": {"bucketName": "team-a-logs"},
    }
    status: dict[str, Any] = {}
    if observed is not None:
        status["observedGeneration"] = observed
    if ready is not None:
        status["conditions"] = [
            {"type": "Drifted", "status": "False", "reason": "InSync"},
            {"type": "Ready", "status": ready[0], "reason": ready[1], "message": ready[2]},
        ]
    if verified is not None:
        status["conditions"].append(
            {"type": "Verified", "status": verified[0], "reason": verified[1], "message": verified[2]}
        )
    if status:
        obj["status"] = status
    return obj


def _run_health_check(script: str, obj: dict[str, Any]) -> dict[str, str]:
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script)
    return {"status": result["status"], "message": result["message"]}


@pytest.fixture(scope="module")
def health_script() -> str:
    return (ARGOCD_DIR / "health.lua").read_text()


@pytest.mark.parametrize(
    ("obj", "status", "message_part"),
    [
        pytest.param(_bucket(observed=None), "Progressing", "Waiting", id="no-status"),
        pytest.param(
            _bucket(ready=("True", "Enforced", "Deny statement in place")),
            "Healthy",
            "Deny statement in place",
            id="ready",
        ),
        pytest.param(_bucket(ready=("True", "Enforced", "")), "Healthy", "enforced", id="ready-no-message"),
        pytest.param(
            _bucket(generation=3, observed=4, ready=("True", "Enforced", "ok")),
            "Healthy",
            "ok",
            id="ready-observed-newer",
        ),
        pytest.param(
            _bucket(generation=3, observed=2, ready=("True", "Enforced", "ok")),
            "Progressing",
            "generation 3",
            id="ready-but-stale-generation",
        ),
        pytest.param(
            _bucket(generation=3, observed=None, ready=("True", "Enforced", "ok")),
            "Progressing",
            "generation 3",
            id="ready-without-observed-generation",
        ),
        pytest.param(
            _bucket(generation=3, observed=2, ready=("False", "RoleNotFound", "no role")),
            "Progressing",
            "generation 3",
            id="terminal-but-stale-generation",
        ),
        pytest.param(
            _bucket(
                ready=("True", "Protected", "ok"), verified=("Unknown", VERIFIED_INCONCLUSIVE, "no moto evaluator")
            ),
            "Healthy",
            "verification is inconclusive: no moto evaluator",
            id="ready-verification-inconclusive",
        ),
        pytest.param(
            _bucket(ready=("True", "Protected", "ok"), verified=("True", "Verified", "fine")),
            "Healthy",
            "ok",
            id="ready-verified",
        ),
        *(
            pytest.param(
                _bucket(ready=("False", reason, "retrying")),
                "Progressing",
                f"{reason}: retrying",
                id=f"progressing-{reason}",
            )
            for reason in reasons_of("progressing")
        ),
        pytest.param(_bucket(), "Progressing", "Waiting", id="status-without-conditions"),
        pytest.param(
            _bucket(ready=("Unknown", "Reconciling", "in progress")),
            "Progressing",
            "Reconciling: in progress",
            id="ready-unknown",
        ),
        pytest.param(
            _bucket(ready=("False", "AwsUnavailable", "503 SlowDown")),
            "Progressing",
            "AwsUnavailable: 503 SlowDown",
            id="retryable-aws-unavailable",
        ),
        pytest.param(
            _bucket(ready=("False", "SomethingNew", "")),
            "Progressing",
            "SomethingNew",
            id="unknown-reason-is-retryable",
        ),
        *(
            pytest.param(
                _bucket(ready=("False", reason, f"{reason} details")),
                "Degraded",
                f"{reason}: {reason} details",
                id=f"terminal-{reason}",
            )
            for reason in TERMINAL_REASONS
        ),
    ],
)
def test_health_check_maps_ready_condition(
    obj: dict[str, Any], status: str, message_part: str, health_script: str
) -> None:
    result = _run_health_check(health_script, obj)
    assert result["status"] == status
    assert message_part in result["message"]


def test_health_check_configmap_embeds_the_same_script(health_script: str) -> None:
    configmap = yaml.safe_load((ARGOCD_DIR / "argocd-cm-health.yaml").read_text())
    assert (configmap["kind"], configmap["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert configmap["data"][HEALTH_KEY] == health_script


def lua_terminal_reasons(script: str) -> set[str]:
    table = re.search(r"local terminalReasons = \{(.*?)\n\}", script, flags=re.DOTALL)
    assert table is not None
    return set(re.findall(r"^\s*([A-Za-z]+) = true,", table.group(1), flags=re.MULTILINE))


def backticked(text: str) -> set[str]:
    return set(re.findall(r"`([A-Z][A-Za-z]+)`", text))


def test_health_check_terminal_reasons_are_the_codes_terminal_reasons(health_script: str) -> None:
    assert lua_terminal_reasons(health_script) == set(TERMINAL_REASONS)


def test_ready_reasons_cover_every_error_the_code_raises() -> None:
    """Every error's reason is listed, retryable ones as progressing; so are the operator's own refusals."""
    found: dict[str, bool] = {}
    pending = [errors.BucketWardenError]
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if cls is not errors.BucketWardenError and cls.__module__ == errors.__name__:  # not the CLI's
            found[cls.reason] = cls.retryable
    source = (REPO_ROOT / "operator" / "bucketwarden" / "aws" / "_errors.py").read_text(encoding="utf-8")
    found |= dict.fromkeys(re.findall(r'reason="([A-Za-z]+)"', source), False)
    found |= dict.fromkeys([CONFLICT, NOT_AUTHORIZED, _handlers.INVALID_SPEC], False)
    assert set(found) <= set(READY_REASONS), set(found) - set(READY_REASONS)
    for reason, retryable in found.items():
        assert READY_REASONS[reason] == ("progressing" if retryable else "terminal"), reason


def test_readme_lists_exactly_the_ready_reasons() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = re.search(r"^Ready reasons: (.*?)\n\n", readme, flags=re.MULTILINE | re.DOTALL)
    assert paragraph is not None
    listed = backticked(paragraph.group(1).split("Events:")[0])
    assert listed == set(READY_REASONS) | {VERIFIED_INCONCLUSIVE}


def test_argocd_doc_lists_exactly_the_terminal_reasons() -> None:
    argocd_doc = (REPO_ROOT / "docs" / "argocd.md").read_text(encoding="utf-8")
    degraded = next(line for line in argocd_doc.splitlines() if line.startswith("| Degraded |"))
    assert backticked(degraded) == set(TERMINAL_REASONS)


@pytest.mark.parametrize("path", sorted(ARGOCD_DIR.glob("*.yaml")), ids=lambda p: Path(p).name)
def test_argocd_examples_parse(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc)


@pytest.mark.parametrize(
    ("filename", "kind", "wave", "sync_options"),
    [
        pytest.param(
            "application-chart.yaml", "Application", "-1", {"CreateNamespace=true", "ServerSideApply=true"}, id="chart"
        ),
        pytest.param(
            "application-buckets.yaml",
            "Application",
            "1",
            {"SkipDryRunOnMissingResource=true"},
            id="buckets",
        ),
    ],
)
def test_argocd_applications_are_ordered_by_sync_wave(
    filename: str, kind: str, wave: str, sync_options: set[str]
) -> None:
    app = yaml.safe_load((ARGOCD_DIR / filename).read_text())
    assert app["kind"] == kind
    assert app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == wave
    assert sync_options <= set(app["spec"]["syncPolicy"]["syncOptions"])


def test_argocd_applicationset_uses_cluster_generator() -> None:
    appset = yaml.safe_load((ARGOCD_DIR / "applicationset-clusters.yaml").read_text())
    assert appset["kind"] == "ApplicationSet"
    assert [next(iter(g)) for g in appset["spec"]["generators"]] == ["clusters"]
    assert appset["spec"]["template"]["spec"]["source"]["path"] == "charts/bucketwarden"
