"""map_client_error: every botocore error and AWS code we know, mapped into bucketwarden.errors (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from bucketwarden.aws import map_client_error, redact
from bucketwarden.errors import (
    AccessDeniedError,
    AwsError,
    AwsUnavailableError,
    BucketNotFoundError,
    CredentialsError,
    MalformedPolicyError,
    RoleNotFoundError,
    WrongRegionError,
)

ENDPOINT = "https://s3.eu-west-1.amazonaws.com"


def client_error(code: str, status: int, message: str = "", api: str = "GetBucketPolicy", **error: Any) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message, **error},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
    }
    return ClientError(response, api)


@pytest.mark.parametrize(
    ("exc", "expected", "retryable"),
    [
        # throttling
        pytest.param(client_error("Throttling", 400), AwsUnavailableError, True, id="Throttling"),
        pytest.param(client_error("ThrottlingException", 400), AwsUnavailableError, True, id="ThrottlingException"),
        pytest.param(client_error("SlowDown", 503), AwsUnavailableError, True, id="SlowDown"),
        pytest.param(client_error("RequestLimitExceeded", 400), AwsUnavailableError, True, id="RequestLimitExceeded"),
        pytest.param(client_error("TooManyRequestsException", 429), AwsUnavailableError, True, id="TooManyRequests"),
        pytest.param(client_error("SomethingNew", 429), AwsUnavailableError, True, id="any-429"),
        # server side
        pytest.param(client_error("InternalError", 500), AwsUnavailableError, True, id="InternalError"),
        pytest.param(client_error("ServiceUnavailable", 503), AwsUnavailableError, True, id="ServiceUnavailable"),
        pytest.param(client_error("ServiceFailure", 500), AwsUnavailableError, True, id="iam-ServiceFailure"),
        pytest.param(client_error("Unknown", 502), AwsUnavailableError, True, id="any-5xx"),
        pytest.param(client_error("RequestTimeout", 400), AwsUnavailableError, True, id="RequestTimeout"),
        pytest.param(client_error("OperationAborted", 409), AwsUnavailableError, True, id="OperationAborted"),
        # the network
        pytest.param(EndpointConnectionError(endpoint_url=ENDPOINT), AwsUnavailableError, True, id="connect-refused"),
        pytest.param(ConnectTimeoutError(endpoint_url=ENDPOINT), AwsUnavailableError, True, id="connect-timeout"),
        pytest.param(ReadTimeoutError(endpoint_url=ENDPOINT), AwsUnavailableError, True, id="read-timeout"),
        pytest.param(ConnectionClosedError(endpoint_url=ENDPOINT), AwsUnavailableError, True, id="connection-reset"),
        pytest.param(ConnectionResetError(104, "Connection reset by peer"), AwsUnavailableError, True, id="os-reset"),
        # refusals and missing things
        pytest.param(client_error("AccessDenied", 403, "Access Denied"), AccessDeniedError, False, id="AccessDenied"),
        pytest.param(client_error("AccessDeniedException", 400), AccessDeniedError, False, id="iam-AccessDenied"),
        pytest.param(client_error("NoSuchBucket", 404), BucketNotFoundError, False, id="NoSuchBucket"),
        pytest.param(client_error("NoSuchEntity", 404, api="GetRole"), RoleNotFoundError, False, id="NoSuchEntity"),
        pytest.param(client_error("MalformedPolicy", 400), MalformedPolicyError, False, id="MalformedPolicy"),
        # region
        pytest.param(client_error("PermanentRedirect", 301), WrongRegionError, False, id="PermanentRedirect"),
        pytest.param(client_error("301", 301), WrongRegionError, False, id="bare-301"),
        pytest.param(
            client_error("AuthorizationHeaderMalformed", 400, "the region 'us-east-1' is wrong"),
            WrongRegionError,
            False,
            id="AuthorizationHeaderMalformed",
        ),
        # credentials
        pytest.param(NoCredentialsError(), CredentialsError, False, id="NoCredentials"),
        pytest.param(PartialCredentialsError(provider="env", cred_var="secret"), CredentialsError, False, id="partial"),
        pytest.param(CredentialRetrievalError(provider="sts", error_msg="x"), CredentialsError, False, id="retrieval"),
        pytest.param(client_error("ExpiredToken", 400), CredentialsError, False, id="ExpiredToken"),
        pytest.param(client_error("InvalidClientTokenId", 403), CredentialsError, False, id="InvalidClientTokenId"),
        pytest.param(client_error("InvalidAccessKeyId", 403), CredentialsError, False, id="InvalidAccessKeyId"),
        pytest.param(client_error("SignatureDoesNotMatch", 403), CredentialsError, False, id="SignatureDoesNotMatch"),
        # everything else stays an AwsError that says what happened
        pytest.param(client_error("InvalidArgument", 400), AwsError, False, id="unknown-4xx"),
        pytest.param(NoRegionError(), AwsError, False, id="NoRegion"),
        pytest.param(ParamValidationError(report="Bucket is required"), AwsError, False, id="ParamValidation"),
        pytest.param(ValueError("odd"), AwsError, False, id="foreign-exception"),
    ],
)
def test_map_client_error_maps_to_our_hierarchy(exc: Exception, expected: type[AwsError], retryable: bool) -> None:
    mapped = map_client_error(exc, api="GetBucketPolicy")

    assert type(mapped) is expected
    assert mapped.retryable is retryable
    assert mapped.api == "GetBucketPolicy"
    assert mapped.message.startswith(("GetBucketPolicy", "bucket "))
    assert mapped.reason[0].isupper()
    assert mapped.reason.isalnum()


def test_map_client_error_appends_the_access_denied_hint() -> None:
    mapped = map_client_error(client_error("AccessDenied", 403, "Access Denied"), api="PutBucketPolicy")

    assert mapped.message.endswith(AccessDeniedError.HINT)
    assert "AccessDenied: Access Denied" in mapped.message


def test_map_client_error_access_denied_with_expected_owner_names_both_causes() -> None:
    exc = client_error("AccessDenied", 403, "Access Denied")

    mapped = map_client_error(exc, api="GetBucketPolicy", bucket="data", expected_owner="111122223333")

    # S3 does not distinguish an ExpectedBucketOwner mismatch from a denial; the message says so.
    assert isinstance(mapped, AccessDeniedError)
    assert "bucket data is owned by account 111122223333" in mapped.message
    assert mapped.message.endswith(AccessDeniedError.HINT)


def test_map_client_error_wrong_region_names_the_bucket_region() -> None:
    exc = client_error("PermanentRedirect", 301, "use the right endpoint", Region="eu-central-1")

    mapped = map_client_error(exc, api="GetBucketPolicy", bucket="data")

    assert "bucket data is in another region (eu-central-1)" in mapped.message
    assert "spec.region" in mapped.message


def test_map_client_error_names_the_missing_bucket() -> None:
    exc = client_error("NoSuchBucket", 404, "The specified bucket does not exist", BucketName="gone")

    assert map_client_error(exc, api="DeleteBucketPolicy").message.startswith("bucket gone does not exist")


def test_map_client_error_passes_our_errors_through() -> None:
    ours = CredentialsError("could not assume role", api="AssumeRole")

    assert map_client_error(ours, api="GetBucketPolicy") is ours


SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexample+token/abcdefghijklmnopqrstuvwxyz0123"


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(
            client_error("InvalidAccessKeyId", 403, f"The AWS Access Key Id {ACCESS_KEY} does not exist"), id="key-id"
        ),
        pytest.param(client_error("SignatureDoesNotMatch", 403, f"secret {SECRET} and {TOKEN}"), id="secret-and-token"),
        pytest.param(
            EndpointConnectionError(endpoint_url=f"{ENDPOINT}/?X-Amz-Credential={ACCESS_KEY}&X-Amz-Security-Token=t"),
            id="presigned-url",
        ),
    ],
)
def test_map_client_error_never_relays_credentials(exc: Exception) -> None:
    message = map_client_error(exc, api="GetBucketPolicy").message

    for secret in (SECRET, ACCESS_KEY, TOKEN, "X-Amz-Security-Token=t"):
        assert secret not in message


@pytest.mark.parametrize(
    "text",
    [
        "arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole",
        "AROARZPUZDIKOVJQIB2B5:AWSBackup-AWSBackupDefaultServiceRole",
        "The specified bucket does not exist",
    ],
)
def test_redact_keeps_ordinary_identifiers(text: str) -> None:
    assert redact(text) == text


def test_map_client_error_truncates_huge_messages() -> None:
    mapped = map_client_error(client_error("InvalidArgument", 400, "x " * 5000), api="PutBucketPolicy")

    assert len(mapped.message) < 1200
