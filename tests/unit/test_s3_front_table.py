"""The enforcing S3 front's pure parts: the operation-to-action table and the request context per network."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bucketwarden_testkit import (
    AWS_NETWORK,
    NAT,
    OFFICE,
    S3_OPERATIONS,
    VPC_ENDPOINT,
    Network,
    Principal,
    request_context,
    resolve_s3_call,
)
from bucketwarden_testkit._front import access_key_of

BUCKET = "arn:aws:s3:::b"
OBJECT = "arn:aws:s3:::b/data/o 1"

# (method, path-style target, API, IAM action, resource)
TABLE = [
    ("GET", "/", "ListBuckets", "s3:ListAllMyBuckets", "*"),
    ("GET", "/b", "ListObjects", "s3:ListBucket", BUCKET),
    ("GET", "/b?list-type=2&prefix=data%2F", "ListObjectsV2", "s3:ListBucket", BUCKET),
    ("HEAD", "/b", "HeadBucket", "s3:ListBucket", BUCKET),
    ("PUT", "/b", "CreateBucket", "s3:CreateBucket", BUCKET),
    ("DELETE", "/b", "DeleteBucket", "s3:DeleteBucket", BUCKET),
    ("GET", "/b?versions", "ListObjectVersions", "s3:ListBucketVersions", BUCKET),
    ("GET", "/b?versioning", "GetBucketVersioning", "s3:GetBucketVersioning", BUCKET),
    ("PUT", "/b?versioning", "PutBucketVersioning", "s3:PutBucketVersioning", BUCKET),
    ("GET", "/b?policy", "GetBucketPolicy", "s3:GetBucketPolicy", BUCKET),
    ("PUT", "/b?policy", "PutBucketPolicy", "s3:PutBucketPolicy", BUCKET),
    ("DELETE", "/b?policy", "DeleteBucketPolicy", "s3:DeleteBucketPolicy", BUCKET),
    ("GET", "/b?location", "GetBucketLocation", "s3:GetBucketLocation", BUCKET),
    ("GET", "/b?tagging", "GetBucketTagging", "s3:GetBucketTagging", BUCKET),
    ("GET", "/b?acl", "GetBucketAcl", "s3:GetBucketAcl", BUCKET),
    ("GET", "/b?notification", "GetBucketNotificationConfiguration", "s3:GetBucketNotification", BUCKET),
    ("GET", "/b?inventory&id=x", "GetBucketInventoryConfiguration", "s3:GetInventoryConfiguration", BUCKET),
    ("GET", "/b?encryption", "GetBucketEncryption", "s3:GetEncryptionConfiguration", BUCKET),
    ("POST", "/b?delete", "DeleteObjects", "s3:DeleteObject", BUCKET),
    ("GET", "/b/data/o%201", "GetObject", "s3:GetObject", OBJECT),
    ("GET", "/b/data/o%201?versionId=v1", "GetObject", "s3:GetObjectVersion", OBJECT),
    ("HEAD", "/b/data/o%201", "HeadObject", "s3:GetObject", OBJECT),
    ("HEAD", "/b/data/o%201?versionId=v1", "HeadObject", "s3:GetObjectVersion", OBJECT),
    ("PUT", "/b/data/o%201", "PutObject", "s3:PutObject", OBJECT),
    ("DELETE", "/b/data/o%201", "DeleteObject", "s3:DeleteObject", OBJECT),
    ("DELETE", "/b/data/o%201?versionId=v1", "DeleteObject", "s3:DeleteObjectVersion", OBJECT),
    ("GET", "/b/data/o%201?tagging", "GetObjectTagging", "s3:GetObjectTagging", OBJECT),
    ("GET", "/b/data/o%201?tagging&versionId=v1", "GetObjectTagging", "s3:GetObjectVersionTagging", OBJECT),
    ("GET", "/b/data/o%201?acl", "GetObjectAcl", "s3:GetObjectAcl", OBJECT),
    ("GET", "/b/data/o%201?acl&versionId=v1", "GetObjectAcl", "s3:GetObjectVersionAcl", OBJECT),
    ("POST", "/b/data/o%201?uploads", "CreateMultipartUpload", "s3:PutObject", OBJECT),
    ("DELETE", "/b/data/o%201?uploadId=u", "AbortMultipartUpload", "s3:AbortMultipartUpload", OBJECT),
    ("GET", "/b?website", "GET:bucket?website", "s3:UnmappedOperation", BUCKET),
    ("GET", "/b/k?x-id=GetObject&response-content-type=a", "GetObject", "s3:GetObject", "arn:aws:s3:::b/k"),
]


@pytest.mark.parametrize(
    ("method", "target", "api", "action", "resource"), TABLE, ids=[f"{r[0]} {r[1]}" for r in TABLE]
)
def test_resolve_s3_call_maps_each_operation_to_its_iam_action(
    method: str, target: str, api: str, action: str, resource: str
) -> None:
    call = resolve_s3_call(method, target)
    assert (call.api, call.action, call.resource) == (api, action, resource)


def test_s3_operations_table_covers_at_least_twenty_operations_once_each() -> None:
    keys = [(o.method, o.scope, o.subresource) for o in S3_OPERATIONS]
    assert len(set(keys)) == len(keys) >= 20
    assert all(o.action.startswith("s3:") for o in S3_OPERATIONS)


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1))
def test_resolve_s3_call_object_resource_is_the_decoded_key(key: str) -> None:
    call = resolve_s3_call("GET", "/bucket-1/" + urllib.parse.quote(key, safe=""))
    assert call.resource == f"arn:aws:s3:::bucket-1/{key}"
    assert call.key == key


ROLE_SESSION = Principal(
    "AROAEXAMPLE000000001:AWSBackup-R",
    "arn:aws:iam::123456789012:role/service-role/R",
    "123456789012",
    "AssumedRole",
)


@pytest.mark.parametrize(
    ("network", "present", "absent"),
    [
        (OFFICE, {"aws:SourceIp": "192.0.2.10"}, ("aws:SourceVpce", "aws:SourceVpc")),
        (AWS_NETWORK, {"aws:SourceIp": "3.5.140.2"}, ("aws:SourceVpce",)),
        (NAT, {"aws:SourceIp": "198.51.100.7"}, ("aws:SourceVpce",)),
        (
            VPC_ENDPOINT,
            {"aws:SourceVpce": "vpce-0a1b2c3d4e5f60789", "aws:SourceVpc": "vpc-0a1b2c3d4e5f60789"},
            ("aws:SourceIp",),
        ),
    ],
    ids=["office", "aws", "nat", "vpce"],
)
def test_request_context_carries_each_networks_source(
    network: Network, present: dict[str, str], absent: tuple[str, ...]
) -> None:
    call = resolve_s3_call("GET", "/b/k")
    context = request_context(ROLE_SESSION, network, call, "REST-HEADER", 1_800_000_000.0)
    assert {k: context[k] for k in present} == present
    assert not set(absent) & set(context)
    assert context["aws:userid"] == "AROAEXAMPLE000000001:AWSBackup-R"
    assert context["aws:PrincipalArn"] == "arn:aws:iam::123456789012:role/service-role/R"
    assert context["aws:PrincipalType"] == "AssumedRole"
    assert context["aws:SecureTransport"] == "true"
    assert context["aws:EpochTime"] == "1800000000"
    assert context["aws:CurrentTime"] == "2027-01-15T08:00:00Z"


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        (
            {"authorization": "AWS4-HMAC-SHA256 Credential=AKIDHEADER/20261201/us-east-1/s3/aws4_request, S=x"},
            {},
            ("AKIDHEADER", "REST-HEADER", "AWS4-HMAC-SHA256"),
        ),
        (
            {},
            {"X-Amz-Credential": "AKIDQUERY/20261201/us-east-1/s3/aws4_request"},
            ("AKIDQUERY", "REST-QUERY-STRING", "AWS4-HMAC-SHA256"),
        ),
        ({}, {"AWSAccessKeyId": "AKIDV2", "Signature": "x"}, ("AKIDV2", "REST-QUERY-STRING", "AWS")),
        ({"authorization": "AWS AKIDV2HEADER:sig"}, {}, ("AKIDV2HEADER", "REST-HEADER", "AWS")),
        ({}, {}, (None, "REST-HEADER", "AWS4-HMAC-SHA256")),
    ],
    ids=["header", "presigned", "presigned-sigv2", "header-sigv2", "anonymous"],
)
def test_access_key_of_reads_header_and_presigned_auth(
    headers: dict[str, str], query: dict[str, str], expected: tuple[str | None, str, str]
) -> None:
    assert access_key_of(headers, query) == expected
