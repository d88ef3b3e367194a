"""Bucket policy I/O: read, replace and delete one bucket's policy document, with S3's limits checked first."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from bucketwarden.aws._errors import error_code, map_client_error
from bucketwarden.aws._session import ClientFactory
from bucketwarden.errors import MalformedPolicyError, PolicyTooLargeError
from bucketwarden.principals import RoleAssumption

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import (
        DeleteBucketPolicyRequestTypeDef,
        GetBucketPolicyRequestTypeDef,
        PutBucketPolicyRequestTypeDef,
    )

MAX_POLICY_BYTES = 20 * 1024

MSG_NOT_JSON = "PutBucketPolicy: the policy document is not valid JSON ({detail}); nothing was written"
MSG_NOT_OBJECT = "PutBucketPolicy: the policy document must be a JSON object; nothing was written"
MSG_NO_STATEMENTS = (
    "PutBucketPolicy: the policy document needs a non-empty Statement list of objects; nothing was "
    "written (to remove every statement, delete the policy instead)"
)
MSG_TOO_LARGE = (
    "PutBucketPolicy: the policy document is {size} bytes, over S3's limit of {limit} bytes; nothing was "
    "written (remove CIDRs or exempt roles, or merge CIDRs into larger ranges)"
)


def validate_policy_text(policy_text: str) -> None:
    """Reject what S3 would reject (moto would not): not a JSON object, no statements, over 20 KB."""
    size = len(policy_text.encode("utf-8"))
    if size > MAX_POLICY_BYTES:
        raise PolicyTooLargeError(MSG_TOO_LARGE.format(size=size, limit=MAX_POLICY_BYTES))
    try:
        document: Any = json.loads(policy_text)
    except ValueError as exc:
        raise MalformedPolicyError(MSG_NOT_JSON.format(detail=exc), api="PutBucketPolicy") from None
    if not isinstance(document, dict):
        raise MalformedPolicyError(MSG_NOT_OBJECT, api="PutBucketPolicy")
    statements = document.get("Statement")
    if not isinstance(statements, list) or not statements or not all(isinstance(s, dict) for s in statements):
        raise MalformedPolicyError(MSG_NO_STATEMENTS, api="PutBucketPolicy")


class BucketPolicyStore:
    """Reads and writes whole bucket policy documents through shared, counted S3 clients.

    Every method takes the bucket name and, as keywords, where and as whom to call: ``region`` (None:
    the operator's region; botocore follows S3's redirect if it is wrong), ``expected_owner`` (sent as
    ExpectedBucketOwner on every call when given) and ``assume_role``. Errors are
    :class:`bucketwarden.errors.AwsError` subclasses; "no policy" is the value None, not an error.
    """

    def __init__(self, factory: ClientFactory) -> None:
        self._factory = factory

    def get(
        self,
        bucket: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> str | None:
        """The policy document exactly as S3 returns it, or None when the bucket has no policy."""
        try:
            client = self._factory.s3(region, assume_role)
            get_params: GetBucketPolicyRequestTypeDef = {"Bucket": bucket}
            if expected_owner is not None:
                get_params["ExpectedBucketOwner"] = expected_owner
            response = client.get_bucket_policy(**get_params)
        except ClientError as exc:
            if error_code(exc) == "NoSuchBucketPolicy":
                return None
            raise map_client_error(exc, api="GetBucketPolicy", bucket=bucket, expected_owner=expected_owner) from exc
        except Exception as exc:
            raise map_client_error(exc, api="GetBucketPolicy", bucket=bucket, expected_owner=expected_owner) from exc
        return response["Policy"]

    def put(
        self,
        bucket: str,
        policy_text: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> None:
        """Replace the whole document. It is validated first; an invalid one is never sent."""
        validate_policy_text(policy_text)
        try:
            client = self._factory.s3(region, assume_role)
            put_params: PutBucketPolicyRequestTypeDef = {"Bucket": bucket, "Policy": policy_text}
            if expected_owner is not None:
                put_params["ExpectedBucketOwner"] = expected_owner
            client.put_bucket_policy(**put_params)
        except Exception as exc:
            raise map_client_error(exc, api="PutBucketPolicy", bucket=bucket, expected_owner=expected_owner) from exc

    def delete(
        self,
        bucket: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> None:
        """Remove the policy. Deleting a policy that does not exist succeeds, as in S3."""
        try:
            client = self._factory.s3(region, assume_role)
            delete_params: DeleteBucketPolicyRequestTypeDef = {"Bucket": bucket}
            if expected_owner is not None:
                delete_params["ExpectedBucketOwner"] = expected_owner
            client.delete_bucket_policy(**delete_params)
        except Exception as exc:
            raise map_client_error(exc, api="DeleteBucketPolicy", bucket=bucket, expected_owner=expected_owner) from exc
