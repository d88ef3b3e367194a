"""AWS settings and the factory of shared, counted boto3 clients, including assumed-role ones."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, DeferredRefreshableCredentials

from bucketwarden.aws._calls import AwsCallCounter
from bucketwarden.aws._endpoints import enlarge_endpoint_cache
from bucketwarden.aws._errors import describe, map_client_error
from bucketwarden.errors import AccessDeniedError, AwsError, CredentialsError
from bucketwarden.principals import RoleAssumption

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

DEFAULT_REGION = "us-east-1"

MSG_ASSUME_ROLE_FAILED = (
    "could not assume role {role_arn} ({detail}); the operator's own role needs sts:AssumeRole on it and "
    "the role's trust policy must allow the operator's principal"
)

RetryMode = Literal["standard", "adaptive", "legacy"]
_ClientT = TypeVar("_ClientT")


def _region_from_env() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def _endpoint_from_env() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL") or None


@dataclass(frozen=True, slots=True)
class AwsSettings:
    """How the operator talks to AWS. Defaults come from the standard AWS_* environment variables.

    ``endpoint_url`` overrides the endpoint of every service (moto in tests and the demo).
    ``max_attempts`` counts the first request too, so 5 means at most 4 retries.
    """

    region: str = field(default_factory=_region_from_env)
    endpoint_url: str | None = field(default_factory=_endpoint_from_env)
    max_attempts: int = 5
    retry_mode: RetryMode = "standard"
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    max_pool_connections: int = 32

    def client_config(self) -> Config:
        return Config(
            # botocore's "max_attempts" key counts retries only; "total_max_attempts" counts every request,
            # which is what AWS_MAX_ATTEMPTS and our setting mean.
            retries={"mode": self.retry_mode, "total_max_attempts": self.max_attempts},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_pool_connections=self.max_pool_connections,
            user_agent_extra="bucketwarden",
        )


@functools.cache
def _shared_loader() -> botocore.loaders.Loader:
    """One botocore model loader for every session we build: the models are static data, and a new session
    would otherwise parse them again (0.2 s for S3)."""
    return botocore.loaders.create_loader(os.environ.get("AWS_DATA_PATH"))


def assume_role_error(role_arn: str, exc: Exception) -> AwsError:
    """The error for a failed sts:AssumeRole: refusals become CredentialsError, outages stay retryable."""
    mapped = map_client_error(exc, api="AssumeRole")
    if isinstance(mapped, AccessDeniedError | CredentialsError):
        message = MSG_ASSUME_ROLE_FAILED.format(role_arn=role_arn, detail=describe(exc))
        return CredentialsError(message, api="AssumeRole")
    return mapped


class _StaticProvider(CredentialProvider):
    """Hands a botocore session one ready-made (refreshable) credentials object."""

    METHOD = "bucketwarden-assume-role"
    CANONICAL_NAME = "custom-bucketwarden-assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


class ClientFactory:
    """Creates boto3 clients once and shares them: clients are thread-safe, sessions are not.

    Clients are cached per (service, region, assume_role); each is attached to ``counter``. One
    boto3 session holds the operator's own credentials. For ``assume_role`` a second session holds
    credentials from sts:AssumeRole (made with the base STS client, so it is counted too); botocore
    refreshes them before they expire. The first AssumeRole happens at the first call, not here.
    """

    def __init__(
        self,
        settings: AwsSettings | None = None,
        counter: AwsCallCounter | None = None,
        *,
        session: boto3.session.Session | None = None,
    ) -> None:
        self.settings = settings if settings is not None else AwsSettings()
        self.counter = counter if counter is not None else AwsCallCounter()
        self._loader = _shared_loader()
        self._base_session = session if session is not None else self._new_session()
        self._config = self.settings.client_config()
        # Reentrant: building an assumed-role session asks for the base STS client.
        self._lock = threading.RLock()
        self._clients: dict[tuple[str, str, RoleAssumption | None], object] = {}
        self._sessions: dict[RoleAssumption, boto3.session.Session] = {}

    def s3(self, region: str | None = None, assume_role: RoleAssumption | None = None) -> S3Client:
        region = region or self.settings.region
        return self._cached(
            ("s3", region, assume_role),
            lambda s: s.client("s3", region_name=region, endpoint_url=self._endpoint, config=self._config),
        )

    def iam(self, assume_role: RoleAssumption | None = None) -> IAMClient:
        region = self.settings.region
        return self._cached(
            ("iam", region, assume_role),
            lambda s: s.client("iam", region_name=region, endpoint_url=self._endpoint, config=self._config),
        )

    def sts(self, assume_role: RoleAssumption | None = None) -> STSClient:
        region = self.settings.region
        return self._cached(
            ("sts", region, assume_role),
            lambda s: s.client("sts", region_name=region, endpoint_url=self._endpoint, config=self._config),
        )

    def sqs(self, region: str | None = None) -> SQSClient:
        region = region or self.settings.region
        return self._cached(
            ("sqs", region, None),
            lambda s: s.client("sqs", region_name=region, endpoint_url=self._endpoint, config=self._config),
        )

    @property
    def _endpoint(self) -> str | None:
        return self.settings.endpoint_url

    def _cached(
        self, key: tuple[str, str, RoleAssumption | None], create: Callable[[boto3.session.Session], _ClientT]
    ) -> _ClientT:
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    made = create(self._session_for(key[2]))
                    enlarge_endpoint_cache(made)  # botocore's own cache holds 100 buckets, process-wide
                    self.counter.attach(cast(Any, made))
                    self._clients[key] = client = made
        return cast(_ClientT, client)

    def _session_for(self, assume_role: RoleAssumption | None) -> boto3.session.Session:
        if assume_role is None:
            return self._base_session
        with self._lock:
            session: boto3.session.Session | None = self._sessions.get(assume_role)
            if session is None:
                credentials = DeferredRefreshableCredentials(
                    refresh_using=self._assume_role_fetcher(assume_role), method="assume-role"
                )
                session = self._new_session(credentials)
                self._sessions[assume_role] = session
            return session

    def _new_session(self, credentials: DeferredRefreshableCredentials | None = None) -> boto3.session.Session:
        core = botocore.session.Session()
        core.register_component("data_loader", self._loader)
        if credentials is not None:
            core.register_component("credential_provider", CredentialResolver([_StaticProvider(credentials)]))
        session = boto3.session.Session(botocore_session=core, region_name=self.settings.region)
        # boto3 appends its data path to the (shared) loader for every session; keep one copy.
        self._loader.search_paths[:] = list(dict.fromkeys(self._loader.search_paths))
        return session

    def _assume_role_fetcher(self, assumption: RoleAssumption) -> Callable[[], dict[str, str]]:
        params: dict[str, str] = {"RoleArn": assumption.arn, "RoleSessionName": assumption.session_name}
        if assumption.external_id is not None:
            params["ExternalId"] = assumption.external_id

        def fetch() -> dict[str, str]:
            try:
                response = self.sts().assume_role(**params)  # type: ignore[arg-type]
            except Exception as exc:
                raise assume_role_error(assumption.arn, exc) from exc
            creds = response["Credentials"]
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        return fetch
