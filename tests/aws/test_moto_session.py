"""ClientFactory and AwsCallCounter against moto: assumed roles, retries, injected faults, counting."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from bucketwarden.aws import AwsCallCounter, AwsGateway, AwsSettings, ClientFactory
from bucketwarden.errors import AccessDeniedError, AwsUnavailableError, CredentialsError
from bucketwarden.principals import BucketTarget, RoleAssumption
from bucketwarden_testkit import MotoServer
from tests.aws._harness import ACCOUNT, AdminClients, moto_settings

BUCKET = "protected-bucket"


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Any:
        yield self._data


def inject(status: int, body: str, *, times: int) -> Callable[..., Any]:
    """A before-send handler that answers the first ``times`` requests itself, like a faulty AWS.

    Typed ``Callable[..., Any]``: botocore-stubs type every event handler as returning None, but a before-send
    handler's response is what botocore sends back instead of calling AWS."""
    remaining = [times]

    def handler(request: Any, **_: Any) -> AWSResponse | None:
        if remaining[0] <= 0:
            return None
        remaining[0] -= 1
        return AWSResponse(request.url, status, HTTPHeaders(), _Body(body.encode()))

    return handler


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore sleeps up to 2**n s between attempts; the tests only need the attempts."""
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, context: 0.0)


S3_SLOW_DOWN = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
STS_DENIED = (
    "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
    "<Message>not authorized to perform sts:AssumeRole</Message></Error><RequestId>1</RequestId></ErrorResponse>"
)


def test_factory_assumed_role_clients_act_as_the_role(
    moto: MotoServer, boto_session: boto3.session.Session, admin: AdminClients
) -> None:
    role_arn = admin.iam.create_role(RoleName="bucket-admin", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    counter = AwsCallCounter()
    factory = ClientFactory(moto_settings(moto), counter, session=boto_session)

    identity = factory.sts(RoleAssumption(role_arn)).get_caller_identity()
    factory.s3(assume_role=RoleAssumption(role_arn)).list_buckets()
    factory.iam(RoleAssumption(role_arn)).list_roles()

    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/bucket-admin/bucketwarden"
    assert factory.sts().get_caller_identity()["Arn"] != identity["Arn"]
    # One AssumeRole serves every client of that role; botocore refreshes it before it expires.
    assert counter.snapshot()["AssumeRole"] == 1


def test_factory_shares_clients_per_service_region_and_role(
    moto: MotoServer, boto_session: boto3.session.Session
) -> None:
    factory = ClientFactory(moto_settings(moto), session=boto_session)
    role = f"arn:aws:iam::{ACCOUNT}:role/r"

    assert factory.s3() is factory.s3("us-east-1")
    assert factory.s3("eu-west-1") is not factory.s3()
    assert factory.s3(assume_role=RoleAssumption(role)) is not factory.s3()
    assert factory.s3(assume_role=RoleAssumption(role)) is factory.s3(assume_role=RoleAssumption(role))
    assert factory.iam() is factory.iam()
    assert factory.sts(RoleAssumption(role)) is factory.sts(RoleAssumption(role))


def test_factory_assume_role_refused_raises_credentials_error(
    moto: MotoServer, boto_session: boto3.session.Session
) -> None:
    gateway = AwsGateway(moto_settings(moto, max_attempts=1), session=boto_session)
    gateway.factory.sts().meta.events.register("before-send.sts.AssumeRole", inject(403, STS_DENIED, times=1))
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/not-trusting-us"

    with pytest.raises(CredentialsError, match=f"could not assume role {role_arn}") as caught:
        gateway.get(BucketTarget(BUCKET, assume_role=RoleAssumption(role_arn)))

    assert not isinstance(caught.value, AccessDeniedError)
    assert gateway.counter.errors() == {"AssumeRole": 1, "GetBucketPolicy": 1}
    assert "GetBucketPolicy" not in gateway.counter.attempts()  # nothing was sent without credentials


@pytest.mark.usefixtures("no_backoff")
def test_counter_counts_retries_as_attempts_of_one_call(gateway: AwsGateway, admin: AdminClients) -> None:
    admin.s3.create_bucket(Bucket=BUCKET)
    outcomes: list[tuple[str, str]] = []
    gateway.counter.on_call = lambda api, outcome: outcomes.append((api, outcome))
    gateway.factory.s3().meta.events.register("before-send.s3", inject(503, S3_SLOW_DOWN, times=1))

    assert gateway.get(BucketTarget(BUCKET)) is None

    assert gateway.counter.snapshot() == {"GetBucketPolicy": 1}
    assert gateway.counter.attempts() == {"GetBucketPolicy": 2}
    assert outcomes == [("GetBucketPolicy", "error")]  # NoSuchBucketPolicy is a 404 on the wire


@pytest.mark.usefixtures("no_backoff")
def test_store_throttling_after_all_attempts_is_retryable(
    moto: MotoServer, boto_session: boto3.session.Session
) -> None:
    gateway = AwsGateway(moto_settings(moto, max_attempts=2), session=boto_session)
    gateway.factory.s3().meta.events.register("before-send.s3", inject(503, S3_SLOW_DOWN, times=2))

    with pytest.raises(AwsUnavailableError, match="SlowDown") as caught:
        gateway.get(BucketTarget(BUCKET))

    assert caught.value.retryable
    assert caught.value.api == "GetBucketPolicy"
    assert gateway.counter.attempts() == {"GetBucketPolicy": 2}
    assert gateway.counter.errors() == {"GetBucketPolicy": 1}


def test_store_connection_refused_is_retryable(boto_session: boto3.session.Session) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = AwsSettings(region="us-east-1", endpoint_url=f"http://127.0.0.1:{port}", max_attempts=1)
    gateway = AwsGateway(settings, session=boto_session)

    with pytest.raises(AwsUnavailableError, match="EndpointConnectionError") as caught:
        gateway.get(BucketTarget(BUCKET))

    assert caught.value.retryable
    assert gateway.counter.errors() == {"GetBucketPolicy": 1}
