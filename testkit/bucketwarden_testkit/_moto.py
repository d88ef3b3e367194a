"""`MotoServer`: moto in a child process on loopback, the stand-in for AWS in the demo, e2e tests and benchmarks."""

from __future__ import annotations

import importlib.util
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, overload

import boto3
import botocore.config

from ._process import HarnessError, ServerProcess, scrubbed_environ

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sts import STSClient

# moto accepts any credentials; these only have to look plausible. They can never work on real AWS.
DUMMY_ACCESS_KEY_ID = "testing"
DUMMY_SECRET_ACCESS_KEY = "testing"
DEFAULT_REGION = "us-east-1"


class MotoServer:
    """moto serving S3, IAM and STS over real HTTP on 127.0.0.1, in its own process.

    Use it as a context manager::

        with MotoServer() as moto:
            s3 = moto.client("s3")
            s3.create_bucket(Bucket="b")

    Every client it builds has the endpoint and dummy credentials forced, so nothing can reach real AWS;
    the child's environment has AWS_PROFILE and friends removed.
    """

    def __init__(
        self, *, region: str = DEFAULT_REGION, startup_timeout: float = 30.0, bucket_policy_checks: bool = True
    ) -> None:
        self.region = region
        script = Path(__file__).with_name("_moto_server.py")
        self._process = ServerProcess(
            "moto",
            [str(script), *(() if bucket_policy_checks else ("--no-bucket-policy-checks",))],
            env=scrubbed_environ(self._credentials()),
            probe_path="/moto-api/data.json",
            startup_timeout=startup_timeout,
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if importlib.util.find_spec("moto") is None:
            raise HarnessError("moto is not installed; install the test kit (testkit/README.md)")
        self._process.start()

    def stop(self) -> None:
        self._process.stop()

    @property
    def endpoint_url(self) -> str:
        return self._process.url

    def env(self) -> dict[str, str]:
        """Environment variables that point any AWS SDK or CLI at this server, for child processes.

        Pass them through `scrubbed_environ(moto.env())`, which also drops AWS_PROFILE and friends.
        """
        return {"AWS_ENDPOINT_URL": self.endpoint_url, **self._credentials()}

    def _credentials(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def session(self) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=DUMMY_ACCESS_KEY_ID,
            aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
            region_name=self.region,
        )

    @overload
    def client(self, service: Literal["s3"]) -> S3Client: ...
    @overload
    def client(self, service: Literal["iam"]) -> IAMClient: ...
    @overload
    def client(self, service: Literal["sts"]) -> STSClient: ...
    @overload
    def client(self, service: str) -> Any: ...
    def client(self, service: str) -> Any:
        """A boto3 client for `service`, pointed at this server (path-style S3, the endpoint is an IP)."""
        config = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2})
        return self.session().client(service, endpoint_url=self.endpoint_url, config=config)  # type: ignore[call-overload]

    def reset(self) -> None:
        """Forget every bucket, role and policy: moto's own reset endpoint, a few milliseconds."""
        request = urllib.request.Request(self.endpoint_url + "/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass
