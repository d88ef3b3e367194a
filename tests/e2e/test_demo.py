"""`bucketwarden demo`, the README's first command, must stay green and tell the seed's story, run as a user would."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bucketwarden_testkit import scrubbed_environ

# The allow-list chapter needs Kubernetes: without it the demo says so and skips it (and its four checks).
ALLOW_LIST_MILESTONES = [
    "SourceAllowList corp-egress (cluster-scoped): cidrs [192.0.2.0/24]",
    "[ok] both buckets become Ready (Protected), their policies allowing 192.0.2.0/24",
    "[ok] both buckets' policies carry 203.0.113.0/24 after ONE reconcile each",
    "corp-egress   network-team   2         2",
    "[ok] the list's status: USED BY 2, IN SYNC 2",
]


ALL_ROWS = ["awsbackup-test-001", "corp-reports-a", "corp-reports-b"]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("flags", "checks", "allow_lists", "rows"),
    [
        pytest.param([], 29, ALLOW_LIST_MILESTONES, ALL_ROWS, id="operator"),
        pytest.param(
            ["--no-kubernetes"],
            25,
            ["needs Kubernetes (run without --no-kubernetes)"],
            ALL_ROWS[:1],
            id="reconciler",
        ),
    ],
)
def test_demo_every_step_comes_out_as_expected(
    flags: list[str], checks: int, allow_lists: list[str], rows: list[str]
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bucketwarden", "demo", *flags],
        env=scrubbed_environ({}),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    match = re.search(r"^(\d+) of (\d+) checks passed", result.stdout, re.MULTILINE)
    assert match is not None and match.group(1) == match.group(2) and int(match.group(2)) >= checks
    assert "[FAILED]" not in result.stdout
    out = result.stdout
    # The seed's story, in order, all through the enforcing front: the failed backup job (the outage), the
    # operator locked out with the way in named, bootstrap, Ready, and the completed backup job. Then issue 15's
    # readiness Warning and its fix, and issue 16's shared allow list; the three-row table closes it.
    milestones = [
        "FAILED: Access Denied: s3:GetBucketVersioning (Sid SourceIPRestriction001)",
        "Ready=False AccessDenied:",
        "bucketwarden bootstrap -f <manifest of bucket awsbackup-test-001> --operator-role",
        "$ bucketwarden bootstrap -f pb.yaml --operator-role",
        "[ok] the ProtectedBucket becomes Ready",
        "COMPLETED (3 object versions read)",
        "[ok] the exemption is restored by the next reconcile",
        "[ok] the backup job with the new role COMPLETES",
        "status.findings: Warning BackupVersioningNotEnabled: bucket versioning is Suspended",
        "--versioning-configuration Status=Enabled)",
        "[ok] status shows the Warning BackupVersioningNotEnabled",
        "$ aws s3api put-bucket-versioning --bucket awsbackup-test-001 --versioning-configuration Status=Enabled",
        "[ok] a later reconcile (after the readiness TTL) no longer reports BackupVersioningNotEnabled",
        "[ok] the backup job COMPLETES once versioning is enabled again",
        "[ok] the readiness reads went through the front from the NAT address",
        *allow_lists,
        "kubectl get protectedbuckets -n demo",
    ]
    positions = [out.find(m) for m in milestones]
    assert -1 not in positions, [m for m, p in zip(milestones, positions, strict=True) if p == -1]
    assert positions == sorted(positions)
    # The closing `kubectl get protectedbuckets` table: one row per ProtectedBucket, each Ready and Protected.
    table = out[positions[-1] :].split("\n\n")[0].splitlines()[2:]
    assert [line.split()[0] for line in table] == rows
    assert all(line.split()[2:4] == ["True", "Protected"] for line in table)
    assert "Traceback" not in result.stderr
