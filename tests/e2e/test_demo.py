"""`bucketwarden demo`, the README's first command, must stay green and tell the seed's story, run as a user would."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bucketwarden.testing import scrubbed_environ


@pytest.mark.e2e
@pytest.mark.parametrize("flags", [pytest.param([], id="operator"), pytest.param(["--no-kubernetes"], id="reconciler")])
def test_demo_every_step_comes_out_as_expected(flags: list[str]) -> None:
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
    assert match is not None and match.group(1) == match.group(2) and int(match.group(2)) >= 19
    assert "[FAILED]" not in result.stdout
    out = result.stdout
    # The seed's story, in order, all through the enforcing front: the failed backup job (the outage), the
    # operator locked out with the way in named, bootstrap, Ready, and the completed backup job.
    milestones = [
        "FAILED: Access Denied: s3:GetBucketVersioning (Sid SourceIPRestriction001)",
        "Ready=False AccessDenied:",
        "bucketwarden bootstrap -f <manifest of bucket awsbackup-test-001> --operator-role",
        "$ bucketwarden bootstrap -f pb.yaml --operator-role",
        "[ok] the ProtectedBucket becomes Ready",
        "COMPLETED (3 object versions read)",
        "[ok] the exemption is restored by the next reconcile",
        "[ok] the backup job with the new role COMPLETES",
    ]
    positions = [out.find(m) for m in milestones]
    assert -1 not in positions, [m for m, p in zip(milestones, positions, strict=True) if p == -1]
    assert positions == sorted(positions)
    assert "Traceback" not in result.stderr
