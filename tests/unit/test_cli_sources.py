"""allowedSourcesFrom offline: render/plan resolve SourceAllowLists from the same files, or refuse to guess."""

from __future__ import annotations

from pathlib import Path

import pytest

from bucketwarden.cli import main
from bucketwarden.exitcodes import ExitCode
from bucketwarden.manifests import load_manifests
from bucketwarden.policy import PolicyDocument

BUCKET = """\
apiVersion: bucketwarden.io/v1alpha1
kind: ProtectedBucket
metadata: {name: data}
spec:
  bucketName: awsbackup-test-001
  allowedSourceIps: [203.0.113.7]
  allowedSourcesFrom: [{name: corp-egress}]
"""
LIST = """\
apiVersion: bucketwarden.io/v1alpha1
kind: SourceAllowList
metadata: {name: corp-egress}
spec: {cidrs: [192.0.2.0/24, 198.51.100.0/24], owner: network}
"""


def test_load_manifests_resolves_lists_from_the_same_documents(tmp_path: Path) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(BUCKET + "---\n" + LIST)
    (manifest,) = load_manifests(path)
    assert manifest.resource.spec.allowed_source_ips == ["203.0.113.7", "192.0.2.0/24", "198.51.100.0/24"]


def test_load_manifests_resolves_lists_from_another_file_of_the_folder(tmp_path: Path) -> None:
    (tmp_path / "bucket.yaml").write_text(BUCKET)
    (tmp_path / "lists.yaml").write_text(LIST)
    (manifest,) = load_manifests(tmp_path)
    assert "192.0.2.0/24" in manifest.resource.spec.allowed_source_ips


def test_cli_render_writes_the_union(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(BUCKET + "---\n" + LIST)
    assert main(["render", "-f", str(path)]) == 0
    (ours,) = PolicyDocument.parse(capsys.readouterr().out).find("BucketWardenIpRestriction")
    assert set(ours.conditions["NotIpAddress"]["aws:sourceip"]) == {
        "203.0.113.7/32",
        "192.0.2.0/24",
        "198.51.100.0/24",
    }  # bare addresses are written as /32


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        ([BUCKET], "SourceAllowList corp-egress not found"),
        ([BUCKET, LIST.replace("192.0.2.0/24", "192.0.2.0/33")], "is not an IPv4 or IPv6 CIDR"),
    ],
    ids=["missing-list", "invalid-list"],
)
def test_cli_render_refuses_an_unresolvable_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], documents: list[str], message: str
) -> None:
    path = tmp_path / "all.yaml"
    path.write_text("---\n".join(documents))
    assert main(["render", "-f", str(path)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
