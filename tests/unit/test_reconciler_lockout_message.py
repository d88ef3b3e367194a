"""The operator's AccessDenied status names the way in: `bucketwarden bootstrap` with the bucket and its role."""

from __future__ import annotations

import pytest

from bucketwarden.aws import InMemoryAws
from bucketwarden.errors import AccessDeniedError
from bucketwarden.principals import CallerIdentity
from bucketwarden.reconciler import Reconciler
from bucketwarden.spec import ProtectedBucketSpec

BUCKET = "locked-bucket"
SPEC = ProtectedBucketSpec.model_validate({"bucketName": BUCKET, "allowedSourceIps": ["192.0.2.0/24"]})
SESSION = "arn:aws:sts::123456789012:assumed-role/bucketwarden-operator/botocore-session-1"


@pytest.mark.parametrize(
    ("api", "caller_arn", "named"),
    [
        ("GetBucketPolicy", SESSION, "--operator-role arn:aws:iam::123456789012:role/bucketwarden-operator"),
        ("PutBucketPolicy", SESSION, "--operator-role arn:aws:iam::123456789012:role/bucketwarden-operator"),
        ("GetBucketPolicy", "arn:aws:iam::123456789012:user/ops", "--operator-role <the operator's role ARN>"),
    ],
    ids=["get-as-role-session", "put-as-role-session", "get-as-user"],
)
def test_reconciler_access_denied_names_bootstrap_with_the_bucket(api: str, caller_arn: str, named: str) -> None:
    aws = InMemoryAws()
    aws.caller = CallerIdentity(account="123456789012", arn=caller_arn, user_id="AROAEXAMPLE:botocore-session-1")
    aws.create_bucket(BUCKET)
    aws.fail_next(api, AccessDeniedError(f"{api} was denied", api=api))
    result = Reconciler(aws).reconcile(SPEC)
    ready = result.condition("Ready")
    assert ready is not None and ready.reason == "AccessDenied"
    assert f"bucketwarden bootstrap -f <manifest of bucket {BUCKET}> {named}" in ready.message


def test_reconciler_access_denied_elsewhere_does_not_name_bootstrap() -> None:
    aws = InMemoryAws()
    aws.create_bucket(BUCKET)
    aws.fail_next("GetCallerIdentity", AccessDeniedError("GetCallerIdentity was denied", api="GetCallerIdentity"))
    ready = Reconciler(aws).reconcile(SPEC).condition("Ready")
    assert ready is not None and ready.reason == "AccessDenied"
    assert "bootstrap" not in ready.message
