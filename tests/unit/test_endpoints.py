"""botocore's endpoint-rule cache in front of every client (aws/_endpoints.py).

The cache must change nothing about a request (the same endpoint, headers and signing properties as botocore's
own resolution, for every bucket and region), must hit when a resync cycles through more buckets than botocore's
100-entry cache holds, and must be in place on every client the factory builds (which pins the two private
botocore attributes it relies on: a botocore that moves them fails here, not silently in production's CPU).
"""

from __future__ import annotations

from typing import Any

import botocore.config
import botocore.session
import pytest

from bucketwarden.aws._endpoints import enlarge_endpoint_cache
from bucketwarden.aws._session import AwsSettings, ClientFactory

BUCKETS = [f"fleet-bucket-{i:04d}" for i in range(300)]  # three times botocore's own cache


def _client(region: str = "eu-west-1", **kwargs: Any) -> Any:
    session = botocore.session.Session()
    return session.create_client(
        "s3", region_name=region, aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", **kwargs
    )


def _resolve(client: Any, operation: str, bucket: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    model = client.meta.service_model.operation_model(operation)
    url, headers, properties = client._resolve_endpoint_ruleset(model, {"Bucket": bucket}, {})
    return url, dict(headers), dict(properties)


@pytest.mark.parametrize("region", ["eu-west-1", "us-east-1", "cn-north-1"])
@pytest.mark.parametrize("operation", ["GetBucketPolicy", "PutBucketPolicy", "GetBucketVersioning"])
def test_the_cached_endpoint_is_botocores_for_every_bucket(region: str, operation: str) -> None:
    stock, cached = _client(region), _client(region)
    assert enlarge_endpoint_cache(cached)
    for _ in range(2):  # the second pass answers from the cache
        for bucket in [*BUCKETS, "bucket.with.dots", "UPPER-not-dns"]:
            assert _resolve(cached, operation, bucket) == _resolve(stock, operation, bucket)


def test_an_endpoint_url_and_path_style_are_kept() -> None:
    config = botocore.config.Config(s3={"addressing_style": "path"})
    stock = _client(endpoint_url="http://127.0.0.1:5000", config=config)
    cached = _client(endpoint_url="http://127.0.0.1:5000", config=config)
    enlarge_endpoint_cache(cached)
    for bucket in BUCKETS[:5] * 2:
        assert _resolve(cached, "GetBucketPolicy", bucket) == _resolve(stock, "GetBucketPolicy", bucket)
        assert _resolve(cached, "GetBucketPolicy", bucket)[0] == f"http://127.0.0.1:5000/{bucket}"


def test_a_resync_over_more_buckets_than_botocore_keeps_hits_the_cache() -> None:
    client = _client()
    enlarge_endpoint_cache(client, size=1000)
    info = client._ruleset_resolver._provider.resolve_endpoint.cache_info
    for bucket in BUCKETS:
        _resolve(client, "GetBucketPolicy", bucket)
    assert info().misses == len(BUCKETS) and info().hits == 0
    for bucket in BUCKETS:  # the next resync round: botocore's 100 entries would all have been evicted
        _resolve(client, "GetBucketPolicy", bucket)
    assert info().hits == len(BUCKETS) and info().currsize == len(BUCKETS)


def test_the_cache_is_bounded() -> None:
    client = _client()
    enlarge_endpoint_cache(client, size=50)
    for bucket in BUCKETS:
        _resolve(client, "GetBucketPolicy", bucket)
    assert client._ruleset_resolver._provider.resolve_endpoint.cache_info().currsize == 50


def test_every_client_the_factory_builds_has_it() -> None:
    factory = ClientFactory(AwsSettings(region="eu-west-1", endpoint_url="http://127.0.0.1:1"))
    clients: list[Any] = [factory.s3(), factory.s3("us-west-2"), factory.iam(), factory.sts(), factory.sqs()]
    for client in clients:
        assert hasattr(client._ruleset_resolver._provider.resolve_endpoint, "cache_info"), client


def test_a_client_without_the_seam_is_left_alone() -> None:
    class Elsewhere:
        pass

    thing = Elsewhere()
    assert enlarge_endpoint_cache(thing) is False
    assert vars(thing) == {}
