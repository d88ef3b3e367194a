"""The world of the original issue, as the golden files write it: the bucket, AWS Backup's role and the operator.

The verifier's tests (verify, evaluate, prove, wrong-pass, properties) judge policies in this world.
"""

from __future__ import annotations

from bucketwarden.principals import CallerIdentity, ResolvedRole

ACCOUNT = "123456789012"
BUCKET = "awsbackup-test-001"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
ROLE_NAME = "AWSBackupDefaultServiceRole"
ROLE_ID = "AROASAMPLESAMPLESAMPL"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/service-role/{ROLE_NAME}"


def backup_role(account: str = ACCOUNT, role_id: str = ROLE_ID) -> ResolvedRole:
    """AWS Backup's default service role, resolved: its path known and its RoleId looked up."""
    arn = f"arn:aws:iam::{account}:role/service-role/{ROLE_NAME}"
    return ResolvedRole(ref=ROLE_NAME, name=ROLE_NAME, arn=arn, role_id=role_id)


def operator_identity(account: str = ACCOUNT) -> CallerIdentity:
    """The operator as sts:GetCallerIdentity names it: a session of its assumed role."""
    return CallerIdentity(
        account=account,
        arn=f"arn:aws:sts::{account}:assumed-role/bucketwarden/botocore-session-1",
        user_id="AROAOPERATOREXAMPLE01:botocore-session-1",
    )


ROLE = backup_role()
OPERATOR = operator_identity()
