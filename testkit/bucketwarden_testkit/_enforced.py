"""`EnforcedMoto`: moto behind the enforcing S3 front, a drop-in `MotoServer` whose bucket policies bite.

``endpoint_url`` (what the code under test is given) is the front's ``nat`` network, where a cluster's requests
come from; ``client()`` (the test's own setup and inspection) goes through the unenforced ``harness`` port, so
every write passes the front and its policy cache stays true. ``endpoint(network)`` gives the other networks.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import urllib.request
from collections.abc import Sequence
from typing import Any

import boto3
import botocore.config
import botocore.loaders
import botocore.session

from ._front import DEFAULT_NETWORKS, ROOT_ACCESS_KEY_ID, Network, S3Front
from ._moto import DEFAULT_REGION, DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, MotoServer

# Set to 0 to run the suites against bare moto (no bucket-policy enforcement), e.g. to tell a front bug apart.
FRONT_VARIABLE = "BUCKETWARDEN_S3_FRONT"


@functools.cache
def _loader() -> botocore.loaders.Loader:
    return botocore.loaders.create_loader()


def _session(region: str, access_key: str, secret: str, token: str | None = None) -> boto3.session.Session:
    """A boto3 session sharing one model loader: each new session would parse the service models again."""
    core = botocore.session.Session()
    core.register_component("data_loader", _loader())
    core.set_credentials(access_key, secret, token)
    return boto3.session.Session(botocore_session=core, region_name=region)


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
        super().__init__(region=region, startup_timeout=startup_timeout, bucket_policy_checks=False)
        self._networks = tuple(networks)
        self.subject_network = subject_network
        self.front: S3Front | None = None
        self._dummy: boto3.session.Session | None = None

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
        chosen = session or self._default_session()
        return chosen.client(service, endpoint_url=self.endpoint(network), config=config)  # type: ignore[call-overload]

    def _default_session(self) -> boto3.session.Session:
        if self._dummy is None:
            self._dummy = _session(self.region, DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY)
        return self._dummy

    def root_session(self) -> boto3.session.Session:
        """The account root's credentials: the only ones the root exception of the front honours."""
        return _session(self.region, ROOT_ACCESS_KEY_ID, "root-secret")

    def user_session(self, name: str) -> boto3.session.Session:
        """An IAM user (created if absent) and a new access key of it."""
        iam = self.client("iam")
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return _session(self.region, key["AccessKeyId"], key["SecretAccessKey"])

    def role_session(self, role_arn: str, session_name: str) -> boto3.session.Session:
        """Credentials of one session of ``role_arn``, from moto's STS through the front (which learns the session)."""
        return self.assume_role(role_arn, session_name)[0]

    def assume_role(self, role_arn: str, session_name: str) -> tuple[boto3.session.Session, str]:
        """(a boto3 session of ``role_arn``, its aws:userid ``<RoleId>:<session_name>``)."""
        answer = self.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name)
        creds = answer["Credentials"]
        session = _session(self.region, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
        return session, str(answer["AssumedRoleUser"]["AssumedRoleId"])

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
