"""Maps botocore exceptions and AWS error codes into bucketwarden's exception hierarchy, at the boundary."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

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

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "BandwidthLimitExceeded",
        "PriorRequestNotComplete",
    }
)
# Server-side trouble that waiting fixes. OperationAborted is S3's 409 for a concurrent conflicting
# operation on the same bucket (two writers of one bucket policy), which is also transient.
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "ServiceFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "OperationAborted",
        "ConcurrentModification",
        "IDPCommunicationError",
    }
)
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "AllAccessDisabled"})
CREDENTIALS_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "UnrecognizedClientException",
        "TokenRefreshRequired",
    }
)
WRONG_REGION_CODES = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed", "301"})
MALFORMED_POLICY_CODES = frozenset({"MalformedPolicy", "MalformedPolicyDocument"})

MSG_UNAVAILABLE = "{api} failed with a transient AWS error ({detail}); retry with backoff"
MSG_ACCESS_DENIED = "{api} was denied ({detail}); " + AccessDeniedError.HINT
MSG_ACCESS_DENIED_OR_OWNER = (
    "{api} was denied ({detail}). S3 answers an ExpectedBucketOwner mismatch with the same bare 403 "
    "AccessDenied and does not say which one happened, so also check that bucket {bucket} is owned by "
    "account {owner} (spec.expectedBucketOwner); " + AccessDeniedError.HINT
)
MSG_BUCKET_NOT_FOUND = "bucket {bucket} does not exist ({api}: {detail})"
MSG_ROLE_NOT_FOUND = "{api}: the role does not exist ({detail})"
MSG_MALFORMED_POLICY = "{api}: AWS rejected the policy document as malformed ({detail})"
MSG_WRONG_REGION = (
    "{api}: bucket {bucket} is in another region{region_hint} than the client used ({detail}); "
    "set spec.region to the bucket's region"
)
MSG_CREDENTIALS = (
    "{api}: AWS did not accept the operator's credentials ({detail}); check the service account's IAM "
    "role (IRSA / Pod Identity) or the AWS_* environment"
)
MSG_NO_CREDENTIALS = (
    "{api}: no usable AWS credentials ({detail}); give the operator an IAM role (IRSA / Pod Identity) "
    "or set the AWS_* environment"
)
MSG_NO_REGION = "{api}: no AWS region configured ({detail}); set AWS_REGION"
MSG_INVALID_REQUEST = "{api}: bucketwarden built an invalid request ({detail}); this is a bug"
MSG_OTHER = "{api} failed ({detail})"

MAX_DETAIL_LENGTH = 1000

# Access key ids are not secret, but they identify a credential; secrets and session tokens are long
# base64 runs. Either can appear in a message relayed from a lower library; none may reach a status.
_ACCESS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{12,}\b")
_LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40,}(?![A-Za-z0-9/+=])")
_SIGNED_QUERY = re.compile(r"(X-Amz-(?:Security-Token|Signature|Credential)=)[^&\s\"']+", re.IGNORECASE)


def redact(text: str) -> str:
    """Remove anything that looks like a credential from a message."""
    text = _SIGNED_QUERY.sub(r"\1<redacted>", text)
    text = _ACCESS_KEY_ID.sub(r"\1<redacted>", text)

    def _mask(m: re.Match[str]) -> str:
        token = m.group(0)
        looks_random = any(c.isdigit() for c in token) and any(c.isupper() for c in token)
        return "<redacted>" if looks_random and any(c.islower() for c in token) else token

    return _LONG_TOKEN.sub(_mask, text)


def _fields(exc: ClientError, section: str) -> dict[str, Any]:
    value = dict(exc.response).get(section)
    return dict(value) if isinstance(value, dict) else {}


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a ClientError, else None."""
    if isinstance(exc, ClientError):
        code = _fields(exc, "Error").get("Code")
        return str(code) if code is not None else None
    return None


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a ClientError, else None."""
    if isinstance(exc, ClientError):
        status = _fields(exc, "ResponseMetadata").get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def describe(exc: BaseException) -> str:
    """A short, credential-free ``Code: message`` description of a lower-library error."""
    if isinstance(exc, ClientError):
        error = _fields(exc, "Error")
        code = error.get("Code") or "Unknown"
        message = error.get("Message") or ""
        text = f"{code}: {message}" if message else str(code)
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = redact(text)
    if len(text) > MAX_DETAIL_LENGTH:
        text = text[: MAX_DETAIL_LENGTH - 3] + "..."
    return text


def _bucket_region(exc: ClientError) -> str | None:
    region = _fields(exc, "Error").get("Region")
    if region:
        return str(region)
    headers = _fields(exc, "ResponseMetadata").get("HTTPHeaders") or {}
    value = headers.get("x-amz-bucket-region")
    return str(value) if value else None


def map_client_error(
    exc: Exception,
    *,
    api: str,
    bucket: str | None = None,
    expected_owner: str | None = None,
) -> AwsError:
    """Translate a botocore exception raised by call ``api`` into an :class:`AwsError`.

    ``bucket`` and ``expected_owner`` only improve the message. An ``AwsError`` (for instance raised by
    a credential refresh inside botocore) passes through unchanged. The caller raises the result
    ``from exc`` so the original stays attached for debugging.
    """
    if isinstance(exc, AwsError):
        return exc
    detail = describe(exc)
    if isinstance(exc, ClientError):
        return _from_answer(exc, api, detail, bucket or "(unknown)", expected_owner)
    build = next((b for types, b in _LOCAL_FAILURES if isinstance(exc, types)), _other)
    return build(api, detail)


def _from_answer(exc: ClientError, api: str, detail: str, bucket: str, expected_owner: str | None) -> AwsError:
    """What AWS answered, by its error code and HTTP status."""
    code = error_code(exc) or ""
    status = http_status(exc) or 0
    if code in THROTTLING_CODES or code in TRANSIENT_CODES or status == 429 or status >= 500:
        return _unavailable(api, detail)
    if code in ACCESS_DENIED_CODES:
        if expected_owner is not None:
            message = MSG_ACCESS_DENIED_OR_OWNER.format(api=api, detail=detail, bucket=bucket, owner=expected_owner)
        else:
            message = MSG_ACCESS_DENIED.format(api=api, detail=detail)
        return AccessDeniedError(message, api=api)
    if code == "NoSuchBucket":
        name = _fields(exc, "Error").get("BucketName") or bucket
        return BucketNotFoundError(MSG_BUCKET_NOT_FOUND.format(bucket=name, api=api, detail=detail), api=api)
    if code == "NoSuchEntity":
        return RoleNotFoundError(MSG_ROLE_NOT_FOUND.format(api=api, detail=detail), api=api)
    if code in MALFORMED_POLICY_CODES:
        return MalformedPolicyError(MSG_MALFORMED_POLICY.format(api=api, detail=detail), api=api)
    if code in WRONG_REGION_CODES or status == 301:
        region = _bucket_region(exc)
        region_hint = f" ({region})" if region else ""
        message = MSG_WRONG_REGION.format(api=api, bucket=bucket, region_hint=region_hint, detail=detail)
        return WrongRegionError(message, api=api)
    if code in CREDENTIALS_CODES:
        return CredentialsError(MSG_CREDENTIALS.format(api=api, detail=detail), api=api)
    return _other(api, detail)


def _unavailable(api: str, detail: str) -> AwsError:
    return AwsUnavailableError(MSG_UNAVAILABLE.format(api=api, detail=detail), api=api)


def _other(api: str, detail: str) -> AwsError:
    return AwsError(MSG_OTHER.format(api=api, detail=detail), api=api)


# botocore's own failures, when AWS gave no answer: exception types -> the error, in this order.
_LOCAL_FAILURES: tuple[tuple[tuple[type[BaseException], ...], Callable[[str, str], AwsError]], ...] = (
    (
        (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError, TokenRetrievalError),
        lambda api, detail: CredentialsError(MSG_NO_CREDENTIALS.format(api=api, detail=detail), api=api),
    ),
    # ConnectionError covers EndpointConnectionError and ConnectTimeoutError; HTTPClientError covers
    # ReadTimeoutError and ConnectionClosedError (a reset mid-response); the builtin TimeoutError and OSError
    # (ConnectionResetError etc.) come from below urllib3.
    ((BotoConnectionError, HTTPClientError, IncompleteReadError, TimeoutError, OSError), _unavailable),
    (
        (NoRegionError,),
        lambda api, detail: AwsError(MSG_NO_REGION.format(api=api, detail=detail), reason="NoRegion", api=api),
    ),
    (
        (ParamValidationError,),
        lambda api, detail: AwsError(
            MSG_INVALID_REQUEST.format(api=api, detail=detail), reason="InvalidRequest", api=api
        ),
    ),
)
