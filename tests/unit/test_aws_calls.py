"""AwsCallCounter and ClientFactory configuration, with botocore clients that never reach the network."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from bucketwarden.aws import AwsCallCounter, AwsSettings, ClientFactory

SESSION = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def answer(*statuses: int) -> Any:
    """A before-send handler answering each request with the next status (and an empty STS document)."""
    pending = list(statuses)

    def handler(request: Any, **_: Any) -> AWSResponse:
        status = pending.pop(0)
        if status < 300:
            body = (
                "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/u</Arn>"
                "<UserId>AIDAEXAMPLE</UserId><Account>123456789012</Account></GetCallerIdentityResult>"
                "</GetCallerIdentityResponse>"
            )
        else:
            body = "<ErrorResponse><Error><Code>Throttling</Code><Message>slow down</Message></Error></ErrorResponse>"
        return AWSResponse(request.url, status, HTTPHeaders(), _Body(body.encode()))

    return handler


@pytest.fixture
def factory() -> ClientFactory:
    settings = AwsSettings(region="eu-west-1", endpoint_url="http://127.0.0.1:9", max_attempts=3)
    return ClientFactory(settings, AwsCallCounter(), session=SESSION)


def test_counter_counts_calls_and_attempts_by_api(factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # No backoff sleep between attempts.
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, context: 0.0)
    sts = factory.sts()
    sts.meta.events.register("before-send.sts.GetCallerIdentity", answer(200, 400, 200))

    sts.get_caller_identity()
    sts.get_caller_identity()  # throttled once, then retried by botocore

    assert factory.counter.snapshot() == {"GetCallerIdentity": 2}
    assert factory.counter.attempts() == {"GetCallerIdentity": 3}
    assert factory.counter.errors() == {}
    assert factory.counter.total() == 2


def test_counter_reports_outcomes_to_the_hook_and_survives_a_broken_hook(factory: ClientFactory) -> None:
    seen: list[tuple[str, str]] = []
    factory.counter.on_call = lambda api, outcome: seen.append((api, outcome))
    factory.counter.record("GetRole", "ok")
    factory.counter.record("GetRole", "error")

    def broken(api: str, outcome: str) -> None:
        raise RuntimeError("metrics backend down")

    factory.counter.on_call = broken
    factory.counter.record("GetRole", "ok")  # must not raise

    assert seen == [("GetRole", "ok"), ("GetRole", "error")]
    assert factory.counter.snapshot() == {"GetRole": 3}
    assert factory.counter.errors() == {"GetRole": 1}


def test_counter_attaching_twice_counts_once(factory: ClientFactory) -> None:
    sts = factory.sts()
    factory.counter.attach(sts)  # already attached by the factory
    sts.meta.events.register("before-send.sts.GetCallerIdentity", answer(200))

    sts.get_caller_identity()

    assert factory.counter.snapshot() == {"GetCallerIdentity": 1}
    assert factory.counter.attempts() == {"GetCallerIdentity": 1}


def test_counter_reset_forgets_everything() -> None:
    counter = AwsCallCounter()
    counter.record("PutBucketPolicy", "error", attempts=3)

    counter.reset()

    assert (counter.snapshot(), counter.errors(), counter.attempts()) == ({}, {}, {})


def test_factory_configures_standard_bounded_retries_timeouts_and_pool(factory: ClientFactory) -> None:
    for client in (factory.s3(), factory.iam(), factory.sts()):
        config = vars(client.meta.config)  # botocore-stubs declare Config's options as __init__ arguments only
        assert config["retries"] == {"mode": "standard", "total_max_attempts": 3}
        assert (config["connect_timeout"], config["read_timeout"]) == (5.0, 20.0)
        assert config["max_pool_connections"] == 32
        assert client.meta.endpoint_url == "http://127.0.0.1:9"  # the override applies to every service


def test_factory_builds_s3_clients_for_the_bucket_region(factory: ClientFactory) -> None:
    assert factory.s3().meta.region_name == "eu-west-1"
    assert factory.s3("ap-southeast-2").meta.region_name == "ap-southeast-2"


@pytest.mark.parametrize(
    ("env", "region", "endpoint"),
    [
        pytest.param({}, "us-east-1", None, id="defaults"),
        pytest.param({"AWS_DEFAULT_REGION": "eu-west-1"}, "eu-west-1", None, id="default-region"),
        pytest.param({"AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "eu-west-1"}, "eu-north-1", None, id="region"),
        pytest.param(
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, "us-east-1", "http://127.0.0.1:5000", id="endpoint"
        ),
    ],
)
def test_settings_read_the_standard_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], region: str, endpoint: str | None
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    settings = AwsSettings()

    assert (settings.region, settings.endpoint_url) == (region, endpoint)
    assert (settings.max_attempts, settings.retry_mode) == (5, "standard")
