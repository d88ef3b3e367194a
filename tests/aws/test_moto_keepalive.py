"""MotoServer keeps connections alive as AWS does: boto3 clients reuse one TCP connection call after call."""

from __future__ import annotations

import http.client
import json
import logging
import urllib.parse
import urllib.request
from typing import Any

import boto3
import pytest

from bucketwarden_testkit import MotoServer

BUCKET = "keepalive-bucket"


def connection_events(caplog: pytest.LogCaptureFixture) -> tuple[int, int]:
    """(new connections, reconnections after the server closed one) that urllib3 logged."""
    messages = [r.getMessage() for r in caplog.records if r.name == "urllib3.connectionpool"]
    return (
        sum(m.startswith("Starting new HTTP connection") for m in messages),
        sum(m.startswith("Resetting dropped connection") for m in messages),
    )


def test_each_client_uses_one_connection_for_many_calls(
    moto: MotoServer, boto_session: boto3.session.Session, caplog: pytest.LogCaptureFixture
) -> None:
    s3 = boto_session.client("s3", endpoint_url=moto.endpoint_url)
    iam = boto_session.client("iam", endpoint_url=moto.endpoint_url)
    sts = boto_session.client("sts", endpoint_url=moto.endpoint_url)
    with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
        s3.create_bucket(Bucket=BUCKET)
        policy: dict[str, Any] = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*"}],
        }
        policy["Statement"][0]["Resource"] = f"arn:aws:s3:::{BUCKET}/*"
        s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
        for _ in range(5):
            assert json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"]) == policy
            s3.head_bucket(Bucket=BUCKET)
        iam.create_role(RoleName="keepalive-role", AssumeRolePolicyDocument="{}")
        for _ in range(5):
            iam.get_role(RoleName="keepalive-role")
            sts.get_caller_identity()
    assert connection_events(caplog) == (3, 0)  # one per client, never a reconnection


def test_a_chunked_request_body_is_decoded(moto: MotoServer, boto_session: boto3.session.Session) -> None:
    s3 = boto_session.client("s3", endpoint_url=moto.endpoint_url)
    s3.create_bucket(Bucket=BUCKET)
    address = urllib.parse.urlsplit(moto.endpoint_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    for key in ("first", "second"):  # the second on the same connection: the first body was read to its end
        # An iterable body without a Content-Length goes out with Transfer-Encoding: chunked, one chunk per item.
        connection.request("PUT", f"/{BUCKET}/{key}", body=iter([b"one chunk, ", b"another ", key.encode()]))
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        assert not response.will_close
    connection.close()
    for key in ("first", "second"):
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"one chunk, another " + key.encode()


def test_head_answers_the_length_without_a_body_and_the_connection_lives_on(
    moto: MotoServer, boto_session: boto3.session.Session, caplog: pytest.LogCaptureFixture
) -> None:
    s3 = boto_session.client("s3", endpoint_url=moto.endpoint_url)
    with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="object", Body=b"x" * 1000)
        for _ in range(3):
            assert s3.head_object(Bucket=BUCKET, Key="object")["ContentLength"] == 1000
            # A body after the HEAD's headers would be read as the start of this response.
            assert s3.get_object(Bucket=BUCKET, Key="object")["Body"].read() == b"x" * 1000
    assert connection_events(caplog) == (1, 0)


def test_underscored_metadata_names_keep_their_spelling(moto: MotoServer, boto_session: boto3.session.Session) -> None:
    s3 = boto_session.client("s3", endpoint_url=moto.endpoint_url)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="meta", Body=b"", Metadata={"my_key": "underscored", "other-key": "dashed"})
    assert s3.head_object(Bucket=BUCKET, Key="meta")["Metadata"] == {"my_key": "underscored", "other-key": "dashed"}


def test_the_moto_api_still_answers(moto: MotoServer, boto_session: boto3.session.Session) -> None:
    boto_session.client("s3", endpoint_url=moto.endpoint_url).create_bucket(Bucket=BUCKET)
    with urllib.request.urlopen(moto.endpoint_url + "/moto-api/data.json", timeout=10) as response:
        assert BUCKET in json.load(response)["s3"]["FakeBucket"][0]["name"]
    moto.reset()
    with urllib.request.urlopen(moto.endpoint_url + "/moto-api/data.json", timeout=10) as response:
        assert json.load(response)["s3"]["FakeBucket"] == []
