"""`plan` offline takes apply's decision path: the same checks, verdicts and exit codes; the table explains each row."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from bucketwarden.aws import FakeRole, InMemoryAws
from bucketwarden.cli import main, offline_operator
from bucketwarden.exitcodes import ExitCode
from bucketwarden.filemode import run_file_mode
from tests.shared import GOLDEN

SPEC = yaml.safe_load((GOLDEN / "seed-spec.yaml").read_text())
ORIGINAL = (GOLDEN / "seed-original-policy.json").read_text()
EXPECTED = (GOLDEN / "seed-expected-policy.json").read_text()
ROLE = "AWSBackupDefaultServiceRole"
ROLE_ID = "AROASAMPLESAMPLESAMPL"
OPERATOR = "AROAOPERATOROPERATOR1:pod-1"
BUCKET = SPEC["spec"]["bucketName"]
ADOPT_ADVICE = "list 'SourceIPRestriction001' in spec.adoptSids"


def spec_with(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(SPEC))
    for key, value in changes.items():
        if value is None:
            doc["spec"].pop(key, None)
        else:
            doc["spec"][key] = value
    return doc


def oversized_policy() -> str:
    """The original policy plus foreign statements that push the merged document over S3's 20 KB."""
    doc = json.loads(ORIGINAL)
    for i in range(90):
        doc["Statement"].append(
            {
                "Sid": f"Padding{i:03d}",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::123456789012:role/reader-with-a-rather-long-name-{i:03d}"},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{BUCKET}/some/long/prefix/for/reader/{i:03d}/*",
            }
        )
    return json.dumps(doc)


RENDERED = "rendered"  # the policy `render` gives for the spec: already in force


# (manifest, existing policy) -> the verdict apply would give, which plan must give too.
VERDICTS = [
    pytest.param(spec_with(), ORIGINAL, "WouldUpdate", "True", "Protected", ExitCode.CHANGES_PENDING, "", id="change"),
    pytest.param(spec_with(), RENDERED, "InSync", "True", "Protected", ExitCode.OK, "", id="no-change"),
    pytest.param(
        spec_with(allowedSourceIps=["10.0.0.0/8", "2001:db8::/32"]), None,
        "Failed", "False", "InvalidSpec", ExitCode.FAILED, "10.0.0.0/8 is a private range", id="private-range",
    ),
    pytest.param(
        spec_with(), oversized_policy(),
        "Failed", "False", "PolicyTooLarge", ExitCode.FAILED, "over S3's 20480-byte limit", id="over-20kb",
    ),
    pytest.param(
        spec_with(adoptSids=None), ORIGINAL,
        "Blocked", "False", "VerificationFailed", ExitCode.FAILED, ADOPT_ADVICE, id="foreign-deny-not-adopted",
    ),
]  # fmt: skip


def write(tmp_path: Path, manifest: dict[str, Any], policy: str | None) -> tuple[Path, list[str]]:
    path = tmp_path / "pb.yaml"
    path.write_text(yaml.safe_dump(manifest))
    if policy is None:
        return path, ["--offline"]
    (tmp_path / "policy.json").write_text(policy)
    return path, ["--existing-policy", str(tmp_path / "policy.json")]


def plan(capsys: pytest.CaptureFixture[str], path: Path, source: list[str], *extra: str) -> tuple[int, str, str]:
    code = main(["plan", "-f", str(path), *source, "--role-id", f"{ROLE}={ROLE_ID}", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def apply_in_memory(path: Path, policy: str | None, operator: str | None, capsys: pytest.CaptureFixture[str]) -> Any:
    """apply, through the live code path, against an in-memory AWS holding the same bucket, role and caller."""
    aws = InMemoryAws()
    aws.create_bucket(BUCKET, policy=policy)
    aws.roles[(aws.account, ROLE.lower())] = FakeRole(ROLE, "/", aws.account, ROLE_ID)
    caller = offline_operator(operator, aws.account)
    if caller is not None:
        aws.caller = caller
    code = run_file_mode(str(path), plan_only=False, output="json", aws=aws)
    return code, json.loads(capsys.readouterr().out)[0]


def rendered(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    assert main(["render", "-f", str(path), "--role-id", f"{ROLE}={ROLE_ID}", "--operator-user-id", OPERATOR]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(("manifest", "policy", "outcome", "ready", "reason", "code", "says"), VERDICTS)
def test_cli_plan_offline_gives_applys_verdict_and_exit_code(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    manifest: dict[str, Any],
    policy: str | None,
    outcome: str,
    ready: str,
    reason: str,
    code: ExitCode,
    says: str,
) -> None:
    path, _ = write(tmp_path, manifest, None)
    if policy == RENDERED:
        policy = rendered(capsys, path)
    path, source = write(tmp_path, manifest, policy)
    op = ["--operator-user-id", OPERATOR]

    got, out, _ = plan(capsys, path, source, *op, "--show-unchanged")
    assert got == code, out
    [row] = [line for line in out.splitlines() if line.startswith("default/")]
    cols = row.split()
    assert (cols[2], cols[4], cols[5]) == (outcome, ready, reason)
    assert says in row  # the explanation is in the table row itself, not only in JSON

    got_json, out_json, err_json = plan(capsys, path, source, *op, "--output", "json")
    [planned] = json.loads(out_json)
    assert got_json == code
    ready_condition = next(c for c in planned["conditions"] if c["type"] == "Ready")
    assert (planned["outcome"], ready_condition["status"], ready_condition["reason"]) == (outcome, ready, reason)
    assert planned["applied"] is False
    assert err_json.startswith("1 bucket: ")

    # apply (the live path on an in-memory AWS) reaches the same verdict and exit code.
    applied_code, applied = apply_in_memory(path, policy, OPERATOR, capsys)
    applied_ready = next(c for c in applied["conditions"] if c["type"] == "Ready")
    assert (applied_ready["status"], applied_ready["reason"]) == (ready, reason)
    assert applied["outcome"] == {"WouldUpdate": "Updated"}.get(outcome, outcome)
    assert applied["action"] == planned["action"]
    assert applied_code == (ExitCode.OK if code is ExitCode.CHANGES_PENDING else code)


def test_cli_plan_offline_without_operator_user_id_still_sees_aws_backup_denied(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """No --operator-user-id: the operator is not exempted nor checked (as in render), the backup role still is."""
    path, source = write(tmp_path, spec_with(adoptSids=None), ORIGINAL)
    code, out, err = plan(capsys, path, source)
    assert err.startswith("note: no --operator-user-id: the operator is neither exempted nor checked")
    assert code == ExitCode.FAILED  # apply would write, and AWS Backup would still be denied: not Ready
    [row] = [line for line in out.splitlines() if line.startswith("default/")]
    assert row.split()[2:6] == ["WouldUpdate", "put", "False", "VerificationFailed"]
    assert ADOPT_ADVICE in row and "AWS Backup backup jobs that use this role fail with AccessDenied" in row


def test_cli_plan_offline_writes_nothing_and_says_it_made_no_aws_calls(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, source = write(tmp_path, spec_with(), ORIGINAL)
    code, out, _ = plan(capsys, path, source)
    assert code == ExitCode.CHANGES_PENDING
    assert (tmp_path / "policy.json").read_text() == ORIGINAL
    summary = out.rstrip().splitlines()[-1]
    assert summary.startswith("1 bucket: 1 WouldUpdate; no AWS calls (offline); ")
    assert summary.endswith(" s")


def test_cli_plan_offline_folder_hides_unchanged_buckets_unless_asked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    docs = []
    for i in range(5):
        doc = spec_with(bucketName=f"bucket-{i}", adoptSids=None)
        doc["metadata"]["name"] = f"b{i}"
        if i == 0:
            doc["spec"]["allowedSourceIps"] = ["10.0.0.0/8"]
        docs.append(doc)
    (tmp_path / "all.yaml").write_text(yaml.safe_dump_all(docs))
    code, out, _ = plan(capsys, tmp_path, ["--offline"])
    assert code == ExitCode.FAILED  # one private range fails the run
    rows = [line.split()[0] for line in out.splitlines() if line.startswith("default/")]
    assert rows == [f"default/b{i}" for i in range(5)]  # every bucket changes (empty policies): all shown
    assert out.count("\n--- default/") == 4  # one diff per bucket that would change
    assert out.rstrip().splitlines()[-1].startswith("5 buckets: 1 Failed, 4 WouldUpdate; no AWS calls (offline);")


def test_cli_plan_shows_only_buckets_that_change(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path, source = write(tmp_path, spec_with(), EXPECTED)
    code, out, _ = plan(capsys, path, source)
    assert code == ExitCode.OK
    assert "default/" not in out and "--- current" not in out
    assert "1 unchanged (in sync and Ready) not shown; --show-unchanged lists them" in out

    code, out, _ = plan(capsys, path, source, "--show-unchanged")
    assert code == ExitCode.OK
    assert any(line.startswith("default/awsbackup-test-001") for line in out.splitlines())
    assert "--- current" not in out  # nothing changes: no diff


def _run_with_stderr_on_a_terminal(argv: list[str]) -> tuple[int, str, bytes]:
    """Run the CLI with stderr on a pseudo-terminal (as in a shell) and stdout on a pipe; return what each got."""
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"}
    proc = subprocess.run(
        [sys.executable, "-m", "bucketwarden", *argv], stdout=subprocess.PIPE, stderr=slave, env=env, timeout=120
    )
    os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    return proc.returncode, proc.stdout.decode(), b"".join(chunks)


def test_cli_plan_shows_progress_on_stderr_only_when_it_is_a_terminal(tmp_path: Path) -> None:
    docs = []
    for i in range(3):
        doc = spec_with(bucketName=f"bucket-{i}")
        doc["metadata"]["name"] = f"b{i}"
        docs.append(doc)
    (tmp_path / "all.yaml").write_text(yaml.safe_dump_all(docs))
    argv = ["plan", "--offline", "-f", str(tmp_path), "--role-id", f"{ROLE}={ROLE_ID}", "--operator-user-id", OPERATOR]

    code, out, terminal = _run_with_stderr_on_a_terminal(argv)
    assert code == ExitCode.CHANGES_PENDING
    assert b"planning" in terminal and b"3/3" in terminal  # rich's bar, on the terminal
    assert "planning" not in out  # never on stdout

    piped = subprocess.run([sys.executable, "-m", "bucketwarden", *argv], capture_output=True, text=True, timeout=120)
    assert piped.returncode == ExitCode.CHANGES_PENDING
    assert piped.stderr == ""  # not a terminal: quiet
    assert piped.stdout.rsplit(";", 1)[0] == out.rsplit(";", 1)[0]  # the same report either way, but the time


def test_cli_plan_offline_takes_the_assume_role_and_expected_owner_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    manifest = spec_with(
        assumeRoleArn="arn:aws:iam::210987654321:role/service-role/bucketwarden-target",
        expectedBucketOwner="210987654321",
    )
    path, source = write(tmp_path, manifest, ORIGINAL)
    code, out, err = plan(capsys, path, source, "--output", "json")
    assert code == ExitCode.CHANGES_PENDING, err
    [row] = json.loads(out)
    assert (row["outcome"], row["action"], row["pending"]) == ("WouldUpdate", "put", True)
