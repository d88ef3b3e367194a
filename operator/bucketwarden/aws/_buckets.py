"""Read-only bucket facts for the audit and the readiness checks: list, location, versioning, tags."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from bucketwarden.aws._errors import error_code, map_client_error
from bucketwarden.aws._session import ClientFactory
from bucketwarden.principals import RoleAssumption

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import GetBucketVersioningRequestTypeDef

# GetBucketLocation's legacy answers: no constraint is us-east-1, "EU" is eu-west-1.
_LEGACY_LOCATIONS = {"": "us-east-1", "EU": "eu-west-1"}


class BucketReader:
    """ListBuckets, GetBucketLocation, GetBucketVersioning and GetBucketTagging through the shared, counted
    clients, errors mapped like every other call. Never writes."""

    def __init__(self, factory: ClientFactory) -> None:
        self._factory = factory

    def list_names(self, *, assume_role: RoleAssumption | None = None) -> Iterator[str]:
        """Every bucket of the account, page by page (ListBuckets is global; any region's client answers)."""
        params: dict[str, Any] = {}
        while True:
            try:
                response = self._factory.s3(None, assume_role).list_buckets(**params)
            except Exception as exc:
                raise map_client_error(exc, api="ListBuckets") from exc
            for bucket in response.get("Buckets", []):
                yield bucket["Name"]
            token = response.get("ContinuationToken")
            if not token:
                return
            params = {"ContinuationToken": token}

    def location(self, bucket: str, *, assume_role: RoleAssumption | None = None) -> str:
        """The bucket's region."""
        try:
            response = self._factory.s3(None, assume_role).get_bucket_location(Bucket=bucket)
        except Exception as exc:
            raise map_client_error(exc, api="GetBucketLocation", bucket=bucket) from exc
        constraint = response.get("LocationConstraint") or ""
        return _LEGACY_LOCATIONS.get(constraint, constraint)

    def versioning(
        self,
        bucket: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> str | None:
        """ "Enabled", "Suspended", or None for a bucket whose versioning was never turned on."""
        params: GetBucketVersioningRequestTypeDef = {"Bucket": bucket}
        if expected_owner is not None:
            params["ExpectedBucketOwner"] = expected_owner
        try:
            response = self._factory.s3(region, assume_role).get_bucket_versioning(**params)
        except Exception as exc:
            raise map_client_error(
                exc, api="GetBucketVersioning", bucket=bucket, expected_owner=expected_owner
            ) from exc
        status = response.get("Status")
        return str(status) if status else None

    def tags(
        self, bucket: str, *, region: str | None = None, assume_role: RoleAssumption | None = None
    ) -> dict[str, str]:
        """The bucket's tags; a bucket without tags answers NoSuchTagSet, which is the empty dict."""
        try:
            response = self._factory.s3(region, assume_role).get_bucket_tagging(Bucket=bucket)
        except ClientError as exc:
            if error_code(exc) == "NoSuchTagSet":
                return {}
            raise map_client_error(exc, api="GetBucketTagging", bucket=bucket) from exc
        except Exception as exc:
            raise map_client_error(exc, api="GetBucketTagging", bucket=bucket) from exc
        return {t["Key"]: t["Value"] for t in response.get("TagSet", [])}
