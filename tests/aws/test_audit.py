"""bucketwarden audit on the embedded AWS: every finding, the read-only promise, scopes, the CLI, and onboarding."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from bucketwarden.audit import (
    DEFAULT_BACKUP_ROLE,
    KUSTOMIZATION,
    AuditScope,
    BucketAudit,
    Verdict,
    audit_buckets,
    audit_context,
    run_audit,
)
from bucketwarden.aws import AwsGateway
from bucketwarden.cli import build_parser
from bucketwarden.exitcodes import ExitCode
from bucketwarden.filemode import reconcile_all, run_file_mode
from bucketwarden.manifests import load_manifests
from bucketwarden.principals import RoleAssumption
from bucketwarden.readiness import ROLE_LACKS_S3_PERMISSIONS, VERSIONING_NOT_ENABLED
from bucketwarden.reconciler import Reconciler
from bucketwarden.spec import DEFAULT_STATEMENT_SID
from bucketwarden_testkit import MotoServer, scrubbed_environ
from tests.aws._audit_seed import Ids, ip_deny, seed_bucket
from tests.aws._harness import AdminClients, moto_settings
from tests.shared import TRUST_POLICY

FIXTURE = Path(__file__).with_name("fixtures") / "audit_account.yaml"
READ_APIS = {
    "ListBuckets",
    "GetBucketLocation",
    "GetBucketPolicy",
    "GetBucketVersioning",
    "GetBucketTagging",
    "GetRole",
    "GetCallerIdentity",
    "AssumeRole",
}


@pytest.fixture
def gateway(moto: MotoServer, boto_session: boto3.session.Session) -> AwsGateway:
    return AwsGateway(moto_settings(moto), session=boto_session)


@pytest.fixture
def ids(admin: AdminClients) -> Ids:
    role = admin.iam.create_role(
        RoleName=DEFAULT_BACKUP_ROLE, Path="/service-role/", AssumeRolePolicyDocument=TRUST_POLICY
    )["Role"]
    return Ids(role["RoleId"], role["Arn"], admin.sts.get_caller_identity()["UserId"])


def audit(gateway: AwsGateway, scope: AuditScope | None = None, **ctx: Any) -> dict[str, BucketAudit]:
    context = audit_context(gateway, **ctx)
    return {a.bucket: a for a in audit_buckets(gateway, context, scope or AuditScope())}


def args(*argv: str) -> Any:
    return build_parser().parse_args(["audit", *argv])


def test_audit_seeded_account_matches_the_hand_made_table_and_reads_only(
    gateway: AwsGateway, admin: AdminClients, ids: Ids
) -> None:
    expected = yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))
    for row in expected["buckets"]:
        seed_bucket(admin.s3, row["bucket"], row["seed"], row["versioning"], ids)

    gateway.counter.reset()
    got = audit(gateway)

    table = {
        name: {
            "status": a.status.value,
            "backup": a.backup.value,
            "operator": a.operator.value,
            "bucketwarden": a.bucketwarden_statement,
            "codes": sorted(a.codes),
        }
        for name, a in got.items()
    }
    want = {
        row["bucket"]: {k: row[k] for k in ("status", "backup", "operator", "bucketwarden", "codes")}
        for row in expected["buckets"]
    }
    assert table == want
    assert dict(Counter(a.status.value for a in got.values())) == expected["summary"]
    n = len(want)
    assert gateway.counter.snapshot() == {
        "ListBuckets": 1,
        "GetBucketLocation": n,
        "GetBucketPolicy": n,
        "GetBucketVersioning": n,
        "GetRole": 1,
        "GetCallerIdentity": 1,
    }


@pytest.mark.parametrize(
    ("seed", "verdict", "code"),
    [
        ("ip-deny", Verdict.FAIL, "DeniesBackupRole"),
        ("ip-deny-exempt-role", Verdict.PASS, "OperatorLockedOut"),
        ("garbled", Verdict.UNKNOWN, "PolicyUnreadable"),
        ("unknown-operator", Verdict.UNKNOWN, "PolicyNotJudgeable"),
    ],
    ids=["fail", "pass", "unknown-unreadable", "unknown-unjudgeable"],
)
def test_audit_verdict_is_three_valued_with_a_counterexample_on_fail(
    gateway: AwsGateway, admin: AdminClients, ids: Ids, seed: str, verdict: Verdict, code: str
) -> None:
    seed_bucket(admin.s3, "three-valued", seed, "Enabled", ids)
    result = audit(gateway)["three-valued"]
    assert result.backup is verdict
    assert code in result.codes
    if verdict is Verdict.FAIL:
        assert result.counterexample is not None
        assert f"{ids.role_id}:AWSBackup-{DEFAULT_BACKUP_ROLE}" in result.counterexample
        assert "is denied by SourceIPRestriction001" in result.counterexample
    else:
        assert result.counterexample is None


def test_audit_without_a_backup_role_is_unknown_not_pass(gateway: AwsGateway, admin: AdminClients) -> None:
    admin.s3.create_bucket(Bucket="no-role-here")
    result = audit(gateway)["no-role-here"]
    assert result.backup is Verdict.UNKNOWN
    assert "NoBackupRole" in result.codes


def test_audit_checks_the_backup_roles_named_on_the_command_line(
    gateway: AwsGateway, admin: AdminClients, ids: Ids
) -> None:
    other = admin.iam.create_role(RoleName="TeamBackupRole", AssumeRolePolicyDocument=TRUST_POLICY)["Role"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [ip_deny("named-roles", StringNotLike={"aws:userId": [f"{other['RoleId']}:*"]})],
    }
    admin.s3.create_bucket(Bucket="named-roles")
    admin.s3.put_bucket_policy(Bucket="named-roles", Policy=json.dumps(policy))

    assert audit(gateway, backup_roles=["TeamBackupRole"])["named-roles"].backup is Verdict.PASS
    # The default role is not exempt by this Deny; named by ARN, it is checked too.
    both = audit(gateway, backup_roles=[other["Arn"], ids.role_arn])["named-roles"]
    assert both.backup is Verdict.FAIL
    assert both.backup_roles == ("TeamBackupRole", DEFAULT_BACKUP_ROLE)


def test_audit_scope_by_name_glob_tag_and_region(gateway: AwsGateway, admin: AdminClients, ids: Ids) -> None:
    for name in ("team-a-logs", "team-a-data", "team-b-data"):
        admin.s3.create_bucket(Bucket=name)
    admin.s3.put_bucket_tagging(Bucket="team-a-data", Tagging={"TagSet": [{"Key": "backup", "Value": "daily"}]})
    admin.s3.create_bucket(Bucket="team-eu-data", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})

    assert sorted(audit(gateway, AuditScope(names=("team-a-*",)))) == ["team-a-data", "team-a-logs"]
    gateway.counter.reset()
    assert sorted(audit(gateway, AuditScope(tags={"backup": "daily"}))) == ["team-a-data"]
    assert gateway.counter.snapshot()["GetBucketTagging"] == 4
    gateway.counter.reset()
    eu = audit(gateway, AuditScope(regions=("eu-west-1",)))
    assert sorted(eu) == ["team-eu-data"]
    assert eu["team-eu-data"].region == "eu-west-1"
    assert "GetBucketTagging" not in gateway.counter.snapshot()  # no tag filter, no tag reads
    assert sorted(audit(gateway, AuditScope(regions=("eu-west-1", "us-east-1")))) == sorted(
        ["team-a-logs", "team-a-data", "team-b-data", "team-eu-data"]
    )


def test_audit_through_an_assumed_role_acts_as_that_role(gateway: AwsGateway, admin: AdminClients, ids: Ids) -> None:
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    target = admin.iam.create_role(RoleName="bucketwarden-auditor", AssumeRolePolicyDocument=trust)["Role"]
    seed_bucket(admin.s3, "assumed-audit", "ip-deny", "Enabled", ids)
    result = audit(
        gateway, AuditScope(assume_role=RoleAssumption(target["Arn"])), assume_role=RoleAssumption(target["Arn"])
    )
    assert result["assumed-audit"].backup is Verdict.FAIL
    assert gateway.counter.snapshot()["AssumeRole"] == 1
    assert "assumed-role/bucketwarden-auditor/" in next(
        f.message for f in result["assumed-audit"].findings if f.code == "OperatorLockedOut"
    )


def test_audit_operator_role_is_checked_as_a_session_of_that_role(
    gateway: AwsGateway, admin: AdminClients, ids: Ids
) -> None:
    operator = admin.iam.create_role(RoleName="bucketwarden-operator", AssumeRolePolicyDocument=TRUST_POLICY)["Role"]
    seed_bucket(admin.s3, "operator-exempt", "ip-deny-exempt-role", "Enabled", ids)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            ip_deny(
                "operator-exempt",
                StringNotLike={"aws:userId": [f"{ids.role_id}:*", f"{operator['RoleId']}:*"]},
            )
        ],
    }
    admin.s3.put_bucket_policy(Bucket="operator-exempt", Policy=json.dumps(policy))
    assert audit(gateway)["operator-exempt"].operator is Verdict.FAIL  # the auditing user is not exempt
    assert audit(gateway, operator_role="bucketwarden-operator")["operator-exempt"].operator is Verdict.PASS


def test_audit_streams_json_table_and_html_with_the_same_counts(
    gateway: AwsGateway, admin: AdminClients, ids: Ids
) -> None:
    seed_bucket(admin.s3, "out-blocked", "ip-deny", "Enabled", ids)
    seed_bucket(admin.s3, "out-ready", "none-versioned", "Enabled", ids)
    outputs = {}
    for output in ("json", "table", "html"):
        buf = io.StringIO()
        assert run_audit(args("--output", output), gateway=gateway, out=buf, err=io.StringIO()) == ExitCode.FAILED
        outputs[output] = buf.getvalue()
    doc = json.loads(outputs["json"])
    assert [b["bucket"] for b in doc["buckets"]] == ["out-blocked", "out-ready"]
    assert doc["summary"]["byStatus"] == {"BlocksBackup": 1, "Unknown": 0, "NotReady": 0, "Ready": 1}
    assert outputs["table"].splitlines()[-1] == "2 buckets: 1 BlocksBackup, 0 Unknown, 0 NotReady, 1 Ready"
    page = outputs["html"]
    assert page.count("<tr data-status=") == 2
    assert "<script" not in page and "src=" not in page and "href=" not in page  # one self-contained file


def test_audit_cli_exit_code_says_whether_any_bucket_blocks_backup(
    moto: MotoServer, admin: AdminClients, ids: Ids
) -> None:
    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bucketwarden", "audit", *argv],
            env=scrubbed_environ(moto.env()),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    seed_bucket(admin.s3, "cli-fine", "none-versioned", "Enabled", ids)
    clear = run("--output", "json")
    assert clear.returncode == 0, clear.stderr
    assert "\r" not in clear.stderr  # no progress line when stderr is not a terminal
    seed_bucket(admin.s3, "cli-blocked", "ip-deny", "Enabled", ids)
    blocked = run()
    assert blocked.returncode == ExitCode.FAILED, blocked.stderr
    assert "cli-blocked" in blocked.stdout and "BlocksBackup" in blocked.stdout
    assert run("--bucket", "cli-fine").returncode == 0
    assert run("--tag", "oops").returncode == ExitCode.USAGE
    bad_role = run("--backup-role", "not a role!")
    assert bad_role.returncode == ExitCode.USAGE and "neither an IAM role name nor a role ARN" in bad_role.stderr
    assert "Traceback" not in bad_role.stderr


def test_audit_emit_manifests_round_trip_observe_plan_says_what_the_audit_said(
    gateway: AwsGateway, admin: AdminClients, ids: Ids, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))
    for row in expected["buckets"]:
        seed_bucket(admin.s3, row["bucket"], row["seed"], row["versioning"], ids)
    out = tmp_path / "onboard"

    gateway.counter.reset()
    assert (
        run_audit(args("--emit-manifests", str(out)), gateway=gateway, out=io.StringIO(), err=io.StringIO())
        == ExitCode.FAILED
    )
    assert not {"PutBucketPolicy", "DeleteBucketPolicy", "PutBucketVersioning"} & set(gateway.counter.snapshot())
    audits = audit(gateway)
    needing = {name for name, a in audits.items() if a.needs_protection}
    kustomization = yaml.safe_load((out / KUSTOMIZATION).read_text(encoding="utf-8"))
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(f"{b}.yaml" for b in needing)
    manifests = load_manifests(out)
    assert {m.resource.spec.bucket_name for m in manifests} == needing
    by_bucket = {m.resource.spec.bucket_name: m.resource.spec for m in manifests}
    assert by_bucket["acct-ip-deny-v0"].adopt_sids == ["SourceIPRestriction001"]
    assert by_bucket["acct-ip-deny-no-sid-v0"].adopt_sids == []
    assert by_bucket["acct-not-supersedable-v0"].adopt_sids == []
    assert by_bucket["acct-vpce-deny-u0"].allowed_vpc_endpoints == ["vpce-0123456789abcdef0"]
    assert all(s.management_policy.value == "Observe" for s in by_bucket.values())
    assert all([r.name for r in s.exempt_roles] == [DEFAULT_BACKUP_ROLE] for s in by_bucket.values())

    # apply -f in Observe, as a user runs it: nothing is written, and each bucket's live plan says what the audit said.
    before = {b: admin.s3.get_bucket_policy(Bucket=b)["Policy"] for b in needing}
    capsys.readouterr()
    assert run_file_mode(str(out), plan_only=False, output="json", aws=gateway) in (0, 1)
    rows = {r["bucket"]: r for r in json.loads(capsys.readouterr().out)}
    assert {b: admin.s3.get_bucket_policy(Bucket=b)["Policy"] for b in needing} == before
    results = {r.bucket: r for r in reconcile_all(Reconciler(gateway), manifests)}
    for bucket in needing:
        said, live, row = audits[bucket], results[bucket], rows[bucket]
        # A restriction bucketwarden cannot adopt stays, and still locks the operator out: Observe reports that
        # Enforce would refuse to write (Blocked); every other bucket is Observed.
        r = said.restriction
        kept = r is not None and r.sid != DEFAULT_STATEMENT_SID and not r.supersedable
        blocked = kept and said.operator is Verdict.FAIL
        assert live.outcome == row["outcome"] == ("Blocked" if blocked else "Observed"), (bucket, live.conditions)
        assert live.verification is not None
        failing = {r.scenario.kind for r in live.verification.failures}
        assert ("role" in failing) == (said.backup is Verdict.FAIL), bucket
        assert ("operator" in failing) == (said.operator is Verdict.FAIL), bucket
        assert failing <= {"role", "operator"}, (bucket, failing)
        verified = next(c for c in row["conditions"] if c["type"] == "Verified")
        assert (verified["status"] == "True") == (said.backup is Verdict.PASS and said.operator is Verdict.PASS)
        codes = {f["code"] for f in row["findings"]}
        assert (VERSIONING_NOT_ENABLED in codes) == ("VersioningNotEnabled" in said.codes), bucket
        assert ROLE_LACKS_S3_PERMISSIONS in codes  # moto's role has no policies attached
        assert blocked or "ChangesPending" in codes  # Enforce would take the restriction over


def test_audit_retries_transient_faults_and_reports_refusals_as_unknown(
    moto: MotoServer, admin: AdminClients, ids: Ids, boto_session: boto3.session.Session
) -> None:
    from bucketwarden.aws import AwsSettings
    from bucketwarden_testkit import AwsFaultProxy, ErrorReply

    for i in range(8):
        seed_bucket(admin.s3, f"faulty-{i}", "ip-deny" if i % 2 else "none-versioned", "Enabled", ids)
    clean = {
        name: (a.status, a.codes) for name, a in audit(AwsGateway(moto_settings(moto), session=boto_session)).items()
    }
    with AwsFaultProxy(moto.endpoint_url, rate=0.25, seed=3, services=("s3",)) as proxy:
        proxy.script(ErrorReply(403, "AccessDenied", "Access Denied"), api="GetBucketPolicy", bucket="faulty-1")
        proxy.script(ErrorReply(403, "AccessDenied", "Access Denied"), api="GetBucketVersioning", bucket="faulty-2")
        settings = AwsSettings(region=moto.region, endpoint_url=proxy.endpoint_url, read_timeout=1.0)
        faulty = audit(AwsGateway(settings, session=boto_session))
        injected = sum(proxy.injected().values())
    assert injected > 0
    denied, unversioned = faulty.pop("faulty-1"), faulty.pop("faulty-2")
    assert {name: (a.status, a.codes) for name, a in faulty.items()} == {
        k: v for k, v in clean.items() if k not in ("faulty-1", "faulty-2")
    }  # retried: the same answers as without faults
    assert denied.backup is Verdict.UNKNOWN and "PolicyUnreadable" in denied.codes
    assert "GetBucketPolicy was denied" in next(f.message for f in denied.findings if f.code == "PolicyUnreadable")
    assert unversioned.versioning == "Unknown" and "VersioningUnreadable" in unversioned.codes


def test_audit_shows_progress_on_a_terminal_only(gateway: AwsGateway, admin: AdminClients, ids: Ids) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for i in range(3):
        seed_bucket(admin.s3, f"progress-{i}", "none-versioned", "Enabled", ids)
    err = Terminal()
    run_audit(args(), gateway=gateway, out=io.StringIO(), err=err)
    assert "\raudited 3 buckets" in err.getvalue()
    quiet = io.StringIO()
    run_audit(args(), gateway=gateway, out=io.StringIO(), err=quiet)
    assert "audited" not in quiet.getvalue()
