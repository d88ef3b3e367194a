"""BucketPolicyStore against moto over HTTP, and InMemoryAws against the same scenarios (``aws`` fixture)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bucketwarden.aws import MAX_POLICY_BYTES, AwsGateway
from bucketwarden.errors import BucketNotFoundError, MalformedPolicyError, PolicyTooLargeError
from bucketwarden.principals import BucketTarget
from tests.aws._harness import AdminClients, Harness

BUCKET = "protected-bucket"
OWNER = "123456789012"

MakePolicy = Callable[..., str]


def test_store_get_returns_none_without_policy(aws: Harness) -> None:
    aws.create_bucket(BUCKET)

    assert aws.port.get(BucketTarget(BUCKET)) is None
    assert aws.counter.snapshot() == {"GetBucketPolicy": 1}
    assert aws.counter.errors() == {"GetBucketPolicy": 1}  # S3 answered NoSuchBucketPolicy; no exception


def test_store_put_then_get_round_trips(aws: Harness, make_policy: MakePolicy) -> None:
    aws.create_bucket(BUCKET)
    text = make_policy(BUCKET)

    aws.port.put(BucketTarget(BUCKET), text)

    assert json.loads(aws.port.get(BucketTarget(BUCKET)) or "null") == json.loads(text)
    assert aws.counter.snapshot() == {"PutBucketPolicy": 1, "GetBucketPolicy": 1}


def test_store_put_accepts_exactly_the_size_limit(aws: Harness, make_policy: MakePolicy) -> None:
    aws.create_bucket(BUCKET)
    text = make_policy(BUCKET, pad_to=MAX_POLICY_BYTES)
    assert len(text.encode()) == MAX_POLICY_BYTES

    aws.port.put(BucketTarget(BUCKET), text)

    assert aws.counter.snapshot() == {"PutBucketPolicy": 1}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("{not json", MalformedPolicyError, id="not-json"),
        pytest.param('["Statement"]', MalformedPolicyError, id="not-an-object"),
        pytest.param('{"Version": "2012-10-17"}', MalformedPolicyError, id="no-statement"),
        pytest.param('{"Version": "2012-10-17", "Statement": []}', MalformedPolicyError, id="empty-statements"),
        pytest.param('{"Statement": {"Effect": "Deny"}}', MalformedPolicyError, id="statement-not-a-list"),
        pytest.param('{"Statement": ["Deny"]}', MalformedPolicyError, id="statement-not-objects"),
        pytest.param(None, PolicyTooLargeError, id="over-20-KB"),
    ],
)
def test_store_put_rejects_invalid_document_before_any_call(
    aws: Harness, make_policy: MakePolicy, text: str | None, error: type[Exception]
) -> None:
    aws.create_bucket(BUCKET)
    if text is None:
        text = make_policy(BUCKET, pad_to=MAX_POLICY_BYTES + 1)

    with pytest.raises(error, match="nothing was written"):
        aws.port.put(BucketTarget(BUCKET), text)

    assert aws.counter.snapshot() == {}
    assert aws.port.get(BucketTarget(BUCKET)) is None


def test_store_delete_removes_policy(aws: Harness, make_policy: MakePolicy) -> None:
    aws.create_bucket(BUCKET)
    aws.port.put(BucketTarget(BUCKET), make_policy(BUCKET))

    aws.port.delete(BucketTarget(BUCKET))

    assert aws.port.get(BucketTarget(BUCKET)) is None
    assert aws.counter.snapshot() == {"PutBucketPolicy": 1, "DeleteBucketPolicy": 1, "GetBucketPolicy": 1}


def test_store_delete_without_policy_succeeds(aws: Harness) -> None:
    aws.create_bucket(BUCKET)

    aws.port.delete(BucketTarget(BUCKET))

    assert aws.counter.errors() == {}


@pytest.mark.parametrize("operation", ["get", "put", "delete"])
def test_store_missing_bucket_raises_bucket_not_found(aws: Harness, make_policy: MakePolicy, operation: str) -> None:
    calls: dict[str, Callable[[], Any]] = {
        "get": lambda: aws.port.get(BucketTarget("no-such-bucket")),
        "put": lambda: aws.port.put(BucketTarget("no-such-bucket"), make_policy("no-such-bucket")),
        "delete": lambda: aws.port.delete(BucketTarget("no-such-bucket")),
    }

    with pytest.raises(BucketNotFoundError, match="bucket no-such-bucket does not exist") as caught:
        calls[operation]()

    assert not caught.value.retryable
    assert caught.value.reason == "BucketNotFound"


@pytest.mark.parametrize(
    ("operation", "api"),
    [("get", "GetBucketPolicy"), ("put", "PutBucketPolicy"), ("delete", "DeleteBucketPolicy")],
)
@pytest.mark.parametrize("owner", [OWNER, None], ids=["owner-known", "owner-unknown"])
def test_store_sends_expected_bucket_owner_when_known(
    gateway: AwsGateway,
    admin: AdminClients,
    make_policy: MakePolicy,
    operation: str,
    api: str,
    owner: str | None,
) -> None:
    admin.s3.create_bucket(Bucket=BUCKET)
    sent: list[tuple[str, str | None]] = []

    def capture(event_name: str, request: Any, **_: Any) -> None:
        sent.append((event_name.rsplit(".", 1)[-1], request.headers.get("x-amz-expected-bucket-owner")))

    gateway.factory.s3().meta.events.register("before-send.s3", capture)
    calls: dict[str, Callable[[], Any]] = {
        "get": lambda: gateway.get(BucketTarget(BUCKET, expected_owner=owner)),
        "put": lambda: gateway.put(BucketTarget(BUCKET, expected_owner=owner), make_policy(BUCKET)),
        "delete": lambda: gateway.delete(BucketTarget(BUCKET, expected_owner=owner)),
    }

    calls[operation]()

    expected_header = owner.encode() if owner is not None else None
    assert sent == [(api, expected_header)]


def test_store_uses_the_region_given(gateway: AwsGateway, admin: AdminClients) -> None:
    admin.s3.create_bucket(Bucket=BUCKET)

    assert gateway.get(BucketTarget(BUCKET, region="eu-west-1")) is None

    assert gateway.factory.s3("eu-west-1").meta.region_name == "eu-west-1"
