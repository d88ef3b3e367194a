"""Input handling through the CLI: standard input, `kind: List`, strict top level, and errors naming file and line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from bucketwarden.cli import main
from bucketwarden.exitcodes import ExitCode
from bucketwarden.policy import PolicyDocument
from tests.shared import GOLDEN

SPEC_TEXT = (GOLDEN / "seed-spec.yaml").read_text()
SPEC = yaml.safe_load(SPEC_TEXT)
ROLE_ID = ["--role-id", "AWSBackupDefaultServiceRole=AROASAMPLESAMPLESAMPL"]
NOT_JSON = "the bucket policy is not valid JSON"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_render_dash_reads_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(SPEC_TEXT))
    code, out, _ = run(capsys, "render", "-f", "-", *ROLE_ID)
    assert code == ExitCode.OK
    assert PolicyDocument.parse(out).sids == ["BucketWardenIpRestriction"]


def test_cli_plan_dash_reads_a_kind_list_from_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    items = []
    for i in range(3):
        doc = yaml.safe_load(SPEC_TEXT)
        doc["metadata"]["name"] = f"b{i}"
        doc["spec"]["bucketName"] = f"bucket-{i}"
        items.append(doc)
    listing = {"apiVersion": "v1", "kind": "List", "items": items}
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump(listing)))
    code, out, _ = run(capsys, "plan", "--offline", "-f", "-", *ROLE_ID)
    assert code == ExitCode.CHANGES_PENDING
    assert [line.split()[1] for line in out.splitlines() if line.startswith("default/")] == [
        "bucket-0",
        "bucket-1",
        "bucket-2",
    ]


def test_cli_render_accepts_a_kind_list_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [SPEC]}))
    code, out, _ = run(capsys, "render", "-f", str(path), *ROLE_ID)
    assert code == ExitCode.OK
    assert PolicyDocument.parse(out).sids == ["BucketWardenIpRestriction"]


def without_metadata() -> str:
    doc = yaml.safe_load(SPEC_TEXT)
    doc.pop("metadata")
    return yaml.safe_dump(doc)


def with_top_level(key: str) -> str:
    doc = yaml.safe_load(SPEC_TEXT)
    doc[key] = doc.pop("spec") if key == "sepc" else {}
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        pytest.param(with_top_level("sepc"), "pb.yaml: unknown top-level key(s) sepc", id="typo-of-spec"),
        pytest.param(with_top_level("extra"), "pb.yaml: unknown top-level key(s) extra", id="unknown-key"),
        pytest.param(without_metadata(), "pb.yaml: metadata.name is required", id="no-metadata"),
        pytest.param(
            SPEC_TEXT + "\n  : [unclosed\n",  # a blank line, then the bad one
            f"pb.yaml:{len(SPEC_TEXT.splitlines()) + 2}:3: not valid YAML",
            id="yaml-line-and-column",
        ),
        pytest.param("a: 1\nspec: [unclosed\n", "pb.yaml:3:1: not valid YAML", id="yaml-unclosed-flow"),
        pytest.param(
            "apiVersion: v1\nkind: List\nitems:\n  - {apiVersion: bucketwarden.io/v1alpha1, kind: ProtectedBucket, "
            "spec: {bucketName: b, allowedSourceIps: [192.0.2.0/24]}}\n",
            "pb.yaml.items[0]: metadata.name is required",
            id="list-item-without-metadata",
        ),
    ],
)
@pytest.mark.parametrize("command", ["render", "plan"])
def test_cli_bad_manifest_is_a_usage_error_naming_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, manifest: str, expected: str, command: str
) -> None:
    path = tmp_path / "pb.yaml"
    path.write_text(manifest)
    extra = ["--offline"] if command == "plan" else []
    code, out, err = run(capsys, command, "-f", str(path), *extra, *ROLE_ID)
    assert code == ExitCode.USAGE
    assert expected in err, err
    assert str(path) in err
    assert out == ""


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        pytest.param('{\n  "Version": "2012-10-17",\n  "Statement": [\n', ":4:1: " + NOT_JSON, id="eof"),
        pytest.param('{"Statement": [}', ":1:16: " + NOT_JSON, id="bad-token"),
        pytest.param('{"Statement": [{"Effect": "Maybe"}]}', ': Statement[0].Effect: must be "Allow"', id="not-policy"),
    ],
)
@pytest.mark.parametrize("command", ["render", "plan"])
def test_cli_bad_policy_file_names_the_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, policy: str, expected: str, command: str
) -> None:
    path = tmp_path / "policy.json"
    path.write_text(policy)
    code, out, err = run(
        capsys, command, "-f", str(GOLDEN / "seed-spec.yaml"), "--existing-policy", str(path), *ROLE_ID
    )
    assert code == ExitCode.USAGE
    assert f"{path}{expected}" in err, err
    assert out == ""
