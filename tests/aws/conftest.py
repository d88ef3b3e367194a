"""Fixtures for the AWS adapter tests: moto over real HTTP in a separate process, and parity harnesses.

``aws`` runs a test twice: once against the real AwsGateway talking to moto, once against InMemoryAws.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from bucketwarden.aws import AwsGateway, ManualClock
from bucketwarden_testkit import EnforcedMoto, MotoServer
from tests.aws._harness import AdminClients, FakeHarness, Harness, MotoHarness, moto_settings
from tests.shared import OUR_SID


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def boto_session(moto_server: MotoServer) -> boto3.session.Session:
    """One boto3 session for all tests: a fresh session reloads the service models (0.2 s for S3)."""
    return moto_server.session()


@pytest.fixture(scope="session")
def admin(moto_server: MotoServer, boto_session: boto3.session.Session) -> AdminClients:
    """Uncounted clients to set up scenarios in moto."""
    return AdminClients(moto_server, boto_session)


@pytest.fixture
def moto(moto_server: MotoServer) -> MotoServer:
    """The shared moto server, emptied before the test."""
    moto_server.reset()
    return moto_server


@pytest.fixture(scope="module")
def enforced() -> Iterator[EnforcedMoto]:
    """moto behind the enforcing S3 front: bucket policies are judged on every request, as AWS does."""
    with EnforcedMoto() as server:
        yield server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1000.0)


@pytest.fixture
def gateway(moto: MotoServer, boto_session: boto3.session.Session, clock: ManualClock) -> AwsGateway:
    """The real gateway on moto, with a manual clock for the caches."""
    return AwsGateway(moto_settings(moto), session=boto_session, clock=clock)


@pytest.fixture(params=["moto", "fake"])
def aws(request: pytest.FixtureRequest, clock: ManualClock) -> Harness:
    """The same scenario against the real gateway on moto and against InMemoryAws."""
    if request.param == "moto":
        moto = request.getfixturevalue("moto")
        return MotoHarness(moto, request.getfixturevalue("boto_session"), request.getfixturevalue("admin"), clock)
    return FakeHarness(clock)


@pytest.fixture
def make_policy() -> Callable[..., str]:
    """A valid bucket policy document for a bucket, padded to exactly ``pad_to`` bytes if asked."""

    def make(bucket: str, *, sid: str = OUR_SID, pad_to: int = 0) -> str:
        statement: dict[str, Any] = {
            "Sid": sid,
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24"]}},
        }
        text = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
        if pad_to > len(text):
            statement["Condition"]["NotIpAddress"]["aws:SourceIp"].append("x" * (pad_to - len(text) - 4))
            text = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
        return text

    return make
