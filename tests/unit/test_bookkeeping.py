"""kopf's bookkeeping lives in status.kopf, which only the operator writes (k8s/_bookkeeping.py)."""

from __future__ import annotations

import json
from typing import Any

import kopf
import pytest

from bucketwarden.crd import build_allow_list_crd, build_crd, build_tenant_policy_crd
from bucketwarden.k8s._bookkeeping import (
    DIFFBASE_FIELD,
    LEGACY_DIFFBASE,
    LEGACY_PREFIX,
    PROGRESS_FIELD,
    TOUCH_FIELD,
    handled_before,
    retrying,
    storages,
)

ESSENCE = {"spec": {"bucketName": "b", "allowedSourceIps": ["192.0.2.0/24"]}}


def obj(*, status: dict[str, Any] | None = None, annotations: dict[str, str] | None = None, gen: int = 2) -> kopf.Body:
    meta = {"name": "pb", "namespace": "ns", "generation": gen, "annotations": annotations or {}}
    raw: Any = {"metadata": meta, "spec": ESSENCE["spec"], "status": status or {}}
    return kopf.Body(raw)


def at(tree: Any, field: str) -> Any:
    for part in field.split("."):
        tree = tree[part]
    return tree


@pytest.mark.parametrize("build", [build_crd, build_allow_list_crd, build_tenant_policy_crd])
def test_every_field_kopf_writes_is_declared_in_every_crd(build: Any) -> None:
    """Undeclared, a real API server's structural schema prunes it: kopf would find no record, and handle every
    event of the object as a creation."""
    schema = build()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for field in (DIFFBASE_FIELD, PROGRESS_FIELD, TOUCH_FIELD):
        path = field.split(".")
        node = schema
        for part in path:
            node = node["properties"][part]
        assert node["type"] in ("string", "object"), field


def test_kopf_writes_its_record_into_the_status_patch_and_reads_it_back() -> None:
    progress, diffbase = storages()
    patch = kopf.Patch()
    diffbase.store(body=obj(), patch=patch, essence=ESSENCE)  # type: ignore[arg-type]
    progress.store(body=obj(), patch=patch, key="reconcile", record={"retries": 1, "success": False})  # type: ignore[arg-type]
    assert set(patch) == {"status"}  # nothing for an object PATCH, nothing a tenant can write
    status = json.loads(json.dumps(patch["status"]))
    assert json.loads(at({"status": status}, DIFFBASE_FIELD)) == ESSENCE
    assert at({"status": status}, PROGRESS_FIELD)["reconcile"]["retries"] == 1
    back = obj(status={"observedGeneration": 1, **status})
    assert diffbase.fetch(body=back) == ESSENCE
    assert handled_before(back) and retrying(back)


@pytest.mark.parametrize(
    ("observed", "read"),
    [
        pytest.param(2, True, id="this-generation-reconciled"),
        pytest.param(1, False, id="spec-changed-since"),
        pytest.param(None, False, id="no-status"),
    ],
)
def test_an_earlier_versions_annotation_counts_only_for_a_generation_our_status_says_we_reconciled(
    observed: int | None, read: bool
) -> None:
    """An upgrade reconciles nothing that did not change; a tenant who writes the old annotation (on create, or
    with a new spec) cannot make kopf skip the handler: the status that vouches for it is the operator's."""
    _, diffbase = storages()
    body = obj(
        status={} if observed is None else {"observedGeneration": observed},
        annotations={LEGACY_DIFFBASE: json.dumps(ESSENCE), "bucketwarden.io/kopf-managed": "yes"},
    )
    assert (diffbase.fetch(body=body) == ESSENCE) is read
    assert handled_before(body) is read


def test_progress_annotations_are_no_longer_read() -> None:
    """kopf's old progress annotation, forged to say the create handler succeeded, makes no difference."""
    forged = obj(annotations={"bucketwarden.io/reconcile": '{"success": true, "purpose": "create"}'})
    progress, diffbase = storages()
    assert progress.fetch(body=forged, key="reconcile") is None  # type: ignore[arg-type]
    assert diffbase.fetch(body=forged) is None
    assert not handled_before(forged) and not retrying(forged)


def test_an_upgrade_finds_no_change_in_an_object_an_earlier_build_handled() -> None:
    """What the earlier build stored (its annotation storage's essence of the object) equals what kopf now
    builds from the same object, annotations and all: kopf sees no change, and runs no handler on the upgrade."""
    earlier = kopf.AnnotationsDiffBaseStorage(prefix=LEGACY_PREFIX, key="last-handled-configuration")
    raw: Any = {
        "metadata": {
            "name": "pb",
            "namespace": "ns",
            "generation": 2,
            "uid": "u1",
            "resourceVersion": "9",
            "finalizers": ["bucketwarden.io/finalizer"],
            "labels": {"team": "a"},
            "annotations": {"claims.bucketwarden.io/handover": "2026-12-01T00:00:00Z", "team": "a"},
        },
        "spec": ESSENCE["spec"],
        "status": {"observedGeneration": 2},
    }
    patch = kopf.Patch()
    earlier.store(body=kopf.Body(raw), patch=patch, essence=earlier.build(body=kopf.Body(raw)))
    raw["metadata"]["annotations"].update(patch["metadata"]["annotations"])  # as the API holds it after that patch
    _, diffbase = storages()
    body = kopf.Body(raw)
    assert diffbase.fetch(body=body) == diffbase.build(body=body)
