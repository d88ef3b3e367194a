"""The offline CLI: render, plan, verify, evaluate and crd, with their exit codes and error messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bucketwarden import __version__
from bucketwarden.cli import main
from bucketwarden.exitcodes import ExitCode
from bucketwarden.policy import PolicyDocument

GOLDEN = Path(__file__).parent.parent / "golden"
SPEC = str(GOLDEN / "seed-spec.yaml")
ORIGINAL = str(GOLDEN / "seed-original-policy.json")
EXPECTED = str(GOLDEN / "seed-expected-policy.json")
ROLE_ID = ["--role-id", "AWSBackupDefaultServiceRole=AROASAMPLESAMPLESAMPL"]
BACKUP_SESSION = "aws:userid=AROASAMPLESAMPLESAMPL:AWSBackup-AWSBackupDefaultServiceRole"
CRD_FILE = Path(__file__).parent.parent.parent / "crds" / "bucketwarden.io_protectedbuckets.yaml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_render_seed_gives_the_golden_policy(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "render", "-f", SPEC, "--existing-policy", ORIGINAL, *ROLE_ID)
    assert code == 0
    rendered = PolicyDocument.parse(out)
    assert rendered.same_meaning(PolicyDocument.parse(Path(EXPECTED).read_text()))
    assert out.strip() == PolicyDocument.parse(out).to_json(pretty=True)  # pretty, stable key order


def test_cli_render_without_operator_user_id_renders_no_operator_exemption(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "render", "-f", SPEC, *ROLE_ID)
    ours = PolicyDocument.parse(out).find("BucketWardenIpRestriction")[0]
    assert ours.conditions["StringNotLike"]["aws:userid"] == ("AROASAMPLESAMPLESAMPL:*",)


def test_cli_render_with_operator_user_id_exempts_every_session_of_its_role(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "render", "-f", SPEC, *ROLE_ID, "--operator-user-id", "AROAOPERATOROPERATOR1:pod-1")
    ours = PolicyDocument.parse(out).find("BucketWardenIpRestriction")[0]
    assert set(ours.conditions["StringNotLike"]["aws:userid"]) == {"AROASAMPLESAMPLESAMPL:*", "AROAOPERATOROPERATOR1:*"}


@pytest.mark.parametrize(
    ("existing", "expected_code", "expected_text"),
    [
        pytest.param(ORIGINAL, 2, "1 bucket: 1 WouldUpdate", id="change-exits-2"),
        pytest.param(EXPECTED, 0, "1 bucket: 1 InSync", id="no-change-exits-0"),
    ],
)
def test_cli_plan_offline_exit_codes(
    capsys: pytest.CaptureFixture[str], existing: str, expected_code: int, expected_text: str
) -> None:
    code, out, _ = run(capsys, "plan", "-f", SPEC, "--existing-policy", existing, *ROLE_ID)
    assert code == expected_code
    assert expected_text in out
    if expected_code == 2:
        assert '-      "Sid": "SourceIPRestriction001"' in out


def test_cli_plan_same_meaning_reordered_is_no_change(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = json.loads(Path(EXPECTED).read_text())
    doc["Statement"].reverse()
    shuffled = tmp_path / "shuffled.json"
    shuffled.write_text(json.dumps(doc, indent=7))
    code, out, _ = run(capsys, "plan", "-f", SPEC, "--existing-policy", str(shuffled), *ROLE_ID)
    assert code == 0
    assert out.strip().splitlines()[-1].startswith("1 bucket: 1 InSync; no AWS calls (offline);")


@pytest.mark.parametrize(
    ("policy", "expected_code", "failing"),
    [
        pytest.param(ORIGINAL, 1, {"role-AWSBackupDefaultServiceRole-get-object"}, id="original-denies-backup"),
        pytest.param(EXPECTED, 0, set(), id="fixed-verifies"),
    ],
)
def test_cli_verify_seed(
    capsys: pytest.CaptureFixture[str], policy: str, expected_code: int, failing: set[str]
) -> None:
    code, out, _ = run(capsys, "verify", "-f", SPEC, "--policy", policy, *ROLE_ID, "--output", "json")
    report = json.loads(out)
    assert code == expected_code
    assert report["ok"] is (expected_code == 0)
    failed = {s["name"] for s in report["scenarios"] if not s["passed"]}
    assert failing <= failed
    assert not any(s["name"].startswith("operator") for s in report["scenarios"])  # no --operator-user-id


def test_cli_verify_without_adoption_reports_foreign_deny(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = yaml.safe_load(Path(SPEC).read_text())
    spec["spec"].pop("adoptSids")
    path = tmp_path / "pb.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, out, _ = run(capsys, "verify", "-f", str(path), "--policy", ORIGINAL, *ROLE_ID)
    assert code == 1
    assert "ForeignDenyBlocksExemptRole" in out
    assert "SourceIPRestriction001" in out


def test_cli_verify_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", "-f", SPEC, "--policy", EXPECTED, *ROLE_ID)
    assert code == 0
    assert out.splitlines()[0].split() == ["SCENARIO", "EXPECT", "DECISION", "SID", "RESULT"]
    assert out.rstrip().endswith("verification: OK")


@pytest.mark.parametrize(
    ("policy", "context", "decision", "sid"),
    [
        pytest.param(
            ORIGINAL, ["aws:SourceIp=3.5.140.2", BACKUP_SESSION], "ExplicitDeny", "SourceIPRestriction001", id="outage"
        ),
        pytest.param(EXPECTED, ["aws:SourceIp=3.5.140.2", BACKUP_SESSION], "NoMatch", None, id="fixed"),
        pytest.param(EXPECTED, ["AWS:SOURCEIP=192.0.2.9"], "NoMatch", None, id="keys-case-insensitive"),
        pytest.param(EXPECTED, [], "ExplicitDeny", "BucketWardenIpRestriction", id="no-source-ip-is-denied"),
    ],
)
def test_cli_evaluate_json(
    capsys: pytest.CaptureFixture[str], policy: str, context: list[str], decision: str, sid: str | None
) -> None:
    flags = [arg for pair in context for arg in ("--context", pair)]
    code, out, _ = run(
        capsys, "evaluate", "--policy", policy, "--action", "s3:GetObject",
        "--resource", "arn:aws:s3:::awsbackup-test-001/k", *flags, "--output", "json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out) == {"decision": decision, "sid": sid}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["render", "-f", "does-not-exist.yaml"], "no such file or directory", id="missing-file"),
        pytest.param(["render", "-f", SPEC], "no RoleId for exempt role", id="missing-role-id"),
        pytest.param(["render", "-f", SPEC, "--role-id", "oops"], "expected NAME_OR_ARN=ROLEID", id="bad-role-id"),
        pytest.param(
            ["evaluate", "--policy", SPEC, "--action", "s3:GetObject", "--resource", "arn:aws:s3:::b/k"],
            "not valid JSON",
            id="policy-not-json",
        ),
        pytest.param(
            ["evaluate", "--policy", EXPECTED, "--action", "s3:GetObject", "--resource", "x", "--context", "novalue"],
            "expected KEY=VALUE",
            id="bad-context",
        ),
    ],
)
def test_cli_user_errors_exit_usage_with_a_message_and_no_traceback(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == ExitCode.USAGE
    assert message in err
    assert "Traceback" not in err


def test_cli_invalid_manifest_names_the_field(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = yaml.safe_load(Path(SPEC).read_text())
    bad["spec"]["allowedSourceIps"] = ["192.0.2.0/33"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    code, _, err = run(capsys, "render", "-f", str(path), *ROLE_ID)
    assert code == ExitCode.USAGE
    assert "spec.allowedSourceIps.0" in err


def test_cli_crd_prints_the_checked_in_crd(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "crd")
    assert code == 0
    assert out == CRD_FILE.read_text()


def test_cli_python_dash_m_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bucketwarden", "--version"], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == f"bucketwarden {__version__}"
