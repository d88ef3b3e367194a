"""The offline CLI: render, plan, verify, evaluate and crd, with their exit codes and error messages."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from bucketwarden import __version__
from bucketwarden.cli import main
from bucketwarden.exitcodes import ExitCode
from bucketwarden.policy import PolicyDocument, Request, evaluate
from tests.shared import GOLDEN

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


# --- issue #10: counterexamples, principal ARNs, validated context --------------------------------------------

BACKUP_ROLE_ARN = "arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole"
MFA_ON_TAX = {
    "Sid": "TaxNeedsMfa",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": "arn:aws:s3:::awsbackup-test-001/taxdocuments/*",
    "Condition": {"Null": {"aws:MultiFactorAuthAge": "true"}},
}


def _with_statement(tmp_path: Path, base: str, statement: Mapping[str, object]) -> str:
    doc = json.loads(Path(base).read_text())
    doc["Statement"].append(statement)
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_cli_verify_prints_the_counterexample(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    policy = _with_statement(tmp_path, EXPECTED, MFA_ON_TAX)
    code, out, _ = run(capsys, "verify", "-f", SPEC, "--policy", policy, *ROLE_ID)
    assert code == 1
    line = next(line for line in out.splitlines() if line.startswith("counterexample:"))
    assert "s3:GetObject on arn:aws:s3:::awsbackup-test-001/taxdocuments/x" in line
    assert "TaxNeedsMfa" in line
    assert out.rstrip().endswith("verification: FAILED")
    code, out, _ = run(capsys, "verify", "-f", SPEC, "--policy", policy, *ROLE_ID, "--output", "json")
    report = json.loads(out)
    assert report["verdict"] == "Fail"
    assert report["counterexamples"][0]["deniedBy"] == "TaxNeedsMfa"


def test_cli_verify_inconclusive_exits_0_and_names_the_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    org = {**MFA_ON_TAX, "Sid": "OrgOnly", "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}}
    code, out, _ = run(capsys, "verify", "-f", SPEC, "--policy", _with_statement(tmp_path, EXPECTED, org), *ROLE_ID)
    assert code == 0
    assert out.rstrip().endswith("verification: INCONCLUSIVE (aws:principalorgid)")


def test_cli_render_that_fails_verification_prints_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    existing = _with_statement(tmp_path, ORIGINAL, MFA_ON_TAX)
    code, out, err = run(capsys, "render", "-f", SPEC, "--existing-policy", existing, *ROLE_ID)
    assert code == 1
    assert out == ""
    assert "fails verification" in err
    assert "counterexample:" in err and "TaxNeedsMfa" in err


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        pytest.param("AWSBackupDefaultServiceRole=AROA123", "is not a RoleId", id="iam-unique-id-too-short"),
        pytest.param("AWSBackupDefaultServiceRole=AIDASAMPLESAMPLESAMPL", "is not a RoleId", id="iam-user-id-not-role"),
        pytest.param("AWSBackupDefaultServiceRole=aroasamplesamplesampl", "is not a RoleId", id="iam-id-upper-case"),
    ],
)
def test_cli_role_id_must_have_the_role_id_form(capsys: pytest.CaptureFixture[str], flag: str, message: str) -> None:
    code, out, err = run(capsys, "render", "-f", SPEC, "--role-id", flag)
    assert (code, out) == (ExitCode.USAGE, "")
    assert message in err


def test_cli_role_arn_gives_a_role_with_a_path_its_real_arn(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = yaml.safe_load(Path(SPEC).read_text())
    spec["spec"]["exemptionKey"] = "principalArn"
    path = tmp_path / "pb.yaml"
    path.write_text(yaml.safe_dump(spec))
    role_arn = f"AWSBackupDefaultServiceRole={BACKUP_ROLE_ARN}"
    code, out, _ = run(capsys, "render", "-f", str(path), "--role-arn", role_arn, *ROLE_ID)
    assert code == 0
    ours = PolicyDocument.parse(out).find("BucketWardenIpRestriction")[0]
    assert ours.conditions["ArnNotLike"]["aws:principalarn"] == (BACKUP_ROLE_ARN,)
    code, _, err = run(capsys, "render", "-f", str(path), "--role-arn", "Other=" + BACKUP_ROLE_ARN, *ROLE_ID)
    assert code == ExitCode.USAGE and "names role" in err


def _evaluate(capsys: pytest.CaptureFixture[str], policy: str, *extra: str) -> tuple[int, str, str]:
    return run(
        capsys, "evaluate", "--policy", policy, "--action", "s3:GetObject",
        "--resource", "arn:aws:s3:::awsbackup-test-001/k", *extra,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("context", "message"),
    [
        pytest.param("aws:SourceIp=300.1.1.1", "not an IPv4 or IPv6 address", id="iam-sourceip-malformed"),
        pytest.param("aws:SourceIp=192.0.2.0/24", "not an IPv4 or IPv6 address", id="iam-sourceip-is-one-address"),
        pytest.param("aws:CurrentTime=yesterday", "not a date", id="iam-date-malformed"),
        pytest.param("aws:CurrentTime=2026-13-01", "not a date", id="iam-date-no-month-13"),
    ],
)
def test_cli_evaluate_rejects_a_malformed_context_value_as_a_usage_error(
    capsys: pytest.CaptureFixture[str], context: str, message: str
) -> None:
    code, out, err = _evaluate(capsys, EXPECTED, "--context", context)
    assert (code, out) == (ExitCode.USAGE, "")
    assert message in err


def test_cli_evaluate_warns_on_an_unknown_context_key(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _evaluate(capsys, EXPECTED, "--context", "aws:SourceIP=192.0.2.9", "--context", "aws:SoruceVpce=x")
    assert code == 0
    assert "aws:sorucevpce" in err and "not a condition key" in err
    assert "aws:sourceip" not in err  # keys are case-insensitive (fact 2)


def test_cli_evaluate_explains_no_match(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _evaluate(capsys, EXPECTED, "--context", "aws:SourceIp=192.0.2.9")
    assert code == 0
    assert out.startswith("NoMatch: no statement applies: not denied by this policy")


@pytest.mark.parametrize(
    ("not_principal", "decision"),
    [
        pytest.param([BACKUP_ROLE_ARN, "arn:aws:iam::123456789012:root"], "ExplicitDeny", id="iam-notprincipal-role"),
        pytest.param(
            [
                "arn:aws:sts::123456789012:assumed-role/AWSBackupDefaultServiceRole/AWSBackup-x",
                BACKUP_ROLE_ARN,
                "arn:aws:iam::123456789012:root",
            ],
            "NoMatch",
            id="iam-notprincipal-session-role-account",
        ),
    ],
)
def test_cli_evaluate_principal_arn_of_a_role_session(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, not_principal: list[str], decision: str
) -> None:
    deny = {k: v for k, v in MFA_ON_TAX.items() if k not in ("Principal", "Condition")}
    policy = tmp_path / "p.json"
    statement = {**deny, "NotPrincipal": {"AWS": not_principal}, "Resource": "arn:aws:s3:::awsbackup-test-001/*"}
    policy.write_text(json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
    code, out, _ = _evaluate(
        capsys,
        str(policy),
        "--principal-arn",
        "arn:aws:sts::123456789012:assumed-role/AWSBackupDefaultServiceRole/AWSBackup-x",
        "--context",
        f"aws:PrincipalArn={BACKUP_ROLE_ARN}",  # the role's path, which a session ARN does not carry
        "--output",
        "json",
    )
    assert code == 0
    assert json.loads(out)["decision"] == decision


# --- issue 21: every judging command takes the same facts ---------------------------------------------------------


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from bucketwarden.cli import build_parser

    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _fact_options(p: argparse.ArgumentParser) -> dict[str, tuple[object, ...]]:
    from bucketwarden.cli import FACT_FLAGS

    found: dict[str, tuple[object, ...]] = {}
    for action in p._actions:
        for flag in action.option_strings:
            if flag in FACT_FLAGS:
                found[flag] = (action.dest, action.default, action.metavar, action.help, type(action).__name__)
    return found


def test_cli_fact_flags_are_the_same_on_every_judging_command() -> None:
    from bucketwarden.cli import FACT_FLAGS

    parsers = _subparsers()
    options = {name: _fact_options(parsers[name]) for name in ("plan", "render", "verify", "apply", "audit")}
    for name, found in options.items():
        assert set(found) == set(FACT_FLAGS), name
    assert len({repr(sorted(found.items())) for found in options.values()}) == 1


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        pytest.param(
            ["apply", "-f", "x.yaml", "--role-id", "R=AROAEXAMPLEEXAMPLEEXA"], "--role-id", id="apply-role-id"
        ),
        pytest.param(
            ["plan", "-f", "x.yaml", "--operator-user-id", "AIDAEXAMPLE"], "--operator-user-id", id="plan-live"
        ),
        pytest.param(["audit", "--account", "999999999999"], "--account", id="audit-account"),
    ],
)
def test_cli_live_commands_refuse_facts_they_look_up(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:

    assert main(argv) == ExitCode.USAGE
    assert flag in capsys.readouterr().err


def test_cli_verify_aws_ip_ranges_narrows_the_address_space(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ranges = tmp_path / "ip-ranges.json"
    ranges.write_text(json.dumps({"prefixes": [{"ip_prefix": "52.216.0.0/15", "service": "S3"}]}), encoding="utf-8")
    manifest = tmp_path / "pb.yaml"
    manifest.write_text(
        "apiVersion: bucketwarden.io/v1alpha1\nkind: ProtectedBucket\nmetadata: {name: b, namespace: default}\n"
        "spec: {bucketName: awsbackup-test-001, allowedSourceIps: [192.0.2.0/24], exemptRoles: [{name: R}]}\n",
        encoding="utf-8",
    )
    policy = tmp_path / "policy.json"
    statement = {
        "Sid": "Foreign",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": "arn:aws:s3:::awsbackup-test-001/*",
        "Condition": {"IpAddress": {"aws:SourceIp": "13.0.0.0/8"}},
    }
    policy.write_text(json.dumps({"Version": "2012-10-17", "Statement": [statement]}), encoding="utf-8")

    base = ["verify", "-f", str(manifest), "--policy", str(policy), "--role-id", "R=AROAEXAMPLEEXAMPLEEXA"]
    main(base)
    assert "verdict backup: Unknown" in capsys.readouterr().out
    main([*base, "--aws-ip-ranges", str(ranges)])
    assert "verdict backup: Pass" in capsys.readouterr().out
    assert main([*base, "--aws-ip-ranges", str(tmp_path / "missing.json")]) == ExitCode.USAGE


@pytest.mark.parametrize(
    ("policy", "outcome"),
    [
        pytest.param(EXPECTED, "proved", id="fixed-is-proved"),
        pytest.param(ORIGINAL, "counterexample", id="seed-has-a-counterexample"),
    ],
)
def test_cli_verify_prove_reports_the_prover_per_promise(
    capsys: pytest.CaptureFixture[str], policy: str, outcome: str
) -> None:
    pytest.importorskip("z3")
    _, out, _ = run(capsys, "verify", "-f", SPEC, "--policy", policy, *ROLE_ID, "--prove", "--output", "json")
    report = json.loads(out)
    assert report["prover"]["promises"]["backup"] == outcome
    assert report["verdicts"]["backup"] == ("Pass" if outcome == "proved" else "Fail")
    for example in report["prover"]["counterexamples"]:
        request = Request.of(example["action"], example["resource"], example["context"])
        assert evaluate(PolicyDocument.parse(Path(policy).read_text()), request).denied
