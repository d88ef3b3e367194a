"""The same scenario levers as InMemoryAws, over moto: so reconciler tests run on the wire and in memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from bucketwarden.aws import AwsGateway, ManualClock
from bucketwarden.principals import CallerIdentity
from bucketwarden_testkit import MotoServer
from tests.aws._harness import AdminClients, moto_settings
from tests.shared import TRUST_POLICY


@dataclass(frozen=True)
class WorldRole:
    name: str
    arn: str
    role_id: str


class MotoWorld(AwsGateway):
    """An AwsGateway on moto, plus uncounted admin levers named like InMemoryAws's."""

    def __init__(self, moto: MotoServer, session: boto3.session.Session, admin: AdminClients) -> None:
        self.manual_clock = ManualClock(start=1000.0)
        super().__init__(moto_settings(moto), session=session, clock=self.manual_clock)
        self._s3 = admin.s3
        self._iam = admin.iam

    @property
    def caller(self) -> CallerIdentity:
        return self.caller_identity()

    def create_bucket(self, name: str, *, policy: str | None = None) -> None:
        self._s3.create_bucket(Bucket=name)
        if policy is not None:
            self._s3.put_bucket_policy(Bucket=name, Policy=policy)

    def delete_bucket(self, name: str) -> None:
        self.put_foreign(name, None)
        self._s3.delete_bucket(Bucket=name)

    def put_foreign(self, bucket: str, policy_text: str | None) -> None:
        if policy_text is None:
            self._s3.delete_bucket_policy(Bucket=bucket)
        else:
            self._s3.put_bucket_policy(Bucket=bucket, Policy=policy_text)

    def policy_of(self, bucket: str) -> str | None:
        try:
            return str(self._s3.get_bucket_policy(Bucket=bucket)["Policy"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucketPolicy":
                return None
            raise

    def create_role(self, name: str, *, path: str = "/") -> WorldRole:
        role = self._iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=TRUST_POLICY)["Role"]
        return WorldRole(name, role["Arn"], role["RoleId"])

    def role(self, name: str) -> WorldRole:
        role = self._iam.get_role(RoleName=name)["Role"]
        return WorldRole(name, role["Arn"], role["RoleId"])

    def delete_role(self, name: str) -> None:
        self._iam.delete_role(RoleName=name)

    def recreate_role(self, name: str) -> WorldRole:
        path = self._iam.get_role(RoleName=name)["Role"]["Path"]
        self.delete_role(name)
        return self.create_role(name, path=path)

    def advance(self, seconds: float) -> None:
        self.manual_clock.advance(seconds)

    def fail_next(self, api: str, error: Exception, *, times: int = 1) -> Any:
        raise NotImplementedError("scripted failures are InMemoryAws-only; the reliability suite injects real faults")
