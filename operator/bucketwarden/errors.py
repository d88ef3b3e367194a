"""One exception hierarchy for bucketwarden; lower-library errors are mapped into it at the boundary."""

from __future__ import annotations


class BucketWardenError(Exception):
    """Base of every error bucketwarden raises on purpose.

    ``reason`` is a short CamelCase word used as a Kubernetes condition reason and an Event reason.
    ``retryable`` tells the operator whether waiting can help (throttling, 5xx) or only a change can.
    """

    reason: str = "Error"
    retryable: bool = False

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


# --- the policy core ---------------------------------------------------------------------------------------


class PolicyError(BucketWardenError):
    """A bucket policy document could not be understood or built."""

    reason = "MalformedPolicy"


class PolicyParseError(PolicyError):
    """The existing document is not a valid bucket policy; it is reported, never silently rewritten."""


class UnknownConditionOperatorError(PolicyError):
    """The evaluator met a condition operator it does not implement; never guess a result."""

    reason = "UnsupportedCondition"


class InvalidConditionValueError(PolicyError):
    """A condition value AWS would reject (an invalid CIDR or date): the policy is malformed, never half-judged."""

    reason = "MalformedPolicy"


# One class per reason, each a docstring and its reason: parallel declarations by design (the duplicates tool
# pairs them with the AWS errors below); an `except` clause needs a real class, so no factory makes them.
class PolicyTooLargeError(PolicyError):
    """The merged document would exceed S3's 20 KB bucket policy limit."""

    reason = "PolicyTooLarge"


class InvalidSpecError(BucketWardenError):
    """The ProtectedBucket spec is invalid in a way the schema could not catch."""

    reason = "InvalidSpec"


class AckPatchError(BucketWardenError):
    """The patch of an ACK Bucket's spec.policy failed (an API error, a timeout): nothing reached ACK."""

    reason = "ACKPatchFailed"


# --- AWS -----------------------------------------------------------------------------------------------------


class AwsError(BucketWardenError):
    """An AWS call failed. Subclasses say whether retrying can help."""

    reason = "AwsError"

    def __init__(self, message: str, *, reason: str | None = None, api: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.api = api


class AwsUnavailableError(AwsError):
    """Throttling, 5xx, timeouts, connection errors: retry with backoff."""

    reason = "AwsUnavailable"
    retryable = True


class AccessDeniedError(AwsError):
    """AWS refused the call. For a bucket policy this may be our own Deny: see the hint."""

    reason = "AccessDenied"

    HINT = (
        "check that the operator's own principal is exempted (spec.exemptOperator) and that its IAM policy "
        "grants the call; the bucket owner's root user can always delete a bucket policy to recover"
    )


# Parallel to the policy-core classes above: one declaration per reason (see there).
class BucketNotFoundError(AwsError):
    """The bucket does not exist (NoSuchBucket)."""

    reason = "BucketNotFound"


class WrongBucketOwnerError(AwsError):
    """ExpectedBucketOwner did not match the bucket's owner."""

    reason = "WrongBucketOwner"


class WrongRegionError(AwsError):
    """The bucket lives in another region (301 PermanentRedirect)."""

    reason = "WrongRegion"


class MalformedPolicyError(AwsError):
    """S3 rejected the document as malformed."""

    reason = "MalformedPolicy"


class RoleNotFoundError(AwsError):
    """iam:GetRole said NoSuchEntity for an exempt role."""

    reason = "RoleNotFound"


class CredentialsError(AwsError):
    """No usable AWS credentials, or the assume-role step failed."""

    reason = "NoCredentials"


class CrossAccountRoleError(AwsError):
    """An exempt role ARN names another account than the one the operator acts in.

    iam:GetRole can only read roles of the caller's own account, so its RoleId cannot be resolved.
    """

    reason = "CrossAccountRole"
