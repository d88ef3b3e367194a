"""The operator reports backup and restore apart: a foreign Deny that blocks only restores says so on Verified."""

from __future__ import annotations

import json

from bucketwarden.aws import InMemoryAws
from bucketwarden.reconciler import Reconciler
from bucketwarden.spec import ProtectedBucketSpec

BUCKET = "team-a-data"
ROLE = "AWSBackupDefaultServiceRole"


def test_reconcile_a_restore_only_deny_fails_restore_and_leaves_backup_passing() -> None:
    aws = InMemoryAws()
    role = aws.create_role(ROLE, path="/service-role/")
    deny_restore_writes = {
        "Sid": "NoWritesByBackup",
        "Effect": "Deny",
        "Principal": {"AWS": role.arn},
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{BUCKET}/*",
    }
    aws.create_bucket(BUCKET, policy=json.dumps({"Version": "2012-10-17", "Statement": [deny_restore_writes]}))
    spec = ProtectedBucketSpec.model_validate(
        {"bucketName": BUCKET, "allowedSourceIps": ["192.0.2.0/24", "2001:db8::/32"], "exemptRoles": [{"name": ROLE}]}
    )
    result = Reconciler(aws).reconcile(spec)
    verified = result.condition("Verified")
    assert verified is not None and verified.status == "False"
    assert "backup Pass" in verified.message and "restore Fail" in verified.message
    assert result.verification is not None
    assert result.verification.verdict_for("backup") == "Pass"
    assert result.verification.verdict_for("restore") == "Fail"
