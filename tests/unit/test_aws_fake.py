"""InMemoryAws: the scripted levers the reconciler's tests use, and the AWS behaviour moto cannot show.

What the fake shares with the real gateway is tested against both in tests/aws (the ``aws`` fixture).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from bucketwarden.aws import AwsGateway, AwsPort, InMemoryAws
from bucketwarden.errors import (
    AccessDeniedError,
    AwsUnavailableError,
    CredentialsError,
    PolicyTooLargeError,
    RoleNotFoundError,
)
from bucketwarden.principals import BucketTarget, RoleAssumption
from bucketwarden.spec import ExemptRole

BUCKET = "protected-bucket"
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": "A", "Effect": "Deny", "Principal": "*"}]})


@pytest.fixture
def fake() -> InMemoryAws:
    fake = InMemoryAws()
    fake.create_bucket(BUCKET)
    return fake


def test_fake_and_gateway_implement_the_port() -> None:
    assert isinstance(InMemoryAws(), AwsPort)
    assert isinstance(AwsGateway(), AwsPort)


def test_fake_fail_next_scripts_errors_then_recovers(fake: InMemoryAws) -> None:
    fake.fail_next("PutBucketPolicy", AwsUnavailableError("SlowDown", api="PutBucketPolicy"), times=2)

    for _ in range(2):
        with pytest.raises(AwsUnavailableError):
            fake.put(BucketTarget(BUCKET), POLICY)
    fake.put(BucketTarget(BUCKET), POLICY)

    assert fake.policy_of(BUCKET) == POLICY
    assert fake.counter.snapshot() == {"PutBucketPolicy": 3}
    assert fake.counter.errors() == {"PutBucketPolicy": 2}


def test_fake_validation_failure_consumes_no_scripted_error(fake: InMemoryAws) -> None:
    fake.fail_next("PutBucketPolicy", AwsUnavailableError("SlowDown"))

    with pytest.raises(PolicyTooLargeError):
        fake.put(BucketTarget(BUCKET), " " * 30000)

    with pytest.raises(AwsUnavailableError):
        fake.put(BucketTarget(BUCKET), POLICY)


@pytest.mark.parametrize("operation", ["get", "put", "delete"])
def test_fake_expected_owner_mismatch_is_the_bare_access_denied_s3_sends(fake: InMemoryAws, operation: str) -> None:
    # moto ignores ExpectedBucketOwner, so only the fake can show this: S3 answers 403 AccessDenied.
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: fake.get(BucketTarget(BUCKET, expected_owner="999999999999")),
        "put": lambda: fake.put(BucketTarget(BUCKET, expected_owner="999999999999"), POLICY),
        "delete": lambda: fake.delete(BucketTarget(BUCKET, expected_owner="999999999999")),
    }

    with pytest.raises(AccessDeniedError, match=f"bucket {BUCKET} is owned by account 999999999999"):
        calls[operation]()

    fake.get(BucketTarget(BUCKET, expected_owner=fake.account))  # the right owner passes


def test_fake_put_foreign_is_seen_by_the_next_get_uncounted(fake: InMemoryAws) -> None:
    fake.put_foreign(BUCKET, '{"Statement": [{"Sid": "Console"}]}')

    assert fake.get(BucketTarget(BUCKET)) == '{"Statement": [{"Sid": "Console"}]}'
    assert fake.counter.snapshot() == {"GetBucketPolicy": 1}


def test_fake_recreated_role_gets_a_new_role_id_seen_after_ttl(fake: InMemoryAws) -> None:
    old = fake.create_role("AWSBackupDefaultServiceRole", path="/service-role/")
    role = ExemptRole(arn=old.arn)
    assert fake.resolve_role(role).role_id == old.role_id

    new = fake.recreate_role("AWSBackupDefaultServiceRole")

    assert new.role_id != old.role_id
    assert new.arn == old.arn
    assert fake.resolve_role(role).role_id == old.role_id
    fake.advance(301)
    assert fake.resolve_role(role).role_id == new.role_id


def test_fake_deleted_role_is_not_found_after_ttl(fake: InMemoryAws) -> None:
    fake.create_role("DataSync")
    fake.resolve_role(ExemptRole(name="DataSync"))
    fake.delete_role("DataSync")
    fake.advance(301)

    with pytest.raises(RoleNotFoundError, match=f"role DataSync not found in account {fake.account}"):
        fake.resolve_role(ExemptRole(name="DataSync"))


def test_fake_role_names_ignore_case_like_iam(fake: InMemoryAws) -> None:
    created = fake.create_role("AWSBackupDefaultServiceRole")

    assert fake.resolve_role(ExemptRole(name="awsbackupdefaultservicerole")).arn == created.arn


def test_fake_assuming_a_missing_role_is_a_credentials_error(fake: InMemoryAws) -> None:
    missing = f"arn:aws:iam::{fake.account}:role/not-there"

    with pytest.raises(CredentialsError, match=f"could not assume role {missing}"):
        fake.get(BucketTarget(BUCKET, assume_role=RoleAssumption(missing)))

    assert fake.counter.errors() == {"AssumeRole": 1, "GetBucketPolicy": 1}  # as botocore counts it


def test_fake_assume_role_into_another_account(fake: InMemoryAws) -> None:
    operator = fake.create_role("bucketwarden", account="210987654321")
    backup = fake.create_role("AWSBackupDefaultServiceRole", account="210987654321")

    caller = fake.caller_identity(RoleAssumption(operator.arn))
    resolved = fake.resolve_role(ExemptRole(arn=backup.arn), assume_role=RoleAssumption(operator.arn))

    assert caller.account == "210987654321"
    assert caller.exempt_pattern == f"{operator.role_id}:*"
    assert resolved.role_id == backup.role_id
    assert fake.counter.snapshot() == {"AssumeRole": 1, "GetCallerIdentity": 1, "GetRole": 1}


def test_fake_plain_caller_is_an_iam_user(fake: InMemoryAws) -> None:
    caller = fake.caller_identity()

    assert caller.user_id.startswith("AIDA")
    assert caller.exempt_pattern == caller.user_id
    assert not caller.is_assumed_role


def test_fake_is_deterministic_for_a_seed() -> None:
    assert InMemoryAws(seed=7).create_role("r").role_id == InMemoryAws(seed=7).create_role("r").role_id
