"""Parity harnesses: the real AwsGateway on moto and InMemoryAws, behind one small interface.

Whatever both implementations must do alike is written once against ``Harness``, which keeps the fake honest.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config

from bucketwarden.aws import AwsCallCounter, AwsGateway, AwsPort, AwsSettings, InMemoryAws, ManualClock
from bucketwarden_testkit import MotoServer
from tests.shared import TRUST_POLICY

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sts import STSClient

ACCOUNT = "123456789012"  # moto's default account; InMemoryAws uses the same


def moto_settings(moto: MotoServer, **overrides: Any) -> AwsSettings:
    return AwsSettings(**{"region": moto.region, "endpoint_url": moto.endpoint_url, **overrides})


class Harness(Protocol):
    """One implementation of the AWS port plus the levers a scenario needs."""

    port: AwsPort
    counter: AwsCallCounter
    account: str

    def create_bucket(self, name: str) -> None: ...
    def create_role(self, name: str, path: str = "/") -> tuple[str, str]: ...  # (arn, role_id)
    def recreate_role(self, name: str) -> str: ...  # the new role_id
    def delete_role(self, name: str) -> None: ...
    def advance(self, seconds: float) -> None: ...
    def set_latency(self, api: str, seconds: float) -> None: ...


class AdminClients:
    """Uncounted clients for setting up scenarios, built once."""

    def __init__(self, moto: MotoServer, session: boto3.session.Session) -> None:
        config = Config(retries={"total_max_attempts": 2, "mode": "standard"})
        self.s3: S3Client = session.client("s3", endpoint_url=moto.endpoint_url, config=config)
        self.iam: IAMClient = session.client("iam", endpoint_url=moto.endpoint_url, config=config)
        self.sts: STSClient = session.client("sts", endpoint_url=moto.endpoint_url, config=config)


class MotoHarness:
    def __init__(
        self, moto: MotoServer, session: boto3.session.Session, admin: AdminClients, clock: ManualClock
    ) -> None:
        self._clock = clock
        self.gateway = AwsGateway(moto_settings(moto), session=session, clock=clock)
        self.port: AwsPort = self.gateway
        self.counter = self.gateway.counter
        self.account = ACCOUNT
        self._s3 = admin.s3
        self._iam = admin.iam

    def create_bucket(self, name: str) -> None:
        self._s3.create_bucket(Bucket=name)

    def create_role(self, name: str, path: str = "/") -> tuple[str, str]:
        role = self._iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=TRUST_POLICY)["Role"]
        return role["Arn"], role["RoleId"]

    def recreate_role(self, name: str) -> str:
        path = self._iam.get_role(RoleName=name)["Role"]["Path"]
        self.delete_role(name)
        return self.create_role(name, path)[1]

    def delete_role(self, name: str) -> None:
        self._iam.delete_role(RoleName=name)

    def advance(self, seconds: float) -> None:
        self._clock.advance(seconds)

    def set_latency(self, api: str, seconds: float) -> None:
        def slow(event_name: str, **_: Any) -> None:
            if event_name.endswith("." + api):
                time.sleep(seconds)

        for client in (self.gateway.factory.s3(), self.gateway.factory.iam(), self.gateway.factory.sts()):
            client.meta.events.register("before-send", slow)


class FakeHarness:
    def __init__(self, clock: ManualClock) -> None:
        self.fake = InMemoryAws(account=ACCOUNT, clock=clock)
        self.port: AwsPort = self.fake
        self.counter = self.fake.counter
        self.account = ACCOUNT
        self._clock = clock

    def create_bucket(self, name: str) -> None:
        self.fake.create_bucket(name)

    def create_role(self, name: str, path: str = "/") -> tuple[str, str]:
        role = self.fake.create_role(name, path=path)
        return role.arn, role.role_id

    def recreate_role(self, name: str) -> str:
        return self.fake.recreate_role(name).role_id

    def delete_role(self, name: str) -> None:
        self.fake.delete_role(name)

    def advance(self, seconds: float) -> None:
        self._clock.advance(seconds)

    def set_latency(self, api: str, seconds: float) -> None:
        self.fake.set_latency(api, seconds)
