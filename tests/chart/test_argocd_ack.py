"""The Argo CD example for ACK write-through ignores exactly the field bucketwarden patches on an ACK Bucket."""

from __future__ import annotations

import json

import jsonpatch
import yaml

from bucketwarden.k8s._ack import ACK_GROUP, ack_policy_patch
from tests.chart.chartkit import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "argocd" / "application-ack-buckets.yaml"


def _pointers(patch: dict[str, object], prefix: str = "") -> set[str]:
    """The JSON pointers of the leaves a merge patch sets."""
    out: set[str] = set()
    for key, value in patch.items():
        path = f"{prefix}/{key}"
        out |= _pointers(value, path) if isinstance(value, dict) else {path}
    return out


def test_argocd_ack_example_ignores_what_bucketwarden_patches_and_nothing_else() -> None:
    app = yaml.safe_load(EXAMPLE.read_text())
    assert app["kind"] == "Application" and app["apiVersion"] == "argoproj.io/v1alpha1"
    (rule,) = app["spec"]["ignoreDifferences"]
    assert (rule["group"], rule["kind"]) == (ACK_GROUP, "Bucket")
    patched = _pointers(ack_policy_patch(json.dumps({"Version": "2012-10-17", "Statement": []})))
    assert set(rule["jsonPointers"]) == patched == {"/spec/policy"}
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_argocd_ack_example_pointer_resolves_in_an_ack_bucket() -> None:
    app = yaml.safe_load(EXAMPLE.read_text())
    bucket = {"apiVersion": "s3.services.k8s.aws/v1alpha1", "kind": "Bucket", "spec": {"name": "b", "policy": "{}"}}
    for pointer in app["spec"]["ignoreDifferences"][0]["jsonPointers"]:
        assert jsonpatch.JsonPointer(pointer).resolve(bucket) == "{}"
