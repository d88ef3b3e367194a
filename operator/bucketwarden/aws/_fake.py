"""InMemoryAws: an in-memory stand-in for AwsGateway, for tests of code that uses the AWS port.

It shares the real adapter's validation, error mapping, role checks and caches, and only replaces the
wire: failures are built as botocore ClientErrors with S3's and IAM's codes and go through
``map_client_error``, so the errors and messages are the ones the real gateway raises.
"""

from __future__ import annotations

import random
import string
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from botocore.exceptions import ClientError

from bucketwarden.aws._cache import CacheStats, Clock, TtlCache
from bucketwarden.aws._calls import AwsCallCounter
from bucketwarden.aws._errors import map_client_error
from bucketwarden.aws._identity import (
    DEFAULT_NEGATIVE_TTL_SECONDS,
    DEFAULT_TTL_SECONDS,
    RoleRecord,
    resolve_role_with,
)
from bucketwarden.aws._port import AwsPort
from bucketwarden.aws._session import assume_role_error
from bucketwarden.aws._store import validate_policy_text
from bucketwarden.errors import RoleNotFoundError
from bucketwarden.principals import CallerIdentity, ResolvedRole, RoleAssumption
from bucketwarden.spec import ExemptRole

DEFAULT_ACCOUNT = "123456789012"  # moto's default account, so scenarios read the same against both
DEFAULT_REGION = "us-east-1"

_T = TypeVar("_T")


class _NoSuchBucketPolicy(Exception):
    pass


class ManualClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeBucket:
    name: str
    owner: str
    region: str
    policy: str | None = None


@dataclass(frozen=True)
class FakeRole:
    name: str
    path: str
    account: str
    role_id: str

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account}:role{self.path}{self.name}"


def _client_error(api: str, code: str, message: str, status: int, **extra: str) -> ClientError:
    error = {"Code": code, "Message": message, **extra}
    return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}, api)  # type: ignore[typeddict-item]


class InMemoryAws:
    """Buckets, roles and one caller in memory, with the methods of BucketPolicyStore and IdentityResolver.

    Like S3 and IAM (not like moto) it rejects: a policy S3 would reject (validated before the call, which
    is then not counted), a missing bucket (BucketNotFoundError), an ExpectedBucketOwner that is not the
    bucket's owner (the same bare AccessDenied S3 sends), a missing role (RoleNotFoundError), and
    assuming a role that does not exist (CredentialsError). ``region`` is accepted and ignored, as botocore
    follows S3's redirect to the right region. Calls are counted in ``counter`` by API name; assuming a
    role counts one AssumeRole the first time it is used, as the real factory does.

    Role lookups are cached with the real resolver's TTLs on ``clock`` (a ManualClock unless given):
    after ``recreate_role`` the new RoleId shows only after ``advance(ttl)`` or ``invalidate()``, as in
    production.
    """

    def __init__(
        self,
        *,
        account: str = DEFAULT_ACCOUNT,
        region: str = DEFAULT_REGION,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        negative_ttl_seconds: float = DEFAULT_NEGATIVE_TTL_SECONDS,
        clock: Clock | None = None,
        counter: AwsCallCounter | None = None,
        seed: int = 0,
    ) -> None:
        self.account = account
        self.region = region
        self.clock: Clock = clock if clock is not None else ManualClock()
        self.counter = counter if counter is not None else AwsCallCounter()
        self.buckets: dict[str, FakeBucket] = {}
        self.roles: dict[tuple[str, str], FakeRole] = {}  # (account, lower-case name): IAM names ignore case
        self._random = random.Random(seed)
        self.caller = CallerIdentity(
            account=account, arn=f"arn:aws:iam::{account}:user/bucketwarden", user_id=self._unique_id("AIDA")
        )
        self._lock = threading.RLock()
        self._failures: defaultdict[str, deque[Exception]] = defaultdict(deque)
        self._latency: dict[str, float] = {}
        self._assumed: dict[RoleAssumption, FakeRole] = {}  # once AssumeRole succeeded
        self.assume_role_requests: list[RoleAssumption] = []  # every AssumeRole sent, in order
        self._callers: TtlCache[RoleAssumption | None, CallerIdentity] = TtlCache(ttl=ttl_seconds, clock=self.clock)
        self._roles: TtlCache[tuple[RoleAssumption | None, str], ResolvedRole] = TtlCache(
            ttl=ttl_seconds,
            clock=self.clock,
            negative_ttl=negative_ttl_seconds,
            negative_types=(RoleNotFoundError,),
        )

    # --- scenario controls (never counted) ------------------------------------------------------------

    def create_bucket(
        self, name: str, *, owner: str | None = None, region: str | None = None, policy: str | None = None
    ) -> FakeBucket:
        with self._lock:
            bucket = FakeBucket(name, owner or self.account, region or self.region, policy)
            self.buckets[name] = bucket
            return bucket

    def delete_bucket(self, name: str) -> None:
        with self._lock:
            self.buckets.pop(name, None)

    def put_foreign(self, bucket: str, policy_text: str | None) -> None:
        """Someone else edits the policy (console, Terraform): written as is, unvalidated, uncounted."""
        with self._lock:
            self.buckets[bucket].policy = policy_text

    def policy_of(self, bucket: str) -> str | None:
        """The stored document, read without a counted call."""
        with self._lock:
            return self.buckets[bucket].policy

    def create_role(self, name: str, *, path: str = "/", account: str | None = None) -> FakeRole:
        with self._lock:
            role = FakeRole(name, path, account or self.account, self._unique_id("AROA"))
            self.roles[(role.account, name.lower())] = role
            return role

    def recreate_role(self, name: str, *, account: str | None = None) -> FakeRole:
        """Delete and create the role again: same name and path, a NEW RoleId, as in IAM."""
        with self._lock:
            old = self.roles[(account or self.account, name.lower())]
            return self.create_role(old.name, path=old.path, account=old.account)

    def delete_role(self, name: str, *, account: str | None = None) -> None:
        with self._lock:
            self.roles.pop((account or self.account, name.lower()), None)

    def role(self, name: str, *, account: str | None = None) -> FakeRole:
        with self._lock:
            return self.roles[(account or self.account, name.lower())]

    def fail_next(self, api: str, error: Exception, *, times: int = 1) -> None:
        """The next ``times`` calls of ``api`` (e.g. "PutBucketPolicy") raise ``error`` (counted as errors)."""
        with self._lock:
            self._failures[api].extend([error] * times)

    def set_latency(self, api: str, seconds: float) -> None:
        """Make every call of ``api`` take ``seconds`` of wall time (for concurrency tests)."""
        with self._lock:
            self._latency[api] = seconds

    def advance(self, seconds: float) -> None:
        """Move the default ManualClock on (expiring cache entries)."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("advance() needs the default ManualClock; move your own clock instead")
        self.clock.advance(seconds)

    # --- BucketPolicyStore -----------------------------------------------------------------------------

    def get(
        self,
        bucket: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> str | None:
        def read() -> str:
            policy = self._bucket("GetBucketPolicy", bucket, expected_owner).policy
            if policy is None:
                raise _NoSuchBucketPolicy  # a 404 on the wire, counted as an error like the real one
            return policy

        try:
            return self._call("GetBucketPolicy", read, assume_role)
        except _NoSuchBucketPolicy:
            return None

    def put(
        self,
        bucket: str,
        policy_text: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> None:
        validate_policy_text(policy_text)

        def write() -> None:
            self._bucket("PutBucketPolicy", bucket, expected_owner).policy = policy_text

        self._call("PutBucketPolicy", write, assume_role)

    def delete(
        self,
        bucket: str,
        *,
        region: str | None = None,
        expected_owner: str | None = None,
        assume_role: RoleAssumption | None = None,
    ) -> None:
        def remove() -> None:
            self._bucket("DeleteBucketPolicy", bucket, expected_owner).policy = None

        self._call("DeleteBucketPolicy", remove, assume_role)

    # --- IdentityResolver ------------------------------------------------------------------------------

    def caller_identity(self, assume_role: RoleAssumption | None = None) -> CallerIdentity:
        return self._callers.get(assume_role, lambda: self._fetch_caller(assume_role))

    def resolve_role(self, role: ExemptRole, *, assume_role: RoleAssumption | None = None) -> ResolvedRole:
        return self._roles.get(
            (assume_role, role.ref),
            lambda: resolve_role_with(
                role,
                lambda: self.caller_identity(assume_role),
                lambda name: self._fetch_role(name, assume_role),
            ),
        )

    def invalidate(self, ref: str | None = None) -> None:
        if ref is None:
            self._roles.invalidate()
            self._callers.invalidate()
        else:
            self._roles.invalidate(lambda key: key[1] == ref)

    def count_calls(self) -> AbstractContextManager[Mapping[str, int]]:
        """Count the AWS calls this thread makes inside the block (the reconciler reports them per bucket)."""
        return self.counter.scope()

    def cache_stats(self) -> CacheStats:
        return self._roles.stats()

    # --- the fake wire ---------------------------------------------------------------------------------

    def _unique_id(self, prefix: str) -> str:
        alphabet = string.ascii_uppercase + string.digits
        return prefix + "".join(self._random.choice(alphabet) for _ in range(17))

    def _call(self, api: str, operation: Callable[[], _T], assume_role: RoleAssumption | None = None) -> _T:
        delay = self._latency.get(api)
        if delay:
            time.sleep(delay)  # outside the lock, so concurrent calls overlap as on the wire
        with self._lock:
            failures = self._failures.get(api)
            try:
                # As in botocore, credentials are fetched while the call is made: a failed AssumeRole
                # fails (and counts) the call too.
                self._assume(assume_role)
                if failures:
                    raise failures.popleft()
                result = operation()
            except Exception:
                self.counter.record(api, "error")
                raise
            self.counter.record(api, "ok")
            return result

    def _bucket(self, api: str, name: str, expected_owner: str | None) -> FakeBucket:
        bucket = self.buckets.get(name)
        if bucket is None:
            exc = _client_error(api, "NoSuchBucket", "The specified bucket does not exist", 404, BucketName=name)
            raise map_client_error(exc, api=api, bucket=name, expected_owner=expected_owner)
        if expected_owner is not None and expected_owner != bucket.owner:
            exc = _client_error(api, "AccessDenied", "Access Denied", 403)
            raise map_client_error(exc, api=api, bucket=name, expected_owner=expected_owner)
        return bucket

    def _assumed_role(self, role_arn: str) -> FakeRole:
        account = role_arn.split(":")[4]
        name = role_arn.rsplit("/", 1)[-1]
        role = self.roles.get((account, name.lower()))
        if role is None or role.arn != role_arn:
            exc = _client_error(
                "AssumeRole", "AccessDenied", f"Not authorized to perform sts:AssumeRole on {role_arn}", 403
            )
            raise assume_role_error(role_arn, exc)
        return role

    def _assume(self, assume_role: RoleAssumption | None) -> FakeRole | None:
        if assume_role is None:
            return None
        with self._lock:
            role = self._assumed.get(assume_role)
            if role is None:
                self.assume_role_requests.append(assume_role)
                role = self._call("AssumeRole", lambda: self._assumed_role(assume_role.arn))
                self._assumed[assume_role] = role
            return role

    def _fetch_caller(self, assume_role: RoleAssumption | None) -> CallerIdentity:
        def identity() -> CallerIdentity:
            role = self._assume(assume_role)  # already assumed by _call: no second AssumeRole
            if role is None or assume_role is None:
                return self.caller
            session = assume_role.session_name
            return CallerIdentity(
                account=role.account,
                arn=f"arn:aws:sts::{role.account}:assumed-role/{role.name}/{session}",
                user_id=f"{role.role_id}:{session}",
            )

        return self._call("GetCallerIdentity", identity, assume_role)

    def _fetch_role(self, name: str, assume_role: RoleAssumption | None) -> RoleRecord:
        def get_role() -> RoleRecord:
            assumed = self._assume(assume_role)
            account = assumed.account if assumed is not None else self.account
            role = self.roles.get((account, name.lower()))
            if role is None:
                exc = _client_error("GetRole", "NoSuchEntity", f"The role with name {name} cannot be found.", 404)
                raise map_client_error(exc, api="GetRole")
            return RoleRecord(name=role.name, arn=role.arn, role_id=role.role_id)

        return self._call("GetRole", get_role, assume_role)


if TYPE_CHECKING:  # mypy proves the port is implemented with compatible signatures

    def _implements_port(aws: InMemoryAws) -> AwsPort:
        return aws
