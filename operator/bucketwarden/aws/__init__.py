"""The boto3 adapter: sessions and clients, bucket policy I/O, identity and RoleId resolution, error mapping.

Everything here raises :mod:`bucketwarden.errors` exceptions, never botocore's. ``AwsGateway`` is the one
object the operator builds at startup; ``InMemoryAws`` is its in-memory test double. Both satisfy ``AwsPort``.
"""

from bucketwarden.aws._buckets import BucketReader
from bucketwarden.aws._cache import CacheStats, TtlCache
from bucketwarden.aws._calls import AwsCallCounter, CallHook, Outcome
from bucketwarden.aws._drift_queue import DriftQueue, PolicyEvent, QueueMessage, parse_policy_event
from bucketwarden.aws._errors import describe, map_client_error, redact
from bucketwarden.aws._fake import FakeBucket, FakeRole, InMemoryAws, ManualClock
from bucketwarden.aws._gateway import AwsGateway
from bucketwarden.aws._identity import IdentityResolver, RoleRecord, resolve_role_with
from bucketwarden.aws._port import AwsPort, AwsPortWrapper, BucketPolicyPort, IdentityPort
from bucketwarden.aws._readiness import (
    DEFAULT_READINESS_TTL_SECONDS,
    S3_BACKUP_MANAGED_POLICIES,
    ReadinessReader,
    RolePermissions,
)
from bucketwarden.aws._session import AwsSettings, ClientFactory
from bucketwarden.aws._store import MAX_POLICY_BYTES, BucketPolicyStore, validate_policy_text
from bucketwarden.principals import ROLE_SESSION_NAME

__all__ = [
    "DEFAULT_READINESS_TTL_SECONDS",
    "MAX_POLICY_BYTES",
    "ROLE_SESSION_NAME",
    "S3_BACKUP_MANAGED_POLICIES",
    "AwsCallCounter",
    "AwsGateway",
    "AwsPort",
    "AwsPortWrapper",
    "AwsSettings",
    "BucketPolicyPort",
    "BucketPolicyStore",
    "BucketReader",
    "CacheStats",
    "CallHook",
    "ClientFactory",
    "DriftQueue",
    "FakeBucket",
    "FakeRole",
    "IdentityPort",
    "IdentityResolver",
    "InMemoryAws",
    "ManualClock",
    "Outcome",
    "PolicyEvent",
    "QueueMessage",
    "ReadinessReader",
    "RolePermissions",
    "RoleRecord",
    "TtlCache",
    "describe",
    "map_client_error",
    "parse_policy_event",
    "redact",
    "resolve_role_with",
    "validate_policy_text",
]
