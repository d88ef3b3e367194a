"""One object the operator builds at startup and shares: settings, counted clients, policy store, identities."""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import boto3

from bucketwarden.aws._buckets import BucketReader
from bucketwarden.aws._cache import CacheStats, Clock
from bucketwarden.aws._calls import AwsCallCounter
from bucketwarden.aws._identity import DEFAULT_NEGATIVE_TTL_SECONDS, DEFAULT_TTL_SECONDS, IdentityResolver
from bucketwarden.aws._port import AwsPort
from bucketwarden.aws._readiness import DEFAULT_READINESS_TTL_SECONDS, ReadinessReader
from bucketwarden.aws._session import AwsSettings, ClientFactory
from bucketwarden.aws._store import BucketPolicyStore
from bucketwarden.principals import CallerIdentity, ResolvedRole, RoleAssumption
from bucketwarden.spec import ExemptRole


class AwsGateway:
    """The real :class:`~bucketwarden.aws.AwsPort`: a BucketPolicyStore and an IdentityResolver over one
    ClientFactory, all counted by one AwsCallCounter. Thread-safe; create one per process.
    """

    def __init__(
        self,
        settings: AwsSettings | None = None,
        counter: AwsCallCounter | None = None,
        *,
        session: boto3.session.Session | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        negative_ttl_seconds: float = DEFAULT_NEGATIVE_TTL_SECONDS,
        clock: Clock = time.monotonic,
        readiness_ttl_seconds: float = DEFAULT_READINESS_TTL_SECONDS,
    ) -> None:
        self.settings = settings if settings is not None else AwsSettings()
        self.counter = counter if counter is not None else AwsCallCounter()
        self.factory = ClientFactory(self.settings, self.counter, session=session)
        self.store = BucketPolicyStore(self.factory)
        self.buckets = BucketReader(self.factory)  # read-only bucket facts (audit, readiness)
        self.readiness = ReadinessReader(self.factory, self.buckets, ttl_seconds=readiness_ttl_seconds, clock=clock)
        self.identity = IdentityResolver(
            self.factory, ttl_seconds=ttl_seconds, negative_ttl_seconds=negative_ttl_seconds, clock=clock
        )

    def get(
        self,
        bucket: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> str | None:
        return self.store.get(bucket, region=region, expected_owner=expected_owner, assume_role=assume_role)

    def put(
        self,
        bucket: str,
        policy_text: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> None:
        self.store.put(bucket, policy_text, region=region, expected_owner=expected_owner, assume_role=assume_role)

    def delete(
        self,
        bucket: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> None:
        self.store.delete(bucket, region=region, expected_owner=expected_owner, assume_role=assume_role)

    def caller_identity(self, assume_role: RoleAssumption | None = None) -> CallerIdentity:
        return self.identity.caller_identity(assume_role)

    def resolve_role(self, role: ExemptRole, *, assume_role: RoleAssumption | None = None) -> ResolvedRole:
        return self.identity.resolve_role(role, assume_role=assume_role)

    def invalidate(self, ref: str | None = None) -> None:
        self.identity.invalidate(ref)

    def count_calls(self) -> AbstractContextManager[Mapping[str, int]]:
        """Count the AWS calls this thread makes inside the block (the reconciler reports them per bucket)."""
        return self.counter.scope()

    def cache_stats(self) -> CacheStats:
        return self.identity.cache_stats()


if TYPE_CHECKING:  # mypy proves the port is implemented with compatible signatures

    def _implements_port(aws: AwsGateway) -> AwsPort:
        return aws
