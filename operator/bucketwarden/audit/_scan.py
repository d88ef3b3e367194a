"""The AWS half of the audit: list buckets, read each one's facts concurrently, stream classified results.

Read-only by construction: it only calls ListBuckets, GetBucketLocation, GetBucketPolicy, GetBucketVersioning,
GetBucketTagging (with a tag filter), iam:GetRole and sts:GetCallerIdentity (and sts:AssumeRole when asked).
"""

from __future__ import annotations

import fnmatch
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from bucketwarden.audit._classify import VERSIONING_UNKNOWN, AuditContext, BucketFacts, classify, unjudged
from bucketwarden.audit._model import BucketAudit
from bucketwarden.aws import AwsGateway
from bucketwarden.errors import AwsError, BucketNotFoundError, BucketWardenError, RoleNotFoundError
from bucketwarden.principals import CallerIdentity, ResolvedRole, RoleAssumption
from bucketwarden.spec import DEFAULT_STATEMENT_SID, ExemptRole

logger = logging.getLogger(__name__)

DEFAULT_BACKUP_ROLE = "AWSBackupDefaultServiceRole"
DEFAULT_CONCURRENCY = 16
OPERATOR_SESSION = "bucketwarden"

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class AuditScope:
    """Which buckets, and how to reach them."""

    names: tuple[str, ...] = ()  # glob patterns, any of which matches; empty: every bucket
    tags: Mapping[str, str] = field(default_factory=dict)  # every tag must match
    regions: tuple[str, ...] = ()  # empty: every region
    assume_role: RoleAssumption | None = None

    def name_matches(self, bucket: str) -> bool:
        return not self.names or any(fnmatch.fnmatchcase(bucket, p) for p in self.names)


class AuditUsageError(BucketWardenError):
    reason = "UsageError"


def _exempt_role(ref: str) -> ExemptRole:
    try:
        return ExemptRole(arn=ref) if ref.startswith("arn:") else ExemptRole(name=ref)
    except ValueError:  # pydantic's ValidationError
        raise AuditUsageError(f"{ref!r} is neither an IAM role name nor a role ARN") from None


def resolve_backup_roles(
    gateway: AwsGateway, refs: Sequence[str], *, assume_role: RoleAssumption | None = None
) -> tuple[tuple[ResolvedRole, ...], tuple[str, ...]]:
    """The backup roles that exist, and the ones asked for that do not. No refs: the default role, if it exists."""
    found: list[ResolvedRole] = []
    missing: list[str] = []
    for ref in refs or (DEFAULT_BACKUP_ROLE,):
        try:
            found.append(gateway.resolve_role(_exempt_role(ref), assume_role=assume_role))
        except RoleNotFoundError:
            missing.append(ref)
    return tuple(found), tuple(missing)


def resolve_operator(
    gateway: AwsGateway, ref: str | None, *, assume_role: RoleAssumption | None = None
) -> CallerIdentity:
    """The operator's principal: its role (a session of it, as the operator would run), or whoever audits."""
    if ref is None:
        return gateway.caller_identity(assume_role)
    role = gateway.resolve_role(_exempt_role(ref), assume_role=assume_role)
    partition = role.arn.split(":")[1]
    return CallerIdentity(
        account=role.account,
        arn=f"arn:{partition}:sts::{role.account}:assumed-role/{role.name}/{OPERATOR_SESSION}",
        user_id=f"{role.role_id}:{OPERATOR_SESSION}",
    )


def bounded_map(pool: ThreadPoolExecutor, fn: Callable[[_T], _R], items: Iterable[_T], window: int) -> Iterator[_R]:
    """Like pool.map, in order, but with at most ``window`` calls in flight: results stream, memory stays bounded."""
    pending: deque[Future[_R]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def read_facts(gateway: AwsGateway, bucket: str, scope: AuditScope) -> BucketFacts | None:
    """Everything the classifier needs about one bucket; None when it is out of scope or gone."""
    arn = scope.assume_role
    try:
        region: str | None = gateway.buckets.location(bucket, assume_role=arn)
    except BucketNotFoundError:
        return None
    except AwsError:
        region = None  # unknown: the operator's region is tried, botocore follows S3's redirect
    if scope.regions and region not in scope.regions:
        return None
    if scope.tags:
        try:
            tags = gateway.buckets.tags(bucket, region=region, assume_role=arn)
        except AwsError:
            tags = {}
        if any(tags.get(k) != v for k, v in scope.tags.items()):
            return None
    policy_text: str | None = None
    policy_error: str | None = None
    try:
        policy_text = gateway.store.get(bucket, region=region, assume_role=arn)
    except BucketNotFoundError:
        return None
    except AwsError as exc:
        policy_error = exc.message
    versioning: str | None
    try:
        versioning = gateway.buckets.versioning(bucket, region=region, assume_role=arn)
    except AwsError:
        versioning = VERSIONING_UNKNOWN
    return BucketFacts(bucket, region, policy_text, versioning, policy_error)


def audit_buckets(
    gateway: AwsGateway,
    ctx: AuditContext,
    scope: AuditScope,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    names: Iterable[str] | None = None,
) -> Iterator[BucketAudit]:
    """Classify every bucket in scope, in ListBuckets order, as results arrive. Each policy document lives only
    while its bucket is classified."""
    listed = names if names is not None else gateway.buckets.list_names(assume_role=scope.assume_role)
    candidates = (b for b in listed if scope.name_matches(b))

    def one(bucket: str) -> BucketAudit | None:
        facts = read_facts(gateway, bucket, scope)
        if facts is None:
            return None
        try:
            return classify(facts, ctx)
        except Exception as exc:  # one odd bucket must not end the audit of the others: report it as Unknown
            logger.exception("audit of bucket %s failed", bucket)
            return unjudged(facts, ctx, f"the audit could not judge this bucket ({type(exc).__name__}: {exc})")

    workers = max(1, concurrency)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="audit") as pool:
        for result in bounded_map(pool, one, candidates, 2 * workers):
            if result is not None:
                yield result


def audit_context(
    gateway: AwsGateway,
    *,
    backup_roles: Sequence[str] = (),
    operator_role: str | None = None,
    statement_sid: str = DEFAULT_STATEMENT_SID,
    assume_role: RoleAssumption | None = None,
    aws_ranges: Sequence[str] = (),
    prove: bool = False,
) -> AuditContext:
    roles, missing = resolve_backup_roles(gateway, backup_roles, assume_role=assume_role)
    operator = resolve_operator(gateway, operator_role, assume_role=assume_role)
    return AuditContext(
        roles=roles,
        operator=operator,
        statement_sid=statement_sid,
        missing_roles=missing,
        aws_ranges=tuple(aws_ranges),
        prove=prove,
    )
