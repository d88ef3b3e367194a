"""Which S3 operation a path-style HTTP request is, and the IAM action and resource ARN AWS authorizes it as.

The table is data: one row per (method, scope, subresource). A request's subresource is the first query key
that names one for its scope; ``versionId`` turns an object read or delete into its ...Version action, as the
S3 authorization reference says (GetObject -> s3:GetObjectVersion, HeadObject -> s3:GetObject).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Literal

Scope = Literal["service", "bucket", "object"]


@dataclass(frozen=True, slots=True)
class S3Operation:
    """One row of the table: the S3 API and the IAM action it needs (``versioned`` with ``versionId``)."""

    api: str
    method: str
    scope: Scope
    subresource: str | None
    action: str
    versioned: str | None = None


def _op(api: str, method: str, scope: Scope, sub: str | None, action: str, versioned: str | None = None) -> S3Operation:
    return S3Operation(api, method, scope, sub, action, versioned)


S3_OPERATIONS: tuple[S3Operation, ...] = (
    _op("ListBuckets", "GET", "service", None, "s3:ListAllMyBuckets"),
    # bucket
    _op("ListObjects", "GET", "bucket", None, "s3:ListBucket"),
    _op("HeadBucket", "HEAD", "bucket", None, "s3:ListBucket"),
    _op("CreateBucket", "PUT", "bucket", None, "s3:CreateBucket"),
    _op("DeleteBucket", "DELETE", "bucket", None, "s3:DeleteBucket"),
    _op("ListObjectVersions", "GET", "bucket", "versions", "s3:ListBucketVersions"),
    _op("GetBucketVersioning", "GET", "bucket", "versioning", "s3:GetBucketVersioning"),
    _op("PutBucketVersioning", "PUT", "bucket", "versioning", "s3:PutBucketVersioning"),
    _op("GetBucketPolicy", "GET", "bucket", "policy", "s3:GetBucketPolicy"),
    _op("PutBucketPolicy", "PUT", "bucket", "policy", "s3:PutBucketPolicy"),
    _op("DeleteBucketPolicy", "DELETE", "bucket", "policy", "s3:DeleteBucketPolicy"),
    _op("GetBucketPolicyStatus", "GET", "bucket", "policyStatus", "s3:GetBucketPolicyStatus"),
    _op("GetBucketLocation", "GET", "bucket", "location", "s3:GetBucketLocation"),
    _op("GetBucketTagging", "GET", "bucket", "tagging", "s3:GetBucketTagging"),
    _op("PutBucketTagging", "PUT", "bucket", "tagging", "s3:PutBucketTagging"),
    _op("GetBucketAcl", "GET", "bucket", "acl", "s3:GetBucketAcl"),
    _op("PutBucketAcl", "PUT", "bucket", "acl", "s3:PutBucketAcl"),
    _op("GetBucketNotificationConfiguration", "GET", "bucket", "notification", "s3:GetBucketNotification"),
    _op("GetBucketInventoryConfiguration", "GET", "bucket", "inventory", "s3:GetInventoryConfiguration"),
    _op("GetBucketEncryption", "GET", "bucket", "encryption", "s3:GetEncryptionConfiguration"),
    _op("GetObjectLockConfiguration", "GET", "bucket", "object-lock", "s3:GetBucketObjectLockConfiguration"),
    _op("GetBucketLifecycleConfiguration", "GET", "bucket", "lifecycle", "s3:GetLifecycleConfiguration"),
    _op("GetBucketReplication", "GET", "bucket", "replication", "s3:GetReplicationConfiguration"),
    _op("ListMultipartUploads", "GET", "bucket", "uploads", "s3:ListBucketMultipartUploads"),
    _op("DeleteObjects", "POST", "bucket", "delete", "s3:DeleteObject"),
    # object
    _op("GetObject", "GET", "object", None, "s3:GetObject", "s3:GetObjectVersion"),
    _op("HeadObject", "HEAD", "object", None, "s3:GetObject", "s3:GetObjectVersion"),
    _op("PutObject", "PUT", "object", None, "s3:PutObject"),
    _op("DeleteObject", "DELETE", "object", None, "s3:DeleteObject", "s3:DeleteObjectVersion"),
    _op("GetObjectTagging", "GET", "object", "tagging", "s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
    _op("PutObjectTagging", "PUT", "object", "tagging", "s3:PutObjectTagging", "s3:PutObjectVersionTagging"),
    _op("GetObjectAcl", "GET", "object", "acl", "s3:GetObjectAcl", "s3:GetObjectVersionAcl"),
    _op(
        "GetObjectAttributes", "GET", "object", "attributes", "s3:GetObjectAttributes", "s3:GetObjectVersionAttributes"
    ),
    _op("GetObjectRetention", "GET", "object", "retention", "s3:GetObjectRetention"),
    _op("GetObjectLegalHold", "GET", "object", "legal-hold", "s3:GetObjectLegalHold"),
    _op("CreateMultipartUpload", "POST", "object", "uploads", "s3:PutObject"),
    _op("UploadPart", "PUT", "object", "uploadId", "s3:PutObject"),
    _op("CompleteMultipartUpload", "POST", "object", "uploadId", "s3:PutObject"),
    _op("AbortMultipartUpload", "DELETE", "object", "uploadId", "s3:AbortMultipartUpload"),
    _op("ListParts", "GET", "object", "uploadId", "s3:ListMultipartUploadParts"),
)

_BY_KEY = {(o.method, o.scope, o.subresource): o for o in S3_OPERATIONS}
_SUBRESOURCES = {o.scope: set[str]() for o in S3_OPERATIONS}
for _o in S3_OPERATIONS:
    if _o.subresource is not None:
        _SUBRESOURCES[_o.scope].add(_o.subresource)

# Query keys that are parameters, not subresources: any other key names an operation the table lacks.
_PARAMETERS = frozenset(
    {
        "prefix", "delimiter", "max-keys", "marker", "list-type", "continuation-token", "encoding-type",
        "start-after", "fetch-owner", "key-marker", "version-id-marker", "upload-id-marker", "max-uploads",
        "max-parts", "part-number-marker", "versionId", "partNumber", "id", "x-id",
    }
)  # fmt: skip


def _is_parameter(key: str) -> bool:
    return key in _PARAMETERS or key.startswith(("response-", "X-Amz-", "x-amz-"))


# Anything the table lacks is still judged: an `s3:*` Deny matches it, as it would match the real action.
UNMAPPED_ACTION = "s3:UnmappedOperation"


@dataclass(frozen=True, slots=True)
class S3Call:
    """One request, resolved: the API, the IAM action and resource ARN, the bucket and key, the query."""

    api: str
    action: str
    resource: str
    bucket: str | None
    key: str | None
    query: dict[str, str]


def resolve_s3_call(method: str, target: str, partition: str = "aws") -> S3Call:
    """The S3 call a path-style request (``/bucket/key?query``) is."""
    split = urllib.parse.urlsplit(target)
    bucket_part, _, key_part = split.path.lstrip("/").partition("/")
    bucket = urllib.parse.unquote(bucket_part) or None
    key = urllib.parse.unquote(key_part) if key_part else None
    query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
    scope: Scope = "service" if bucket is None else ("object" if key is not None else "bucket")
    subresource = next((k for k in query if k in _SUBRESOURCES.get(scope, ())), None)
    unknown = subresource is None and any(not _is_parameter(k) for k in query)
    operation = None if unknown else _BY_KEY.get((method, scope, subresource))
    if bucket is None:
        resource = "*"
    elif key is None:
        resource = f"arn:{partition}:s3:::{bucket}"
    else:
        resource = f"arn:{partition}:s3:::{bucket}/{key}"
    if operation is None:
        named = subresource or next((k for k in query if not _is_parameter(k)), None)
        api = f"{method}:{scope}{'?' + named if named else ''}"
        return S3Call(api, UNMAPPED_ACTION, resource, bucket, key, query)
    action = operation.versioned if operation.versioned and "versionId" in query else operation.action
    api = "ListObjectsV2" if operation.api == "ListObjects" and query.get("list-type") == "2" else operation.api
    return S3Call(api, action, resource, bucket, key, query)
