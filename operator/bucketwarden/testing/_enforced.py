"""`EnforcedMoto`: moto behind the enforcing S3 front, a drop-in `MotoServer` whose bucket policies bite.

``endpoint_url`` (what the code under test is given) is the front's ``nat`` network, where a cluster's requests
come from; ``client()`` (the test's own setup and inspection) goes through the unenforced ``harness`` port, so
every write passes the front and its policy cache stays true. ``endpoint(network)`` gives the other networks.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from collections.abc import Sequence
from typing import Any

import boto3
import botocore.config

from ._front import DEFAULT_NETWORKS, ROOT_ACCESS_KEY_ID, Network, S3Front
from ._moto import DEFAULT_REGION, MotoServer

# Set to 0 to run the suites against bare moto (no bucket-policy enforcement), e.g. to tell a front bug apart.
FRONT_VARIABLE = "BUCKETWARDEN_S3_FRONT"


def front_enabled() -> bool:
    return os.environ.get(FRONT_VARIABLE, "1").strip().lower() not in ("0", "false", "no", "off")


class EnforcedMoto(MotoServer):
    """moto plus an `S3Front`; ``front`` is the front, ``moto_url`` moto's own (unenforced) endpoint."""

    def __init__(
        self,
        *,
        region: str = DEFAULT_REGION,
        networks: Sequence[Network] = DEFAULT_NETWORKS,
        subject_network: str = "nat",
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(region=region, startup_timeout=startup_timeout)
        self._networks = tuple(networks)
        self.subject_network = subject_network
        self.front: S3Front | None = None

    def start(self) -> None:
        super().start()
        self.front = S3Front(super().endpoint_url, networks=self._networks)
        try:
            self.front.start()
        except BaseException:
            super().stop()
            raise

    def stop(self) -> None:
        front, self.front = self.front, None
        if front is not None:
            front.stop()
        super().stop()

    @property
    def moto_url(self) -> str:
        return super().endpoint_url

    def _front(self) -> S3Front:
        if self.front is None:
            raise RuntimeError("the enforced moto is not running")
        return self.front

    @property
    def endpoint_url(self) -> str:
        """The subject's endpoint: the front's ``nat`` network (``subject_network``)."""
        return self._front().endpoint(self.subject_network)

    def endpoint(self, network: str) -> str:
        return self._front().endpoint(network)

    def client(self, service: str) -> Any:
        """A client for the test itself: through the front's unenforced harness port."""
        return self.client_on("harness", service)

    def client_on(self, network: str, service: str, session: boto3.session.Session | None = None) -> Any:
        """A client on ``network`` with ``session``'s credentials (default: moto's dummy key)."""
        config = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2})
        chosen = session or self.session()
        return chosen.client(service, endpoint_url=self.endpoint(network), config=config)  # type: ignore[call-overload]

    def root_session(self) -> boto3.session.Session:
        """The account root's credentials: the only ones the root exception of the front honours."""
        return boto3.session.Session(
            aws_access_key_id=ROOT_ACCESS_KEY_ID, aws_secret_access_key="root-secret", region_name=self.region
        )

    def user_session(self, name: str) -> boto3.session.Session:
        """An IAM user (created if absent) and a new access key of it."""
        iam = self.client("iam")
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return boto3.session.Session(
            aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], region_name=self.region
        )

    def role_session(self, role_arn: str, session_name: str) -> boto3.session.Session:
        """Credentials of one session of ``role_arn``, from moto's STS through the front (which learns the session)."""
        sts = self.client("sts")
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
        return boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=self.region,
        )

    def create_operator_role(self, name: str = "bucketwarden-operator") -> str:
        """The in-cluster operator's role (IRSA's), returning its ARN."""
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
        }
        role = self.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        return str(role["Role"]["Arn"])

    def reset(self) -> None:
        request = urllib.request.Request(self.moto_url + "/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass
        self._front().reset()


def moto_for_tests(**kwargs: Any) -> MotoServer:
    """An `EnforcedMoto`, or a bare `MotoServer` when BUCKETWARDEN_S3_FRONT=0."""
    if front_enabled():
        return EnforcedMoto(**kwargs)
    return MotoServer(region=kwargs.get("region", DEFAULT_REGION))
